/**
 * `mp dev [--port N] [--data-dir DIR] [--name NODE]`: MiniPaaS on this machine with one command: a real
 * PostgreSQL (embedded, data in `.mp/dev/`; or the one DATABASE_URL names), migrated, an environment
 * `dev`, and an agent on the local Docker engine; it runs one `docker.info` to show the loop working.
 */
import { relative } from 'node:path';
import { z } from 'zod';
import type { DockerEngine } from '../../agent/docker/engine.ts';
import { deployExample, ensureSwarm, exampleDir } from '../dev-example.ts';
import { join } from 'node:path';
import { createEnvironment, submitOperation } from '../../sql/control/database.ts';
import { ensureClusterKeys } from '../../sql/control/sealing.ts';
import { migrate } from '../../sql/migrate.ts';
import { createContext, type Context } from '../context.ts';
import { OperationFailedError, StoppedFollowingError } from '../errors.ts';
import { nodeName, port } from '../inputs.ts';
import { noDockerLine, probeDocker, runLocalAgent, untilStopped } from '../local-agent.ts';
import { control, followOperation, reportOutcome } from '../operations.ts';

export const options = z
  .object({
    port: port.default(54329),
    dataDir: z.string().min(1).default('.mp/dev'),
    name: nodeName.optional(),
    /** Build and deploy the example app (examples/hello) when this installation has it. */
    example: z.boolean().default(true),
    appPort: port.default(8080),
  })
  .strict();
export type Options = z.output<typeof options>;

/** The environment `mp dev` creates and submits to. */
export const DEV_ENVIRONMENT = 'dev';

interface Server {
  url: string;
  stop(): Promise<void>;
}

/** The embedded PostgreSQL, or the server DATABASE_URL names (which `mp dev` neither starts nor stops). */
async function database(ctx: Context, opts: Options): Promise<Server> {
  if (ctx.hasDatabaseUrl()) {
    ctx.stdout.write('using the PostgreSQL named by DATABASE_URL (or --database-url)\n');
    return { url: ctx.databaseUrl(), stop: async () => {} };
  }
  // Imported here only: the embedded server's module is heavy and only `mp dev` needs it.
  const { startDevPostgres } = await import('../../dev/embedded-postgres.ts');
  const server = await startDevPostgres({ dataDir: opts.dataDir, port: opts.port });
  ctx.stdout.write(
    `PostgreSQL started on 127.0.0.1:${server.port}, data in ${server.pgdata} ` +
      `(${server.initialised ? 'initialised now' : 'kept from an earlier run'})\n`,
  );
  return server;
}

/**
 * Starts everything, prints how to connect and what to try, runs a first operation, then waits for
 * Ctrl-C/SIGTERM and stops in reverse order: the agent (it finishes or releases its operations), the
 * pools, the embedded server. The data stays for the next `mp dev`.
 *
 * @example
 *   $ npx mp dev
 *   PostgreSQL started on 127.0.0.1:54329, data in /home/me/app/.mp/dev/pg (initialised now)
 *   applied queues/0001_queues.sql
 *   ...
 *   psql postgres://postgres:postgres@127.0.0.1:54329/minipaas
 */
export async function run(ctx: Context, opts: Options): Promise<void> {
  const out = (line: string): void => void ctx.stdout.write(`${line}\n`);
  const server = await database(ctx, opts);
  try {
    // A context on the server just started: the commands' helpers (follow, submit) run on it.
    const dev = createContext({ stdout: ctx.stdout, stderr: ctx.stderr, databaseUrl: server.url, signal: ctx.signal, clock: ctx.clock });
    try {
      const migrated = await migrate({ connectionString: server.url, onApply: (id) => out(`applied ${id}`) });
      out(`database is up to date (${migrated.applied.length} applied now, ${migrated.alreadyApplied} before)`);
      await createEnvironment(control(dev), DEV_ENVIRONMENT);
      // The cluster key secrets are sealed to: its private half in a 0600 file beside the data.
      const keyFile = join(opts.dataDir, 'cluster.key');
      const { keys, created } = await ensureClusterKeys(control(dev), keyFile);
      out(`cluster key ${created ? 'created in' : 'read from'} ${keyFile} (mode 0600; secrets are sealed to it)`);
      const docker = await probeDocker(dev);
      const example = opts.example ? exampleDir() : undefined;
      // Before the agent starts, so it registers as the Swarm manager it then is.
      const swarm = docker && example ? await ensureSwarm(docker, out) : false;
      // Also the provisioner: `mp provision` reaches hosts over SSH from this machine.
      const local = await runLocalAgent(dev, { url: server.url, name: opts.name, docker, clusterKeys: keys, provisioner: true });
      try {
        const { agent } = local;
        out(`agent ${agent.name} registered; claims ${agent.targets.join(', ')}${docker ? ` on Docker at ${docker.endpoint}` : ' (no Docker engine)'}`);
        if (!docker) out(noDockerLine(agent.name));
        out('');
        out('MiniPaaS dev is up. Look at everything with:');
        out(`  psql ${server.url}`);
        out('Run an operation and watch it, from another terminal:');
        out(`  DATABASE_URL=${server.url} npx mp ops submit docker.info --env ${DEV_ENVIRONMENT}`);
        out(`  DATABASE_URL=${server.url} npx mp ops ls`);
        out('');
        await firstOperation(dev);
        out('');
        if (docker && example && swarm) {
          await showExample(dev, docker, { dir: example, databaseUrl: server.url, dataDir: opts.dataDir, port: opts.appPort });
          out('');
        }
        out('running; Ctrl-C stops the agent and the database (the data stays for the next `mp dev`)');
        await untilStopped(ctx);
        ctx.stderr.write('stopping: the agent finishes or releases its operations, then the database stops\n');
      } finally {
        await local.stop();
      }
    } finally {
      await dev.close();
    }
  } finally {
    await server.stop();
  }
  out('mp dev stopped');
}

/** Builds and deploys the example app and prints its URL; a failure is reported, not fatal. */
async function showExample(dev: Context, docker: DockerEngine, opts: { dir: string; databaseUrl: string; dataDir: string; port: number }): Promise<void> {
  dev.stdout.write(`deploying the example app (${relative(process.cwd(), opts.dir) || opts.dir}): build, release, converge\n`);
  try {
    const url = await deployExample(dev, docker, opts);
    dev.stdout.write(`the example app answers at ${url} (POST ${url}jobs enqueues a job; its worker drains them)\n`);
  } catch (err) {
    if (err instanceof StoppedFollowingError) throw err;
    dev.stderr.write(`warning: the example app was not deployed: ${err instanceof Error ? err.message : String(err)}\n`);
  }
}

/** Submits one `docker.info` and follows it: the whole loop, visible. Its failure (no Docker) is reported, not fatal. */
async function firstOperation(dev: Context): Promise<void> {
  const id = await submitOperation(control(dev), { kind: 'docker.info', environment: DEV_ENVIRONMENT, payload: {}, options: { target: 'any' } });
  dev.stdout.write(`first operation: ${id} docker.info (env ${DEV_ENVIRONMENT})\n`);
  try {
    reportOutcome(dev, await followOperation(dev, id));
  } catch (err) {
    if (err instanceof OperationFailedError) dev.stderr.write(`warning: ${err.message}\n`);
    else if (!(err instanceof StoppedFollowingError)) throw err;
  }
}
