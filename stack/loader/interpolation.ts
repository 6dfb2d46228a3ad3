/**
 * Variable interpolation in Compose files: `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
 * `${VAR:?error}`, `${VAR?error}`, and `$$` for a literal `$`. Defaults may themselves hold
 * variables (`${A:-${B}}`), as Compose v2 allows (docker/cli's own regex does not nest; a file that
 * works there works here).
 *
 * After substitution, values at paths that must be numbers or booleans (`deploy.replicas`,
 * `ports[].published`, `read_only`...) are converted, as docker/cli's loader does, so
 * `replicas: ${REPLICAS}` works.
 */
import { ConfigError } from '../../sql/errors.ts';
import { OverrideValue } from './yaml.ts';

/** Variables for interpolation: already merged by the caller (.env, then minipaas.yaml `env:`, then the process). */
export type Environment = Readonly<Record<string, string>>;

const NAME = /^[A-Za-z_][A-Za-z0-9_]*/;

class TemplateError extends Error {}

/** Finds the `}` closing a `${` opened just before `from`, skipping nested `${...}`. */
function closingBrace(s: string, from: number): number {
  let depth = 1;
  for (let i = from; i < s.length; i++) {
    if (s[i] === '$' && s[i + 1] === '{') {
      depth++;
      i++;
    } else if (s[i] === '}') {
      depth--;
      if (depth === 0) return i;
    }
  }
  return -1;
}

/**
 * Substitutes the variables in one string. Throws `ConfigError` for a required variable that is
 * unset (or empty, with `:?`) and for a malformed template.
 *
 * @example
 *   substitute('${TAG:-latest}', { }) // 'latest'
 */
export function substitute(template: string, env: Environment): string {
  let out = '';
  for (let i = 0; i < template.length; i++) {
    const c = template[i];
    if (c !== '$') {
      out += c;
      continue;
    }
    const next = template[i + 1];
    if (next === '$') {
      out += '$';
      i++;
      continue;
    }
    if (next === '{') {
      const end = closingBrace(template, i + 2);
      if (end < 0) throw new TemplateError(`unclosed '\${' in "${template}"`);
      out += expand(template.slice(i + 2, end), env, template);
      i = end;
      continue;
    }
    const m = NAME.exec(template.slice(i + 1));
    if (!m) throw new TemplateError(`'$' must be followed by a variable name or '{' in "${template}" (write '$$' for a literal '$')`);
    out += env[m[0]] ?? '';
    i += m[0].length;
  }
  return out;
}

function expand(body: string, env: Environment, template: string): string {
  const m = NAME.exec(body);
  if (!m) throw new TemplateError(`invalid variable '\${${body}}' in "${template}"`);
  const name = m[0];
  const rest = body.slice(name.length);
  const value = env[name];
  if (rest === '') return value ?? '';
  const op = rest.startsWith(':') ? rest.slice(0, 2) : rest.slice(0, 1);
  const arg = rest.slice(op.length);
  const unset = value === undefined;
  const empty = unset || value === '';
  switch (op) {
    case ':-':
      return empty ? substitute(arg, env) : value;
    case '-':
      return unset ? substitute(arg, env) : value;
    case ':?':
    case '?':
      if (op === ':?' ? empty : unset) {
        const why = substitute(arg, env);
        throw new ConfigError(
          'COMPOSE_REQUIRED_VARIABLE',
          `required variable ${name} is ${unset ? 'not set' : 'empty'}${why ? `: ${why}` : ''}`,
          `set ${name} in the environment directory's .env, in minipaas.yaml \`env:\`, or in your shell`,
        );
      }
      return value ?? '';
    default:
      throw new TemplateError(`invalid variable '\${${body}}' in "${template}" (expected :-, -, :? or ?)`);
  }
}

type Cast = 'int' | 'float' | 'bool';

/**
 * Paths (`*` matches any key or index) whose values become numbers or booleans after substitution;
 * the same list as docker/cli's `interpolateTypeCastMapping`.
 */
