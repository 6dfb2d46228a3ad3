/**
 * Compose files to Swarm specs, as pure functions: `loadStack` runs the loader (parse, interpolate,
 * validate, merge), then the converter. The CLI uses it to validate and plan; the agent applies its
 * result (`agent/deploy/`).
 */
import { ConfigError } from '../sql/errors.ts';
import { convertStack } from './convert/index.ts';
import { loadCompose, type ComposeFile, type Environment } from './loader/index.ts';
import type { StackSpec } from './types.ts';

export type { StackSpec, StackNetwork, StackObject, StackService, StackJob, CronSchedule, OverlapPolicy, CatchUpPolicy } from './types.ts';
export type { ComposeFile, Environment, ComposeModel } from './loader/index.ts';
export { loadCompose } from './loader/index.ts';
export { convertStack } from './convert/index.ts';
export { NAMESPACE_LABEL, IMAGE_LABEL } from './convert/index.ts';

/** What `loadStack` reads. */
export interface LoadStackInput {
  /** The stack (namespace) name; see `validateStackName`. */
  name: string;
  /** Compose files in order, as data; later files override earlier ones. */
  files: ComposeFile[];
  /**
   * Interpolation variables, merged by the caller: the environment directory's `.env`, then
   * minipaas.yaml `env:`, then the process environment, each later source winning.
   */
  env: Environment;
  /** Absolute directory that relative paths in the files start from. */
  workingDir: string;
  /** Reads a file the Compose files name (env_file, secret and config `file:`), by absolute path. */
  readFile: (path: string) => Buffer | string;
  /** MiniPaaS's update/rollback defaults where the files set none (docs/compose.md). Default true. */
  safeDefaults?: boolean;
}

/**
 * Docker's own check (`docker stack deploy` refuses only empty names) plus what the engine refuses
 * later in object names: a stack name must be letters, digits, `-` and `_`, start and end with a
 * letter or digit, and leave room for `_<service>` in Swarm's 63 characters. Throws `ConfigError`.
 *
 * @example validateStackName('shop-prod') // ok; validateStackName('Shop prod') throws
 */
export function validateStackName(name: string): void {
  const ok = /^[a-zA-Z0-9](?:[a-zA-Z0-9_-]*[a-zA-Z0-9])?$/.test(name) && name.length <= 50;
  if (ok) return;
  const fixed = name.trim().toLowerCase().replace(/[^a-z0-9_-]+/g, '-').replace(/^[-_]+|[-_]+$/g, '').slice(0, 50);
  throw new ConfigError(
    'INVALID_STACK_NAME',
    name.trim() === ''
      ? 'the stack name is empty'
      : `stack name '${name}' is not valid: Docker names its objects '<stack>_<service>', which allows letters, digits, '-' and '_' (starting and ending with a letter or digit), at most 50 characters for the stack`,
    fixed ? `use e.g. '${fixed}' (set \`stack:\` in minipaas.yaml)` : 'set `stack:` in minipaas.yaml',
  );
}

/**
 * Loads Compose files into the desired stack: what `docker stack deploy -c FILE... NAME` would
 * create. Throws `ConfigError` for bad input (file, line and column; schema path; unset required
 * variable; undefined network, volume, secret or config; invalid stack name).
 *
 * @example
 *   const spec = loadStack({ name: 'shop', files: [{ path: '/srv/shop/compose.yaml', content }],
 *                            env: { TAG: '1.4' }, workingDir: '/srv/shop', readFile: (p) => readFileSync(p) });
 */
export function loadStack(input: LoadStackInput): StackSpec {
  validateStackName(input.name);
  const model = loadCompose({ files: input.files, env: input.env, workingDir: input.workingDir });
  return convertStack(
    model,
    { stack: input.name, workingDir: input.workingDir, env: input.env, readFile: input.readFile },
    { safeDefaults: input.safeDefaults },
  );
}
