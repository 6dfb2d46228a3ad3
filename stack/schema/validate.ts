/**
 * Validation of one Compose file against the Compose specification's JSON schema (vendored, see
 * README.md), with errors as one line per problem: the key path and what is allowed there.
 */
import type { ErrorObject, ValidateFunction } from 'ajv';
import { createRequire } from 'node:module';
import { ConfigError } from '../../sql/errors.ts';
import { nearMiss } from '../../agent/executors/near-miss.ts';
import { compileComposeSchema, STANDALONE_FILE } from './compile.ts';

let compiled: ValidateFunction | undefined;

/** The validator the build compiled ahead of time (see compile.ts), or undefined in the sources. */
function precompiled(): ValidateFunction | undefined {
  try {
    return createRequire(import.meta.url)(`./${STANDALONE_FILE}`) as ValidateFunction;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND') return undefined;
    throw err;
  }
}

function validator(): ValidateFunction {
  compiled ??= precompiled() ?? compileComposeSchema();
  return compiled;
}

function keyPath(instancePath: string): string {
  return instancePath
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((p) => (/^\d+$/.test(p) ? `[${p}]` : `.${p}`))
    .join('')
    .replace(/^\./, '');
}

/** The properties a schema node allows, to suggest the near miss for an unknown key. */
function allowedProperties(err: ErrorObject): string[] {
  const props = (err.parentSchema as { properties?: Record<string, unknown> } | undefined)?.properties;
  return props ? Object.keys(props) : [];
}

function describe(err: ErrorObject): string {
  const at = keyPath(err.instancePath) || '(top level)';
  const params = err.params as Record<string, unknown>;
  switch (err.keyword) {
    case 'additionalProperties': {
      const prop = String(params.additionalProperty);
      const allowed = allowedProperties(err);
      const guess = nearMiss(prop, allowed);
      return `${at}: '${prop}' is not allowed${guess ? ` (did you mean '${guess}'?)` : ''}${
        allowed.length && allowed.length <= 12 ? `; allowed: ${allowed.join(', ')}` : ''
      }`;
    }
    case 'type':
      return `${at}: must be ${String(params.type).replace(/,/g, ' or ')}`;
    case 'enum':
      return `${at}: must be one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
    case 'required':
      return `${at}: '${String(params.missingProperty)}' is required`;
    case 'pattern':
      return `${at}: must match ${String(params.pattern)}`;
    default:
      return `${at}: ${err.message ?? err.keyword}`;
  }
}

/**
 * The problems of one file, one line each, most specific first. `oneOf`/`anyOf` failures are
 * reported through their branches' errors when those are more precise (a path deeper in the file),
 * so a wrong type inside a long-syntax entry does not come out as "must match exactly one schema".
 */
export function schemaErrors(config: unknown): string[] {
  const validate = validator();
  if (validate(config)) return [];
  const errors = validate.errors ?? [];
  const lines: string[] = [];
  const within = (e: ErrorObject, o: ErrorObject): boolean =>
    o.instancePath === e.instancePath || o.instancePath.startsWith(e.instancePath + '/');
  for (const e of errors) {
    // A oneOf/anyOf failure, and the type mismatches of its other branches ("must be string" next to
    // the object branch's real problem), are noise when a branch says something more precise.
    const precise = (o: ErrorObject): boolean => o !== e && within(e, o) && !['oneOf', 'anyOf', 'if', 'type'].includes(o.keyword);
    if (e.keyword === 'type' && errors.some(precise)) continue;
    if (['oneOf', 'anyOf', 'if'].includes(e.keyword) && errors.some((o) => o !== e && within(e, o))) continue;
    const line = describe(e);
    if (!lines.includes(line)) lines.push(line);
  }
  // Sibling type errors of a oneOf ("must be string", "must be object") read better as one line.
  const merged: string[] = [];
  for (const line of lines) {
    const m = /^(.*): must be (.*)$/.exec(line);
    const prev = m ? merged.findIndex((l) => l.startsWith(`${m[1]}: must be `)) : -1;
    if (m && prev >= 0) merged[prev] = `${merged[prev]} or ${m[2]}`;
    else merged.push(line);
  }
  return merged;
}

/**
 * Throws `ConfigError` (`COMPOSE_SCHEMA`) listing every schema problem of `config`, one line each,
 * prefixed with the file.
 *
 * @example
 *   validateCompose({ services: { web: { deploy: { replicas: 'x' } } } }, 'compose.yaml')
 *   // ConfigError: compose.yaml does not follow the Compose specification:
 *   //   services.web.deploy.replicas: must be integer
 */
export function validateCompose(config: unknown, file: string): void {
  const problems = schemaErrors(config);
  if (problems.length === 0) return;
  throw new ConfigError(
    'COMPOSE_SCHEMA',
    `${file} does not follow the Compose specification:\n${problems.map((p) => `  ${p}`).join('\n')}`,
    'see https://github.com/compose-spec/compose-spec/blob/main/05-services.md for the keys a service takes',
  );
}
