/** "Did you mean" for names users type: the closest known name within a small edit distance. */

/**
 * Edit distance counting an insertion, deletion, substitution or swap of two neighbours as one edit
 * (optimal string alignment), case-insensitive: `wbe` is one edit from `web`.
 */
export function editDistance(a: string, b: string): number {
  const s = a.toLowerCase();
  const t = b.toLowerCase();
  const d: number[][] = Array.from({ length: s.length + 1 }, (_, i) =>
    Array.from({ length: t.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  const at = (i: number, j: number): number => d[i]?.[j] ?? 0;
  for (let i = 1; i <= s.length; i++) {
    const row = d[i] ?? [];
    for (let j = 1; j <= t.length; j++) {
      const cost = s[i - 1] === t[j - 1] ? 0 : 1;
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && s[i - 1] === t[j - 2] && s[i - 2] === t[j - 1]) best = Math.min(best, at(i - 2, j - 2) + 1);
      row[j] = best;
    }
  }
  return at(s.length, t.length);
}

/**
 * The candidate closest to `name`, if it is close enough to be a typo (at most a third of the name's
 * length, at least 1, at most 3 edits); ties go to the first candidate.
 *
 * @example nearMiss('wbe', ['web', 'worker']) // 'web'
 */
export function nearMiss(name: string, candidates: readonly string[]): string | undefined {
  const limit = Math.min(3, Math.max(1, Math.floor(name.length / 3)));
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(name, c);
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return bestDistance <= limit ? best : undefined;
}

/** `a, b, c` or `(none)`, shortened after `max` names, for error messages that list what exists. */
export function listNames(names: readonly string[], max = 10): string {
  if (names.length === 0) return '(none)';
  const sorted = [...names].sort();
  const shown = sorted.slice(0, max).join(', ');
  return sorted.length > max ? `${shown} and ${sorted.length - max} more` : shown;
}
