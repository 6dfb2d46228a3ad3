/**
 * `env_file:` and `environment:` to the container's Env list, with docker/cli's rules: env files
 * first, then `environment:` over them; a variable given without a value (`- DEBUG`, or `DEBUG=`
 * empty) takes its value from the interpolation environment when that has it; the list is sorted.
 */
import { posix } from 'node:path';
import { convertError } from './errors.ts';
import type { ConvertContext } from './namespace.ts';

type Dict = Record<string, unknown>;

/**
 * Parses an env file as docker's CLI does: `KEY=value` lines taken as they are (no quote removal,
 * trailing spaces kept), `#` comments and blank lines skipped, a bare `KEY` looked up in `env` and
 * dropped when unset.
 */
export function parseEnvFile(text: string, env: Readonly<Record<string, string>>, where: string): Array<[string, string | null]> {
  const out: Array<[string, string | null]> = [];
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  for (const [i, raw] of lines.entries()) {
    const line = raw.replace(/^\s+/, '');
    if (line === '' || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    const key = eq < 0 ? line : line.slice(0, eq);
    if (key === '') throw convertError(where, `line ${i + 1}: no variable name`);
    if (/\s/.test(key)) throw convertError(where, `line ${i + 1}: variable '${key}' contains whitespace`);
    if (eq >= 0) out.push([key, line.slice(eq + 1)]);
    else if (env[key] !== undefined) out.push([key, env[key]]);
  }
  return out;
}

interface EnvFileEntry {
  path: string;
  required: boolean;
}

function envFiles(v: unknown): EnvFileEntry[] {
  if (!Array.isArray(v)) return [];
  return v.map((e) =>
    typeof e === 'string' ? { path: e, required: true } : { path: String((e as Dict).path), required: (e as Dict).required !== false },
  );
}

/** The container's Env: `KEY=value` entries, or `KEY` alone for a variable left unset. */
export function convertEnvironment(svc: Dict, ctx: ConvertContext, where: string): string[] {
  const merged = new Map<string, string | null>();
  const put = (key: string, value: string | null): void => {
    const fromEnv = ctx.env[key];
    merged.set(key, (value === null || value === '') && fromEnv !== undefined ? fromEnv : value);
  };
  for (const file of envFiles(svc.env_file)) {
    const path = posix.isAbsolute(file.path) ? file.path : posix.join(ctx.workingDir, file.path);
    let text: string;
    try {
      const data = ctx.readFile(path);
      text = typeof data === 'string' ? data : data.toString('utf8');
    } catch (err) {
      if (!file.required) continue;
      throw convertError(`${where}.env_file`, `cannot read ${path}: ${(err as Error).message}`, 'relative paths start from the environment directory');
    }
    for (const [k, v] of parseEnvFile(text, ctx.env, `${where}.env_file ${path}`)) put(k, v);
  }
  for (const [k, v] of Object.entries((svc.environment as Record<string, string | null> | undefined) ?? {})) put(k, v);
  return [...merged.entries()].map(([k, v]) => (v === null ? k : `${k}=${v}`)).sort();
}
