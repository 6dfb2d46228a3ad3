/**
 * Reading an environment directory (`--env DIR`): its minipaas.yaml, the Compose files it names, its
 * `.env`, and the git commit it is at; then the Compose stages (`stack/`) turn them into the desired
 * stack. The directory, not the database, is the source of truth for what to deploy; the database keeps
 * every release that was deployed from it.
 *
 * Interpolation variables, each source overriding the one before: the directory's `.env`, then
 * minipaas.yaml `env:`, then `VERSION` (minipaas.yaml `deploy.version`), then the process environment
 * (so a shell can override a file, as with Compose).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { withIngress } from '../agent/routing/ingress.ts';
import { parseRoutes } from '../agent/routing/routes.ts';
import { ConfigError, NotFoundError } from '../sql/errors.ts';
import type { ReleaseSource } from '../sql/control/releases.ts';
import { parseEnvironmentFile, type EnvironmentSettings } from '../stack/environment.ts';
import { convertStack, loadCompose, validateStackName, type ComposeModel } from '../stack/index.ts';
import type { StackSpec } from '../stack/types.ts';

/** The settings file of an environment directory. */
export const SETTINGS_FILE = 'minipaas.yaml';

/** A loaded environment: what it is called, its settings, and the stack it deploys. */
export interface LoadedEnvironment {
  /** The database name of the environment: the directory's name, lower-cased, other characters as `_`. */
  name: string;
  dir: string;
  /** Where relative paths in the Compose files start: the first file's folder. */
  projectDir: string;
  settings: EnvironmentSettings;
  spec: StackSpec;
  /** The merged Compose model the spec was converted from (its `build:` sections feed `mp deploy build`). */
  model: ComposeModel;
  source: ReleaseSource;
}

/** `examples/hello-world` -> `hello_world`: environment names are SQL-safe identifiers. */
export function environmentNameOf(dir: string): string {
  const name = basename(resolve(dir)).toLowerCase().replace(/[^a-z0-9_]+/g, '_').replace(/^([0-9])/, '_$1');
  return name || 'default';
}

/** The directory of `--env`; `NotFoundError` with the `mp code init` hint when it has no minipaas.yaml. */
export function environmentDir(env: string, cwd: string = process.cwd()): string {
  const dir = isAbsolute(env) ? env : resolve(cwd, env);
  if (!existsSync(join(dir, SETTINGS_FILE))) {
    throw new NotFoundError(
      'NO_ENVIRONMENT',
      `${relative(cwd, join(dir, SETTINGS_FILE)) || SETTINGS_FILE} does not exist: '${env}' is not an environment directory`,
      `create it with \`mp code init --env ${env} --files compose.yaml\``,
    );
  }
  return dir;
}

/** Reads the settings of an environment directory. */
export function readSettings(dir: string): EnvironmentSettings {
  const path = join(dir, SETTINGS_FILE);
  return parseEnvironmentFile(path, readFileSync(path, 'utf8'));
}

/** `KEY=VALUE` lines of a `.env` file, as Compose reads them (comments, `export `, quotes). */
export function parseDotEnv(text: string): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*(.*)$/.exec(line);
    if (!m) continue;
    let value = m[2]!;
    const quote = value[0];
    if ((quote === '"' || quote === "'") && value.endsWith(quote) && value.length >= 2) {
      value = value.slice(1, -1);
      if (quote === '"') value = value.replace(/\\n/g, '\n').replace(/\\"/g, '"');
    } else {
      value = value.replace(/\s+#.*$/, '');
    }
    vars[m[1]!] = value;
  }
  return vars;
}

/** The git commit of a directory, and whether it has changes; null outside a repository or without git. */
function gitState(dir: string): { commit: string | null; dirty: boolean } {
  try {
    const commit = execFileSync('git', ['-C', dir, 'rev-parse', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const status = execFileSync('git', ['-C', dir, 'status', '--porcelain', '--', '.'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return { commit, dirty: status.trim() !== '' };
  } catch {
    return { commit: null, dirty: false };
  }
}

/**
 * Loads an environment directory into the stack it deploys. Throws `ConfigError`/`NotFoundError` for
 * every problem with the directory or its files (nothing is written anywhere).
 *
 * @example
 *   const env = loadEnvironment('prod');          // prod/minipaas.yaml and its Compose files
 *   env.spec.services.map((s) => s.name)          // ['shop_web', 'shop_worker']
 */
export function loadEnvironment(env: string, opts: { cwd?: string; processEnv?: Record<string, string | undefined>; safeDefaults?: boolean } = {}): LoadedEnvironment {
  const dir = environmentDir(env, opts.cwd);
  const settings = readSettings(dir);
  const files = settings.project.files.map((file) => {
    const path = resolve(dir, file);
    if (!existsSync(path) || !statSync(path).isFile()) {
      throw new NotFoundError('NO_COMPOSE_FILE', `${relative(process.cwd(), path)} does not exist (named in ${SETTINGS_FILE} project.files)`, `create it, or fix project.files in ${join(env, SETTINGS_FILE)}`);
    }
    return { path, content: readFileSync(path, 'utf8') };
  });
  const dotEnvPath = join(dir, '.env');
  const processEnv = Object.fromEntries(Object.entries(opts.processEnv ?? process.env).filter((e): e is [string, string] => e[1] !== undefined));
  const variables: Record<string, string> = {
    ...(existsSync(dotEnvPath) ? parseDotEnv(readFileSync(dotEnvPath, 'utf8')) : {}),
    ...settings.env,
    ...(settings.deploy.version !== undefined ? { VERSION: settings.deploy.version } : {}),
    ...processEnv,
  };
  const stack = settings.stack ?? basename(dir);
  validateStackName(stack);
  // Compose's project directory: relative paths in the files start at the first file's folder.
  const projectDir = dirname(files[0]!.path);
  // The ingress (Caddy) joins the model as one more service when minipaas.yaml has routes:.
  const model = withIngress(loadCompose({ files, env: variables, workingDir: projectDir }), parseRoutes(settings.routes));
  const readFile = (path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch {
      throw new ConfigError('FILE_NOT_FOUND', `${relative(process.cwd(), path)} does not exist (named in a Compose file)`, 'create it or fix the path');
    }
  };
  const spec = convertStack(model, { stack, workingDir: projectDir, env: variables, readFile }, { safeDefaults: opts.safeDefaults ?? settings.deploy.safe_defaults });
  const git = gitState(dir);
  return {
    name: environmentNameOf(dir),
    dir,
    projectDir,
    settings,
    spec,
    model,
    source: {
      dir,
      files: files.map((f) => ({ path: relative(dir, f.path), sha256: createHash('sha256').update(f.content).digest('hex') })),
      settings,
      git_commit: git.commit,
      git_dirty: git.dirty,
    },
  };
}
