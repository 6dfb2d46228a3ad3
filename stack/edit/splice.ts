/**
 * Text-level changes to one Compose file, located through the `yaml` Document API (node ranges), so
 * that everything the change does not touch stays byte for byte: comments, blank lines, quoting, key
 * order, octal modes (`0440`), flow spacing. Re-stringifying the whole document would not keep those
 * (it moves comments, respaces flow collections and rewrites `0440` as `440`), so the document is only
 * used to find where to write, and to stringify the new fragment.
 *
 * Terminology: a *fragment* is the YAML text of the new key or list item; the *unit* is the file's
 * indentation step; a *dash offset* is how far a block list's `-` sits right of its parent key.
 */
import { isMap, isScalar, isSeq, stringify, type Document, type Node, type YAMLMap, type YAMLSeq } from 'yaml';

/** One insertion or replacement in the original text. */
export interface Splice {
  at: number;
  /** Characters replaced from `at` (0: a pure insertion). */
  remove: number;
  text: string;
}

/** How the file is written: inferred once per file, applied to every fragment. */
export interface FileStyle {
  unit: number;
  /** Columns between a key and the `-` of its block list (0: `key:\n- a`, unit: `key:\n  - a`). */
  dashOffset: number;
  newline: string;
}

type Range = [number, number, number];

const rangeOf = (n: Node): Range => (n.range ?? [0, 0, 0]) as Range;

function lineStart(src: string, at: number): number {
  return src.lastIndexOf('\n', at - 1) + 1;
}

function columnOf(src: string, at: number): number {
  return at - lineStart(src, at);
}

/** The offset just past the newline ending the line that holds `at` (the text's end if none). */
function afterLine(src: string, at: number): number {
  const nl = src.indexOf('\n', at);
  return nl === -1 ? src.length : nl + 1;
}

/** The file's indentation unit and list style, from its first nested key and first block list. */
export function inferStyle(doc: Document, src: string): FileStyle {
  let unit = 0;
  let dashOffset = -1;
  const visit = (node: unknown, keyCol: number | undefined): void => {
    if (isMap(node) && !node.flow) {
      for (const pair of node.items) {
        const key = pair.key as Node | null;
        if (!key || !key.range) continue;
        const col = columnOf(src, key.range[0]);
        if (keyCol !== undefined && unit === 0 && col > keyCol) unit = col - keyCol;
        visit(pair.value, col);
      }
    } else if (isSeq(node) && !node.flow) {
      const first = node.items[0] as Node | undefined;
      if (first?.range && keyCol !== undefined && dashOffset < 0) {
        const dash = src.lastIndexOf('-', first.range[0] - 1);
        if (dash >= lineStart(src, first.range[0])) dashOffset = columnOf(src, dash) - keyCol;
      }
      for (const item of node.items) visit(item, undefined);
    }
  };
  visit(doc.contents, undefined);
  const u = unit || 2;
  return { unit: u, dashOffset: dashOffset < 0 ? u : dashOffset, newline: src.includes('\r\n') ? '\r\n' : '\n' };
}

/** A scalar or key as `yaml` would write it (plain when it can be, quoted when it must). */
function scalarText(v: unknown): string {
  return stringify(v, null, { lineWidth: 0 }).replace(/\n$/, '');
}

/**
 * `value` as block YAML lines in the file's style, the first at column `indent`. Written here rather
 * than by `yaml`'s stringifier, whose list indentation cannot express every file's (`indentSeq: false`
 * still indents the dash in 2.9).
 */
function blockLines(value: unknown, style: FileStyle, indent: number): string {
  const pad = (n: number): string => ' '.repeat(n);
  const isCollection = (v: unknown): v is object => typeof v === 'object' && v !== null && (Array.isArray(v) ? v.length > 0 : Object.keys(v).length > 0);
  const lines: string[] = [];
  const emitMap = (m: Record<string, unknown>, col: number, firstPrefix?: string): void => {
    Object.entries(m).forEach(([k, v], i) => {
      const lead = i === 0 && firstPrefix !== undefined ? firstPrefix : pad(col);
      if (!isCollection(v)) lines.push(`${lead}${scalarText(k)}: ${typeof v === 'object' && v !== null ? flowText(v) : scalarText(v)}`);
      else if (Array.isArray(v)) {
        lines.push(`${lead}${scalarText(k)}:`);
        emitSeq(v, col + style.dashOffset);
      } else {
        lines.push(`${lead}${scalarText(k)}:`);
        emitMap(v as Record<string, unknown>, col + style.unit);
      }
    });
  };
  const emitSeq = (items: unknown[], col: number): void => {
    for (const item of items) {
      if (isCollection(item) && !Array.isArray(item)) emitMap(item as Record<string, unknown>, col + 2, `${pad(col)}- `);
      else lines.push(`${pad(col)}- ${typeof item === 'object' && item !== null ? flowText(item) : scalarText(item)}`);
    }
  };
  if (Array.isArray(value)) emitSeq(value, indent);
  else if (isCollection(value)) emitMap(value as Record<string, unknown>, indent);
  else lines.push(pad(indent) + scalarText(value));
  return lines.join(style.newline);
}

/** `value` as one flow-style fragment (`db_password`, `{ source: x }`). */
function flowText(value: unknown): string {
  return stringify(value, null, { collectionStyle: 'flow', lineWidth: 0 }).replace(/\n$/, '');
}

/** Where a new line after the last item of a block collection goes. */
function afterLastItem(src: string, last: Node): number {
  const [, valueEnd] = rangeOf(last);
  return afterLine(src, Math.max(valueEnd - 1, rangeOf(last)[0]));
}

