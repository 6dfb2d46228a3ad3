/**
 * The value formats Compose shares with the docker CLI: Go durations (`1m30s`), byte sizes
 * (`512m`, binary multiples as docker's RAMInBytes reads them), CPU counts (`0.5`), all turned into
 * the integers the Engine API takes (nanoseconds, bytes, nano-CPUs).
 */

const DURATION_UNITS: Record<string, number> = {
  ns: 1,
  us: 1e3,
  'µs': 1e3,
  'μs': 1e3,
  ms: 1e6,
  s: 1e9,
  m: 60e9,
  h: 3600e9,
};

/**
 * A Go duration string in nanoseconds, as `time.ParseDuration` reads it (`1h2m3.5s`, `250ms`, `0`).
 * Throws `Error` for anything else; callers add which key it was.
 */
export function parseDuration(value: unknown): number {
  if (typeof value === 'number' && Number.isInteger(value)) {
    throw new Error(`duration ${value} has no unit (write e.g. '${value}s')`);
  }
  const s = String(value).trim();
  if (s === '0' || s === '+0' || s === '-0') return 0;
  const m = /^([+-]?)((?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$/.exec(s);
  if (!m) throw new Error(`'${s}' is not a duration (e.g. 30s, 1m30s, 500ms)`);
  let total = 0;
  for (const part of s.replace(/^[+-]/, '').matchAll(/(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g)) {
    total += Number(part[1]) * DURATION_UNITS[part[2]!]!;
  }
  return (m[1] === '-' ? -1 : 1) * Math.round(total);
}

const BYTE_UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };

/** A size in bytes, as docker's `RAMInBytes` reads it: `512m`, `1.5g`, `1024`, `2GiB`, `100kb`. */
export function parseBytes(value: unknown): number {
  if (typeof value === 'number' && Number.isInteger(value) && value >= 0) return value;
  const m = /^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$/.exec(String(value).trim());
  if (!m) throw new Error(`'${String(value)}' is not a size (e.g. 512m, 1g, 1024)`);
  return Math.trunc(Number(m[1]) * BYTE_UNITS[(m[2] ?? '').toLowerCase()]!);
}

/** CPUs (`0.5`, `2`) in nano-CPUs; refuses more precision than a nano-CPU, as docker's ParseCPUs does. */
export function parseCpus(value: unknown): number {
  const s = String(value).trim();
  if (!/^\d*\.?\d+$|^\d+\.$/.test(s)) throw new Error(`'${s}' is not a number of CPUs (e.g. 0.5, 2)`);
  const [whole = '0', frac = ''] = s.split('.');
  if (frac.length > 9) throw new Error(`'${s}' is too precise for a number of CPUs`);
  return Number(whole || '0') * 1e9 + Number(frac.padEnd(9, '0') || '0');
}