const CASTS: Array<[string[], Cast]> = [
  [['services', '*', 'configs', '*', 'mode'], 'int'],
  [['services', '*', 'secrets', '*', 'mode'], 'int'],
  [['services', '*', 'healthcheck', 'retries'], 'int'],
  [['services', '*', 'healthcheck', 'disable'], 'bool'],
  [['services', '*', 'deploy', 'replicas'], 'int'],
  [['services', '*', 'deploy', 'update_config', 'parallelism'], 'int'],
  [['services', '*', 'deploy', 'update_config', 'max_failure_ratio'], 'float'],
  [['services', '*', 'deploy', 'rollback_config', 'parallelism'], 'int'],
  [['services', '*', 'deploy', 'rollback_config', 'max_failure_ratio'], 'float'],
  [['services', '*', 'deploy', 'restart_policy', 'max_attempts'], 'int'],
  [['services', '*', 'deploy', 'placement', 'max_replicas_per_node'], 'int'],
  [['services', '*', 'deploy', 'resources', 'limits', 'pids'], 'int'],
  [['services', '*', 'ports', '*', 'target'], 'int'],
  [['services', '*', 'ports', '*', 'published'], 'int'],
  [['services', '*', 'ulimits', '*'], 'int'],
  [['services', '*', 'ulimits', '*', 'hard'], 'int'],
  [['services', '*', 'ulimits', '*', 'soft'], 'int'],
  [['services', '*', 'privileged'], 'bool'],
  [['services', '*', 'init'], 'bool'],
  [['services', '*', 'oom_score_adj'], 'int'],
  [['services', '*', 'read_only'], 'bool'],
  [['services', '*', 'stdin_open'], 'bool'],
  [['services', '*', 'tty'], 'bool'],
  [['services', '*', 'volumes', '*', 'read_only'], 'bool'],
  [['services', '*', 'volumes', '*', 'volume', 'nocopy'], 'bool'],
  [['networks', '*', 'external'], 'bool'],
  [['networks', '*', 'internal'], 'bool'],
  [['networks', '*', 'attachable'], 'bool'],
  [['volumes', '*', 'external'], 'bool'],
  [['secrets', '*', 'external'], 'bool'],
  [['configs', '*', 'external'], 'bool'],
];

function castFor(path: string[]): Cast | undefined {
  for (const [pattern, cast] of CASTS) {
    if (pattern.length === path.length && pattern.every((p, i) => p === '*' || p === path[i])) return cast;
  }
  return undefined;
}

function applyCast(value: string, cast: Cast, where: string): unknown {
  if (cast === 'bool') {
    // YAML 1.1's booleans, as docker/cli accepts them after interpolation.
    const v = value.toLowerCase();
    if (['y', 'yes', 'true', 'on'].includes(v)) return true;
    if (['n', 'no', 'false', 'off'].includes(v)) return false;
    throw new ConfigError('COMPOSE_INTERPOLATION', `${where}: '${value}' is not a boolean`, 'use true or false');
  }
  if (cast === 'int' && /^[+-]?\d+$/.test(value.trim())) return Number(value.trim());
  if (cast === 'float' && value.trim() !== '' && !Number.isNaN(Number(value))) return Number(value);
  // A published port may be a range ("8000-8001"): the port parser reads it.
  if (where.endsWith('.published') && /^\d+-\d+$/.test(value)) return value;
  throw new ConfigError(
    'COMPOSE_SCHEMA',
    `${where}: must be ${cast === 'int' ? 'integer' : 'number'} (got '${value}')`,
    'write a number, or a variable that holds one',
  );
}

/** `services.web.ports[0].target`: the key path as messages show it. */
export function formatPath(path: readonly string[]): string {
  return path.map((p, i) => (/^\d+$/.test(p) ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

/**
 * Interpolates every string of a parsed Compose file (values, not keys) and converts the typed
 * paths. `file` names the file in error messages.
 */
export function interpolateConfig(config: Record<string, unknown>, env: Environment, file: string): Record<string, unknown> {
  const walk = (value: unknown, path: string[]): unknown => {
    if (typeof value === 'string') {
      let result: string;
      try {
        result = substitute(value, env);
      } catch (err) {
        const where = `${file}: ${formatPath(path)}`;
        if (err instanceof TemplateError) {
          throw new ConfigError('COMPOSE_INTERPOLATION', `${where}: ${err.message}`, "write '$$' for a literal '$'");
        }
        if (err instanceof ConfigError) throw new ConfigError(err.code, `${where}: ${err.message}`, err.hint);
        throw err;
      }
      const cast = castFor(path);
      // Every string at a typed path is converted, written literally or not, as docker/cli does.
      return cast ? applyCast(result, cast, `${file}: ${formatPath(path)}`) : result;
    }
    if (Array.isArray(value)) return value.map((v, i) => walk(v, [...path, String(i)]));
    if (value && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) out[k] = walk(v, [...path, k]);
      return out;
    }
    // !override wraps a value: interpolate inside it, keep the marker.
    if (value instanceof OverrideValue) return new OverrideValue(walk(value.value, path));
    return value;
  };
  return walk(config, []) as Record<string, unknown>;
}
