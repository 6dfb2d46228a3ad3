/**
 * The part of `mp dev` that shows MiniPaaS doing its main job: a single-node Swarm on the local engine
 * (initialised when the engine is in none), the example app's images built through the Docker API,
 * the example deployed as a release by the local agent, and its URL. Runs only where the example
 * exists (this repository); an installed package skips it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { vendorMinipaas } from '../agent/build/vendor.ts';
import { buildsOf } from '../agent/build/compose.ts';
import type { DockerEngine } from '../agent/docker/engine.ts';
import type { Context } from './context.ts';
import { buildServices } from './builds.ts';
import { deployRelease, submitRelease } from './deploys.ts';
import { loadEnvironment } from './environment.ts';

/** The example environment `mp dev` deploys, relative to the package root. */
export const EXAMPLE_ENVIRONMENT = 'examples/hello/dev';

/** The package root (where package.json is), from the sources or the build. */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
}

/** The example's directory, or undefined when this installation has none. */
export function exampleDir(): string | undefined {
  const dir = resolve(packageRoot(), EXAMPLE_ENVIRONMENT);
  return existsSync(join(dir, 'minipaas.yaml')) ? dir : undefined;
}

/**
 * Makes sure the engine is a Swarm manager: a lone engine becomes a single-node Swarm on 127.0.0.1
 * (said, with how to undo it). Returns false when the engine is in a Swarm as a worker.
 */
export async function ensureSwarm(docker: DockerEngine, out: (line: string) => void): Promise<boolean> {
  const info = await docker.info();
  if (info.swarm.state === 'active') return info.swarm.controlAvailable;
  if (info.swarm.state !== 'inactive') {
    out(`the engine's swarm is ${info.swarm.state}: not deploying the example (see \`docker info\`)`);
    return false;
  }
  await docker.initSwarm('127.0.0.1');
  out('the engine was in no swarm: initialised a single-node Swarm on 127.0.0.1 (`docker swarm leave --force` undoes it)');
  return true;
}

/** Whether a build context is an app on the `minipaas` package (it then gets the package vendored in). */
function usesMinipaas(context: string): boolean {
  try {
    const pkg = JSON.parse(readFileSync(join(context, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
    return pkg.dependencies?.minipaas !== undefined;
  } catch {
    return false;
  }
}

/**
 * Builds and deploys the example against the dev database and follows the deploy; returns the URL it
 * answers on. The app reaches the database at `databaseUrl` (the services share the host's network),
 * read from a 0600 file under `dataDir`.
 */
export async function deployExample(dev: Context, docker: DockerEngine, opts: { dir: string; databaseUrl: string; dataDir: string; port?: number }): Promise<string> {
  const port = String(opts.port ?? 8080);
  // The URL carries the dev server's password: it reaches the services as a file-based secret, which
  // the release stores sealed (compose.dev.yaml), never as an environment value in the database.
  const urlFile = resolve(opts.dataDir, 'example-database-url');
  await mkdir(dirname(urlFile), { recursive: true });
  await writeFile(urlFile, opts.databaseUrl, { mode: 0o600 });
  await chmod(urlFile, 0o600);
  const env = loadEnvironment(opts.dir, { processEnv: { ...process.env, MP_DEV_DATABASE_URL_FILE: urlFile, HELLO_PORT: port } });
  const contexts = new Set(buildsOf(env.model.services, { projectDir: env.projectDir }).map((b) => b.inputs.context));
  for (const context of contexts) if (usesMinipaas(context)) await vendorMinipaas(context);
  await buildServices(dev, docker, env);
  await submitRelease(dev, await deployRelease(dev, env), { detach: false });
  return `http://127.0.0.1:${port}/`;
}