/** Ensures the text before an insertion at `at` ends with a newline (a file with no final newline). */
function leadingNewline(src: string, at: number, style: FileStyle): string {
  return at > 0 && src[at - 1] !== '\n' ? style.newline : '';
}

/**
 * Adds `key: value` to a map. A block map gets new lines after its last pair, at its keys' column; a
 * flow map gets `, key: value` before its `}`; an empty value (`key:` with nothing) becomes a block.
 */
export function insertPair(src: string, map: YAMLMap, key: string, value: unknown, style: FileStyle): Splice {
  if (map.flow) {
    const last = map.items.at(-1);
    const fragment = `${flowText({ [key]: value }).replace(/^\{ ?| ?\}$/g, '')}`;
    if (!last) {
      const [start] = rangeOf(map);
      return { at: start + 1, remove: 0, text: ` ${fragment} ` };
    }
    const end = rangeOf((last.value ?? last.key) as Node)[1];
    return { at: end, remove: 0, text: `, ${fragment}` };
  }
  const first = map.items[0]?.key as Node | undefined;
  const last = map.items.at(-1);
  const lastNode = (last?.value ?? last?.key) as Node | undefined;
  if (!first || !lastNode) throw new Error('insertPair: empty block map');
  const col = columnOf(src, rangeOf(first)[0]);
  const at = afterLastItem(src, lastNode);
  return { at, remove: 0, text: `${leadingNewline(src, at, style)}${blockLines({ [key]: value }, style, col)}${style.newline}` };
}

/**
 * Fills an empty value (`secrets:` followed by nothing, or `~`/`null`) of the key at `keyNode` with a
 * block collection one unit (or, for a list, one dash offset) deeper.
 */
export function fillEmpty(src: string, keyNode: Node, valueNode: Node | null, value: unknown, style: FileStyle): Splice {
  const col = columnOf(src, rangeOf(keyNode)[0]);
  const deeper = Array.isArray(value) ? col + style.dashOffset : col + style.unit;
  const text = `${style.newline}${blockLines(value, style, deeper)}`;
  if (valueNode && isScalar(valueNode) && valueNode.range && valueNode.range[1] > valueNode.range[0]) {
    // `key: ~` / `key: null`: the scalar goes, and the space before it too.
    const [start, end] = valueNode.range;
    const from = src[start - 1] === ' ' ? start - 1 : start;
    return { at: from, remove: end - from, text };
  }
  return { at: rangeOf(keyNode)[1] + 1, remove: 0, text };
}

/** Adds `item` to a list: a line after the last block item at its dash, or `, item` in a flow list. */
export function appendItem(src: string, seq: YAMLSeq, item: unknown, style: FileStyle): Splice {
  const last = seq.items.at(-1) as Node | undefined;
  if (seq.flow) {
    if (!last) return { at: rangeOf(seq)[0] + 1, remove: 0, text: flowText(item) };
    return { at: rangeOf(last)[1], remove: 0, text: `, ${flowText(item)}` };
  }
  if (!last) throw new Error('appendItem: empty block list');
  const first = seq.items[0] as Node;
  const dash = src.lastIndexOf('-', rangeOf(first)[0] - 1);
  const col = columnOf(src, dash);
  const at = afterLastItem(src, last);
  return { at, remove: 0, text: `${leadingNewline(src, at, style)}${blockLines([item], style, col)}${style.newline}` };
}

/** Replaces a scalar's text by `value` (plain or quoted as `yaml` chooses); comments around it stay. */
export function replaceScalar(src: string, node: Node, value: unknown): Splice {
  const [start, end] = rangeOf(node);
  return { at: start, remove: end - start, text: flowText(value) };
}

/** A new top-level `key:` section at the end of the file, after a blank line. */
export function appendTopLevel(src: string, key: string, value: unknown, style: FileStyle): Splice {
  const at = src.length;
  const sep = src.length === 0 ? '' : src.endsWith('\n') ? style.newline : `${style.newline}${style.newline}`;
  return { at, remove: 0, text: `${sep}${blockLines({ [key]: value }, style, 0)}${style.newline}` };
}

/** Applies splices (non-overlapping) to `src`. */
export function applySplices(src: string, splices: Splice[]): string {
  let out = src;
  for (const s of [...splices].sort((a, b) => b.at - a.at)) out = out.slice(0, s.at) + s.text + out.slice(s.at + s.remove);
  return out;
}

/**
 * Removes the pair at `index` of `map`. A block pair goes with its whole lines (its value's lines and a
 * comment on its last line too; comment lines above it stay, as they may describe more than the key);
 * a flow pair goes with one neighbouring comma. Throws when a block key does not start its line
 * (`- key: v`), which this cannot cut cleanly.
 */
export function removePair(src: string, map: YAMLMap, index: number): Splice {
  const pair = map.items[index];
  if (!pair) throw new Error('removePair: no such pair');
  const key = pair.key as Node;
  const last = (pair.value ?? pair.key) as Node;
  const [keyStart] = rangeOf(key);
  if (map.flow) {
    const next = map.items[index + 1];
    if (next) return { at: keyStart, remove: rangeOf(next.key as Node)[0] - keyStart, text: '' };
    const prev = map.items[index - 1];
    const end = rangeOf(last)[1];
    if (prev) {
      const from = rangeOf((prev.value ?? prev.key) as Node)[1];
      return { at: from, remove: end - from, text: '' };
    }
    return { at: keyStart, remove: end - keyStart, text: '' };
  }
  const start = lineStart(src, keyStart);
  if (src.slice(start, keyStart).trim() !== '') throw new Error('removePair: the key does not start its line');
  return { at: start, remove: afterLastItem(src, last) - start, text: '' };
}
