/**
 * Merging Compose files in order, with the Compose specification's rules (13-merge.md): mappings
 * merge key by key; sequences append; `command`, `entrypoint` and `healthcheck.test` are replaced;
 * `ports`, `volumes`, `secrets` and `configs` merge entries that share a unique key (a volume's
 * target, a port's ip/target/published/protocol); `!reset` removes a value, `!override` replaces it.
 *
 * Files are normalised first (`normalize.ts`), so a short `- "8080:80"` and a long port with the same
 * key are one entry.
 */
import { OverrideValue, ResetValue } from './yaml.ts';

type Dict = Record<string, unknown>;

const isDict = (v: unknown): v is Dict => !!v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype;

/** Removes `!reset`/`!override` markers from a value that has nothing to merge with. */
export function stripMarkers(value: unknown): unknown {
  if (value instanceof ResetValue) return undefined;
  if (value instanceof OverrideValue) return stripMarkers(value.value);
  if (Array.isArray(value)) return value.filter((v) => !(v instanceof ResetValue)).map(stripMarkers);
  if (isDict(value)) {
    const out: Dict = {};
    for (const [k, v] of Object.entries(value)) {
      const s = stripMarkers(v);
      if (s !== undefined) out[k] = s;
    }
    return out;
  }
  return value;
}

const REPLACED = new Set(['command', 'entrypoint']);

function uniqueKey(field: string, entry: unknown): string | undefined {
  if (!isDict(entry)) return undefined;
  switch (field) {
    case 'ports':
      return JSON.stringify([entry.host_ip ?? '', entry.target, entry.published ?? '', entry.protocol ?? 'tcp']);
    case 'volumes':
      return String(entry.target);
    case 'secrets':
    case 'configs':
      return String(entry.target ?? entry.source);
    default:
      return undefined;
  }
}

function mergeKeyed(field: string, base: unknown[], override: unknown[]): unknown[] {
  const out = [...base];
  for (const entry of override) {
    const key = uniqueKey(field, entry);
    const at = key === undefined ? -1 : out.findIndex((e) => uniqueKey(field, e) === key);
    if (at >= 0) out[at] = mergeValue(out[at], entry, []);
    else out.push(stripMarkers(entry));
  }
  return out;
}

function appendUnique(base: unknown[], override: unknown[]): unknown[] {
  const out = [...base];
  for (const entry of override.map(stripMarkers)) {
    const scalar = entry === null || typeof entry !== 'object';
    if (scalar && out.includes(entry)) continue;
    out.push(entry);
  }
  return out;
}

/** Where in a service `path` points: the service-level key, or undefined outside services. */
function serviceField(path: string[]): string[] | undefined {
  return path[0] === 'services' && path.length >= 3 ? path.slice(2) : undefined;
}

function mergeValue(base: unknown, override: unknown, path: string[]): unknown {
  if (override instanceof ResetValue) return undefined;
  if (override instanceof OverrideValue) return stripMarkers(override.value);
  const field = serviceField(path);
  if (Array.isArray(base) && Array.isArray(override)) {
    if (field?.length === 1 && REPLACED.has(field[0]!)) return stripMarkers(override);
    if (field?.length === 2 && field[0] === 'healthcheck' && field[1] === 'test') return stripMarkers(override);
    if (field?.length === 1 && ['ports', 'volumes', 'secrets', 'configs'].includes(field[0]!)) {
      return mergeKeyed(field[0]!, base, override);
    }
    return appendUnique(base, override);
  }
  if (isDict(base) && isDict(override)) {
    const out: Dict = { ...base };
    for (const [k, v] of Object.entries(override)) {
      const merged = k in base ? mergeValue(base[k], v, [...path, k]) : stripMarkers(v);
      if (merged === undefined) delete out[k];
      else out[k] = merged;
    }
    return out;
  }
  return stripMarkers(override);
}

/**
 * Merges normalised Compose files in order: each one overrides or extends the ones before it.
 *
 * @example
 *   mergeComposeFiles([{ services: { web: { image: 'a', ports: [{ target: 80, published: 8080 }] } } },
 *                      { services: { web: { image: 'b' } } }])
 *   // { services: { web: { image: 'b', ports: [{ target: 80, published: 8080 }] } } }
 */
export function mergeComposeFiles(files: Dict[]): Dict {
  let result: Dict = {};
  for (const [i, file] of files.entries()) {
    result = i === 0 ? (stripMarkers(file) as Dict) : (mergeValue(result, file, []) as Dict);
  }
  return result;
}
