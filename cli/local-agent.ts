/**
 * Running a node agent inside `mp` (`mp agent`, `mp dev`): the schema check that keeps an agent off a
 * database it does not match, the Docker probe that says up front which operations cannot run, and a
 * logger that writes the agent's steps to stderr.
 */
import pg from 'pg';
import { startAgent, type RunningAgent } from '../agent/agent.ts';
import { connectDocker, type DockerEngine } from '../agent/docker/engine.ts';
import { executors, knownKinds, type Json, type Logger } from '../agent/executors/index.ts';
import { ConflictError, mapDatabaseErrors } from '../sql/errors.ts';
import { loadClusterKeys, type ClusterKeys } from '../sql/control/sealing.ts';
import { loadMigrations } from '../sql/migrate.ts';
import type { Context, Writer } from './context.ts';
import { formatTime } from './output.ts';

/** How long the Docker probe waits: an engine that answers at all answers a ping in milliseconds. */
const DOCKER_PING_MS = 2000;

/**
 * Refuses a database that lacks a migration this code knows (run `mp migrate`) or has a breaking one it
 * does not (a newer MiniPaaS wrote it). Agents never migrate: two versions migrating back and forth
 * during a rolling upgrade is the race this avoids; `mp dev` migrates its own database first.
 */
export async function checkSchema(pool: pg.Pool): Promise<void> {
  const known = await loadMigrations();
  let applied: { id: string; breaking: boolean }[];
  try {
    applied = (await mapDatabaseErrors(() => pool.query<{ id: string; breaking: boolean }>(`select id, breaking from mp.migrations`))).rows;
  } catch (err) {
    if ((err as { code?: string }).code !== '42P01') throw err; // undefined_table: never migrated
    applied = [];
  }
  const appliedIds = new Set(applied.map((m) => m.id));
  const missing = known.filter((m) => !appliedIds.has(m.id)).map((m) => m.id);
  if (missing.length > 0) {
    throw new ConflictError(
      'SCHEMA_BEHIND',
      `the database lacks ${missing.length} migration${missing.length === 1 ? '' : 's'} this agent needs: ${missing.join(', ')}`,
      'run `mp migrate` against it first (agents never migrate by themselves)',
    );
  }
  const knownIds = new Set(known.map((m) => m.id));
  const newer = applied.filter((m) => m.breaking && !knownIds.has(m.id)).map((m) => m.id);
  if (newer.length > 0) {
    throw new ConflictError(
      'SCHEMA_NEWER',
      `the database has breaking migration${newer.length === 1 ? '' : 's'} ${newer.join(', ')}, which this version of MiniPaaS does not know`,
      'upgrade mp (and the agents) to the version that wrote this schema',
    );
  }
}

/** Agent log lines on stderr: `2026-11-26T23:31:39Z agent info: agent registered {"name":"laptop"}`. */
export function stderrLogger(out: Writer, opts: { debug?: boolean } = {}): Logger {
  const line =
    (level: string) =>
    (message: string, data?: Record<string, Json | undefined>): void => {
      const details = data && Object.keys(data).length ? ` ${JSON.stringify(data)}` : '';
      out.write(`${formatTime(new Date())} agent ${level}: ${message}${details}\n`);
    };
  return { debug: opts.debug ? line('debug') : () => {}, info: line('info'), warn: line('warn'), error: line('error') };
}

/**
 * The local Docker engine (DOCKER_HOST or the default socket), or null when none answers: then a
 * one-line warning on stderr names the operations that cannot run here (today every kind needs Docker).
 */
export async function probeDocker(ctx: Context): Promise<DockerEngine | null> {
  const docker = connectDocker();
  try {
    await docker.ping(DOCKER_PING_MS);
    return docker;
  } catch (err) {
    ctx.stderr.write(
      `warning: no Docker engine answers at ${docker.endpoint} (${(err as Error).message}); ` +
        `operations that need Docker cannot run on this agent: ${knownKinds().join(', ')}; ` +
        'start dockerd or set DOCKER_HOST, then restart\n',
    );
    return null;
  }
}

/**
 * The line `mp dev` prints when it runs its agent without Docker: which operations cannot run and how
 * each fails. Every kind needs the engine today; an agent without one is no manager, so kinds aimed at
 * managers are not even claimed (`mp ops submit` refuses them for want of a manager agent), and the
 * others are claimed and fail at once with the agent's "no Docker engine on node ..." (agent/agent.ts).
 *
 * @example
 *   noDockerLine('laptop')
 *   // "no Docker engine on node laptop, so no operation can run here: docker.info fails at once;
 *   //  job.run, service.scale, stack.remove need a manager agent (start dockerd or set DOCKER_HOST, then restart)"
 */
export function noDockerLine(node: string): string {
  const managerOnly = knownKinds().filter((k) => executors.get(k)?.target === 'manager');
  const failing = knownKinds().filter((k) => !managerOnly.includes(k));
  const parts = [
    ...(failing.length ? [`${failing.join(', ')} fail${failing.length === 1 ? 's' : ''} at once`] : []),
    ...(managerOnly.length ? [`${managerOnly.join(', ')} need${managerOnly.length === 1 ? 's' : ''} a manager agent`] : []),
  ];
  return `no Docker engine on node ${node}, so no operation can run here: ${parts.join('; ')} (start dockerd or set DOCKER_HOST, then restart)`;
}

/** What `runLocalAgent` started: stop it (the agent, then its pool) exactly once. */
export interface LocalAgent {
  agent: RunningAgent;
  docker: DockerEngine | null;
  stop(): Promise<void>;
}

/**
 * Starts an agent on its own pool (claims, heartbeats and steps must not queue behind the CLI's few
 * connections). The caller stops it; `stop` finishes or releases what the agent holds, then ends the pool.
 */
export async function runLocalAgent(
  ctx: Context,
  opts: { url: string; name?: string; provisioner?: boolean; concurrency?: number; docker: DockerEngine | null; clusterKeys?: ClusterKeys },
): Promise<LocalAgent> {
  const concurrency = opts.concurrency ?? 4;
  // The cluster key: given (`mp dev`), or the file MP_CLUSTER_KEY_FILE names (`mp agent install` mounts it).
  const keyFile = process.env.MP_CLUSTER_KEY_FILE;
  const clusterKeys = opts.clusterKeys ?? (keyFile ? await loadClusterKeys(keyFile) : undefined);
  // One connection per running operation, plus LISTEN, heartbeat, claims and the cancel checks.
  const pool = new pg.Pool({ connectionString: opts.url, max: concurrency + 4, application_name: 'mp agent' });
  pool.on('error', () => {});
  let agent: RunningAgent;
  try {
    agent = await startAgent({
      pool,
      docker: opts.docker,
      name: opts.name,
      provisioner: opts.provisioner,
      concurrency,
      log: stderrLogger(ctx.stderr),
      clusterKeys,
    });
  } catch (err) {
    await pool.end();
    throw err;
  }
  let stopping: Promise<void> | undefined;
  return {
    agent,
    docker: opts.docker,
    stop: () =>
      (stopping ??= (async () => {
        try {
          await agent.stop();
        } finally {
          await pool.end();
        }
      })()),
  };
}

/** Resolves when the command is told to stop (SIGINT/SIGTERM abort `ctx.signal`). */
export function untilStopped(ctx: Context): Promise<void> {
  return new Promise((resolve) => {
    if (ctx.signal.aborted) resolve();
    else ctx.signal.addEventListener('abort', () => resolve(), { once: true });
  });
}
