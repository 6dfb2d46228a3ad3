/**
 * Runs the steps of one host: for each, observe over SSH (and the Docker APIs), plan (steps.ts, pure)
 * and apply, reported as a child operation of the host's operation (`mp.provision_step_start` /
 * `_finish`, sql/control/0008) with `changed` or `unchanged` and what it did. The first failing step
 * ends the host's run with one error naming the host and the step; the steps before it stay done
 * (their rows say so), and `mp ops retry` of the step (or of the host) carries on from there.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type pg from 'pg';
import { z } from 'zod';
import { ConflictError, MiniPaasError, NotFoundError } from '../../sql/errors.ts';
import type { DockerEngine } from '../docker/engine.ts';
import { clusterKeySecretName, installAgentService, observeInstall, planInstall, type AgentServiceOptions } from '../global-service.ts';
import { generateClusterKeys, keyFileText, type ClusterKeys } from '../../sql/control/sealing.ts';
import type { Json } from '../executors/types.ts';
import { loadMigrations } from '../../sql/migrate.ts';
import { databaseHost, migrateThrough, pendingMigrations, provisionerDatabase, type ClusterDatabase } from './cluster-database.ts';
import { DATABASE_FACTS_SCRIPT, planDatabase, planPostgres } from './database.ts';
import { hostSchema, provisionSchema, type Host } from './inventory.ts';
import { fileAndDatabasePolicy, openSession, shellQuote, type HostKey, type HostSession, type SshTarget } from './ssh.ts';
import {
  describeAction,
  FACTS_SCRIPT,
  parseFacts,
  planAgent,
  planAgentImage,
  planDaemon,
  planDocker,
  planFail2ban,
  planFirewall,
  planLabels,
  planOs,
  planSwarm,
  planSyslog,
  sha256,
  STEP_NAMES,
  SUPPORTED_ARCH,
  SUPPORTED_OS,
  stepsFor,
  type Action,
  type HostPlanInput,
  type StepName,
} from './steps.ts';

/** The payload of `provision.host` (and, with `step`, of `provision.step`). */
export const hostPayloadSchema = z
  .object({
    host: hostSchema,
    first_manager: hostSchema,
    cluster: z.array(z.string().min(1)),
    settings: provisionSchema,
    /** Absolute certificate directory on the provisioner's machine (managers get TLS when it has a server certificate). */
    certs_dir: z.string().min(1).optional(),
    accept_new_host_keys: z.boolean().default(false),
    /** The `[database]` host, when the inventory names one: the agents use the PostgreSQL provisioned there. */
    database: hostSchema.optional(),
    /** Only these steps (default: all that apply). */
    steps: z.array(z.enum(STEP_NAMES)).optional(),
  })
  .strict();
export type HostPayload = z.output<typeof hostPayloadSchema>;

/** What provisioning one host needs around it. */
export interface RunContext {
  /** The provisioner's own engine: the agent image is shipped from it. */
  docker: DockerEngine;
  pool?: pg.Pool;
  operationId: string;
  step(name: string, message: string, data?: Record<string, Json | undefined>): void | Promise<void>;
  signal: AbortSignal;
  /** The URL the provisioned agents connect with: MP_AGENTS_DATABASE_URL, else DATABASE_URL. */
  agentsDatabaseUrl?: string;
  /** How long a worker waits for the first manager's swarm, and a host for its agent (default 10 minutes). */
  waitMs?: number;
  /** Record each step as a child operation of `operationId` (false when the operation is itself one step). */
  recordSteps?: boolean;
  /** The provisioner's cluster key pairs (MP_CLUSTER_KEY_FILE): the manager agents get them as a Docker secret. */
  clusterKeys?: ClusterKeys;
}

/**
 * The cluster key the installed agents get, as `mp agent install` gives it (docs/secrets.md "Who holds
 * what"): the provisioner's own key file when it has one (it must hold the database's active key); else
 * the Docker secret a previous run created for the active key; else, on a cluster with no key yet, a new
 * pair that then exists only in Swarm's store. `register` is the public key to register once the agents
 * hold it. The key file's text goes only into the secret.
 */
async function clusterKeyFor(ctx: RunContext, pool: pg.Pool | undefined): Promise<{ key: NonNullable<AgentServiceOptions['clusterKey']>; register?: string }> {
  const active = pool
    ? (await pool.query<{ public_key: string }>(`select public_key from mp.cluster_keys where retired_at is null`)).rows[0]?.public_key
    : undefined;
  if (ctx.clusterKeys) {
    const newest = ctx.clusterKeys.keys.at(-1)!.publicKey;
    if (active && !ctx.clusterKeys.keys.some((k) => k.publicKey === active)) {
      throw new ConflictError('WRONG_CLUSTER_KEY', "the provisioner's cluster key file does not hold the cluster's active key", 'start the provisioner with MP_CLUSTER_KEY_FILE naming the key file that goes with this database');
    }
    return { key: { secretName: clusterKeySecretName(newest), text: keyFileText(ctx.clusterKeys) }, ...(active ? {} : { register: newest }) };
  }
  if (active) return { key: { secretName: clusterKeySecretName(active) } };
  const keys = await generateClusterKeys();
  const publicKey = keys.keys[0]!.publicKey;
  return { key: { secretName: clusterKeySecretName(publicKey), text: keyFileText(keys) }, register: publicKey };
}

/** The outcome of one step. */
export interface StepOutcome {
  step: StepName;
  changed: boolean;
  actions: string[];
  summary: string;
}

/** A step failed: names the host and the step, and what was done before it failed. */
export class StepFailedError extends MiniPaasError {
  constructor(
    readonly host: string,
    readonly step: StepName,
    cause: unknown,
    done: string[],
  ) {
    const message = cause instanceof Error ? cause.message : String(cause);
    super(
      cause instanceof MiniPaasError ? cause.code : 'STEP_FAILED',
      `host ${host}, step ${step}: ${message}${done.length ? ` (done before it failed: ${done.join('; ')})` : ''}`,
      cause instanceof MiniPaasError ? cause.hint : 'fix the cause, then `mp ops retry` the step or the host',
    );
  }
}

function toHost(e: z.output<typeof hostSchema>): Host {
  return { name: e.name, address: e.address ?? e.name, role: e.role, user: e.user, port: e.port, ...(e.ssh_key ? { sshKey: e.ssh_key } : {}), labels: e.labels };
}

function target(h: Host): SshTarget {
  return { name: h.name, address: h.address, port: h.port, user: h.user, ...(h.sshKey ? { sshKey: h.sshKey } : {}) };
}

/** The TLS files of a manager, when the certificate directory has a server certificate. */
function tlsFiles(payload: HostPayload, host: Host): HostPlanInput['tls'] {
  if (host.role !== 'manager' || !payload.certs_dir) return undefined;
  const file = (name: string): { path: string; sha256: string } | undefined => {
    const path = join(payload.certs_dir!, name);
    return existsSync(path) ? { path, sha256: sha256(readFileSync(path, 'utf8')) } : undefined;
  };
  const [ca, cert, key] = [file('ca.pem'), file('server-cert.pem'), file('server-key.pem')];
  return ca && cert && key ? { ca, cert, key } : undefined;
}

/** Host keys from known_hosts and mp.host_keys; new ones recorded there (`--accept-new-host-keys`). */
function hostKeyPolicy(payload: HostPayload, pool: pg.Pool | undefined): ReturnType<typeof fileAndDatabasePolicy> {
  return fileAndDatabasePolicy({
    ...(payload.settings.known_hosts ? { knownHostsFile: payload.settings.known_hosts } : {}),
    ...(pool
      ? {
          fromDatabase: async (t: SshTarget): Promise<HostKey[]> =>
            (
              await pool.query<{ key_type: string; key_base64: string; fingerprint: string }>(
                `select key_type, key_base64, fingerprint from mp.host_keys where host = $1 and port = $2`,
                [t.address, t.port],
              )
            ).rows.map((r) => ({ type: r.key_type, base64: r.key_base64, fingerprint: r.fingerprint })),
          accept: async (t: SshTarget, key: HostKey): Promise<HostKey> => {
            const rows = await pool.query<{ known: string }>(`select mp.host_key_accept($1, $2, $3, $4, $5) as known`, [t.address, t.port, key.type, key.base64, key.fingerprint]);
            const known = rows.rows[0]!.known;
            return known === key.base64 ? key : { type: key.type, base64: known, fingerprint: '(recorded key)' };
          },
        }
      : {}),
  });
}

async function sleep(ms: number, signal: AbortSignal): Promise<void> {
  await new Promise<void>((resolve) => {
    const done = (): void => {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/** Applies a file or command action over SSH; throws naming the command and its output on failure. */
async function applyShell(session: HostSession, a: Extract<Action, { type: 'run' | 'write' }>): Promise<void> {
  if (a.type === 'run') {
    const r = await session.run(a.command);
    if (r.code !== 0) {
      const out = (r.stderr || r.stdout).trim().split('\n').slice(-5).join(' | ');
      throw new ConflictError('COMMAND_FAILED', `\`${a.command.slice(0, 100)}\` exited ${r.code}: ${out}`, 'run it on the host by hand to see the full output');
    }
    return;
  }
  const content = 'content' in a ? a.content : readFileSync(a.source, 'utf8');
  const dir = a.path.slice(0, a.path.lastIndexOf('/')) || '/';
  const tmp = `${a.path}.mp-tmp`;
  const script = `mkdir -p ${shellQuote(dir)} && umask 077 && cat > ${shellQuote(tmp)} && chmod ${a.mode} ${shellQuote(tmp)} && mv ${shellQuote(tmp)} ${shellQuote(a.path)}`;
  const r = await session.run(script, { stdin: content });
  if (r.code !== 0) throw new ConflictError('WRITE_FAILED', `writing ${a.path} failed: ${r.stderr.trim()}`, 'check the disk and permissions on the host');
}

/**
 * Provisions one host: runs its steps in order, each reported as a child operation. Returns the
 * outcomes; throws `StepFailedError` at the first failing step.
 */
export async function provisionHost(ctx: RunContext, payload: HostPayload): Promise<StepOutcome[]> {
  const host = toHost(payload.host);
  const firstManager = toHost(payload.first_manager);
  const input: HostPlanInput = { host, firstManager, cluster: payload.cluster, settings: payload.settings, tls: tlsFiles(payload, host) };
  const steps = payload.steps ?? stepsFor(payload.settings, host.role);
  const policy = hostKeyPolicy(payload, ctx.pool);
  const waitMs = ctx.waitMs ?? 600_000;
  const outcomes: StepOutcome[] = [];
  const done: string[] = [];
  let session: HostSession | undefined;
  let managerSession: HostSession | undefined;
  let databaseSession: HostSession | undefined;
  const dbHost = payload.database ? toHost(payload.database) : undefined;
  const manager = async (): Promise<HostSession> => {
    if (host.name === firstManager.name) return session!;
    managerSession ??= await openSession(target(firstManager), policy, { acceptNew: payload.accept_new_host_keys });
    return managerSession;
  };
  const cluster: ClusterDatabase = dbHost
    ? databaseHost(dbHost, async () => {
        if (dbHost.name === host.name) return session!;
        databaseSession ??= await openSession(target(dbHost), policy, { acceptNew: payload.accept_new_host_keys });
        return databaseSession;
      }, { waitMs, signal: ctx.signal })
    : provisionerDatabase(ctx.pool, ctx.agentsDatabaseUrl);
  // Resolved once per run: a newly generated cluster key must be the same at plan and at apply.
  let agentOpts: Promise<{ opts: AgentServiceOptions; register?: string }> | undefined;
  const agentService = (): Promise<{ opts: AgentServiceOptions; register?: string }> =>
    (agentOpts ??= (async () => {
      const { key, register } = await clusterKeyFor(ctx, await cluster.pool({ wait: true }));
      const opts = { ...agentServiceOptions(input, await cluster.agentsUrl({ wait: true })), clusterKey: key };
      return { opts, ...(register ? { register } : {}) };
    })());

  try {
    for (const step of steps) {
      if (ctx.signal.aborted) break;
      const childId = ctx.pool && ctx.recordSteps !== false
        ? String((await ctx.pool.query<{ id: string }>(`select mp.provision_step_start($1, $2, $3, $4) as id`, [ctx.operationId, step, 'provisioner', JSON.stringify({ host: payload.host.name })])).rows[0]!.id)
        : undefined;
      try {
        if (!session) {
          session = await openSession(target(host), policy, { acceptNew: payload.accept_new_host_keys });
          if (session.keyAccepted) await ctx.step('host-key', `host ${host.name}: accepted ${session.hostKey.type} key ${session.hostKey.fingerprint} on first contact (recorded in mp.host_keys)`);
        }
        const env: StepEnv = { session, manager, input, waitMs, agentService, cluster };
        const actions = await planStep(ctx, step, env);
        for (const a of actions) {
          await ctx.step(step, `${host.name}: ${describeAction(a)}`);
          await applyAction(ctx, a, env);
        }
        const outcome: StepOutcome = {
          step,
          changed: actions.length > 0,
          actions: actions.map(describeAction),
          summary: actions.length ? `changed: ${actions.map((a) => a.why).join('; ')}` : 'unchanged',
        };
        outcomes.push(outcome);
        done.push(`${step} ${outcome.changed ? 'changed' : 'unchanged'}`);
        if (ctx.pool && childId) {
          await ctx.pool.query(`select mp.provision_step_finish($1, 'succeeded', $2)`, [childId, JSON.stringify({ changed: outcome.changed, summary: outcome.summary, actions: outcome.actions })]);
        }
        await ctx.step(step, `${host.name}: ${step} ${outcome.changed ? 'changed' : 'unchanged'}`, { changed: outcome.changed });
      } catch (err) {
        const failure = new StepFailedError(host.name, step, err, done);
        if (ctx.pool && childId) await ctx.pool.query(`select mp.provision_step_finish($1, 'failed', null, $2)`, [childId, failure.message]);
        throw failure;
      }
    }
  } finally {
    await cluster.close();
    session?.close();
    managerSession?.close();
    databaseSession?.close();
  }
  return outcomes;
}

/**
 * Pure (reads only the local certificate files): each step's actions as they would be on a bare host
 * (nothing installed, systemd, no swarm, no agent), without connecting. What `mp provision --dry-run`
 * prints: the first run on a new host does exactly this; on a host already provisioned, the steps
 * that already match plan nothing when they run (the dry run cannot tell without reading the host).
 */
export function bareHostPlan(payload: HostPayload): { step: StepName; actions: string[] }[] {
  const host = toHost(payload.host);
  const firstManager = toHost(payload.first_manager);
  const input: HostPlanInput = { host, firstManager, cluster: payload.cluster, settings: payload.settings, tls: tlsFiles(payload, host) };
  const bare = { init: 'systemd', os: 'debian 12', arch: 'x86_64' };
  const local = { state: 'inactive', nodeId: '', manager: false };
  const plan = (step: StepName): string[] => {
    switch (step) {
      case 'os':
        return [`check /etc/os-release and uname -m: refused unless ${SUPPORTED_OS.join(', ')} on ${SUPPORTED_ARCH.join(' or ')}`];
      case 'docker':
        return planDocker(input, bare).map(describeAction);
      case 'daemon':
        return planDaemon(input, bare).map(describeAction);
      case 'firewall':
        return planFirewall(input, bare).map(describeAction);
      case 'fail2ban':
        return planFail2ban(input, bare).map(describeAction);
      case 'syslog':
        return planSyslog(input, bare).map(describeAction);
      case 'swarm':
        return planSwarm(input, { local }).map(describeAction);
      case 'labels':
        return planLabels(input, { nodeId: host.name, labels: {} }).map(describeAction);
      case 'agent-image':
        return planAgentImage(input, { localImageId: 'the provisioner\'s image' }).map(() => `ship image ${input.settings.agent_image} from the provisioner's engine over SSH (no registry needed)`);
      case 'agent':
        return planAgent(input, { serviceUpToDate: false, agentAlive: false, hostname: host.name }).map(describeAction);
      case 'postgres':
        return planPostgres(input, bare).map(describeAction);
      case 'database':
        return planDatabase(input, bare, ['every migration']).map(describeAction);
    }
  };
  return (payload.steps ?? stepsFor(payload.settings, host.role)).map((step) => ({ step, actions: plan(step) }));
}

/** What observing and applying a step reach: the host, the first manager, the cluster's database. */
interface StepEnv {
  session: HostSession;
  manager: () => Promise<HostSession>;
  input: HostPlanInput;
  waitMs: number;
  agentService: () => Promise<{ opts: AgentServiceOptions; register?: string }>;
  cluster: ClusterDatabase;
}

/** Observes what a step depends on and plans it. */
async function planStep(ctx: RunContext, step: StepName, env: StepEnv): Promise<Action[]> {
  const { session, manager, input, waitMs, agentService } = env;
  const facts = async (script = FACTS_SCRIPT): Promise<Record<string, string>> => {
    const r = await session.run(script);
    return parseFacts(r.stdout);
  };
  switch (step) {
    case 'postgres':
      return planPostgres(input, await facts(`${FACTS_SCRIPT}\n${DATABASE_FACTS_SCRIPT}`));
    case 'database': {
      const f = await facts(`${FACTS_SCRIPT}\n${DATABASE_FACTS_SCRIPT}`);
      const exists = f.db_password === 'yes' && f.db_role === 'yes' && f.db_database === 'yes';
      const pending = exists ? await pendingMigrations((await env.cluster.pool())!) : (await loadMigrations()).map((m) => m.id);
      return planDatabase(input, f, pending);
    }
    case 'os':
      return planOs(input, await facts());
    case 'docker':
      return planDocker(input, await facts());
    case 'daemon':
      return planDaemon(input, await facts());
    case 'firewall':
      return planFirewall(input, await facts());
    case 'fail2ban':
      return planFail2ban(input, await facts());
    case 'syslog':
      return planSyslog(input, await facts());
    case 'swarm': {
      const info = await session.docker().info();
      const local = { state: info.swarm.state, nodeId: info.swarm.nodeId, clusterId: info.swarm.clusterId, manager: info.swarm.controlAvailable };
      if (input.host.name === input.firstManager.name) return planSwarm(input, { local });
      // Managers before workers: wait (with a deadline) until the first manager's swarm exists.
      const deadline = Date.now() + waitMs;
      for (;;) {
        const m = await (await manager()).docker().info().catch(() => undefined);
        if (m?.swarm.state === 'active' && m.swarm.controlAvailable) {
          return planSwarm(input, { local, managerClusterId: m.swarm.clusterId });
        }
        if (Date.now() > deadline || ctx.signal.aborted) {
          throw new NotFoundError('NO_SWARM', `the first manager ${input.firstManager.name} has no swarm yet`, `provision ${input.firstManager.name} first (mp provision provisions managers before workers)`);
        }
        await sleep(2_000, ctx.signal);
      }
    }
    case 'labels': {
      const nodeId = (await session.docker().info()).swarm.nodeId;
      const node = (await (await manager()).docker().api.getNode(nodeId).inspect()) as { Spec?: { Labels?: Record<string, string> } };
      return planLabels(input, { nodeId, labels: node.Spec?.Labels ?? {} });
    }
    case 'agent-image': {
      const localImageId = (await ctx.docker.inspectImage(input.settings.agent_image)).id;
      const remoteImageId = await session
        .docker()
        .inspectImage(input.settings.agent_image)
        .then((i) => i.id)
        .catch((err: unknown) => {
          if (err instanceof NotFoundError) return undefined;
          throw err;
        });
      return planAgentImage(input, { localImageId, ...(remoteImageId ? { remoteImageId } : {}) });
    }
    case 'agent': {
      const hostname = (await session.run('hostname')).stdout.trim();
      let serviceUpToDate = true;
      if (input.host.name === input.firstManager.name) {
        const { opts } = await agentService();
        serviceUpToDate = planInstall(opts, await observeInstall(session.docker(), opts)).every((a) => a.type.startsWith('keep-'));
      }
      return planAgent(input, { serviceUpToDate, agentAlive: await agentAlive(await env.cluster.pool({ wait: true }), hostname), hostname });
    }
  }
}

function agentServiceOptions(input: HostPlanInput, databaseUrl: string): AgentServiceOptions {
  return { service: 'mp-agent', image: input.settings.agent_image, databaseUrl, network: 'host' };
}

async function agentAlive(pool: pg.Pool | undefined, node: string): Promise<boolean> {
  if (!pool) return false;
  const rows = await pool.query<{ alive: boolean }>(`select alive from mp.nodes_v where name = $1`, [node]);
  return rows.rows[0]?.alive ?? false;
}

/** Applies one action. Join tokens are read from the first manager's API here and passed straight to the host's. */
async function applyAction(ctx: RunContext, a: Action, env: StepEnv): Promise<void> {
  const { session } = env;
  switch (a.type) {
    case 'run':
    case 'write':
      return await applyShell(session, a);
    case 'swarm-init':
      await session.docker().api.swarmInit({ ListenAddr: '0.0.0.0:2377', AdvertiseAddr: a.advertise });
      return;
    case 'swarm-join': {
      const swarm = (await (await env.manager()).docker().api.swarmInspect()) as { JoinTokens: { Worker: string; Manager: string } };
      const token = a.role === 'manager' ? swarm.JoinTokens.Manager : swarm.JoinTokens.Worker;
      await session.docker().api.swarmJoin({ ListenAddr: '0.0.0.0:2377', AdvertiseAddr: a.advertise, RemoteAddrs: [a.remote], JoinToken: token });
      return;
    }
    case 'node-labels': {
      const api = (await env.manager()).docker().api;
      const node = (await api.getNode(a.node).inspect()) as { Version: { Index: number }; Spec: Record<string, unknown> };
      await api.getNode(a.node).update({ version: node.Version.Index, ...node.Spec, Labels: a.labels });
      return;
    }
    case 'ship-image': {
      const tar = await ctx.docker.api.getImage(a.image).get();
      const out = await session.docker().api.loadImage(tar, { quiet: true });
      await new Promise<void>((resolve, reject) => {
        out.on('data', () => {});
        out.on('end', resolve);
        out.on('error', reject);
      });
      return;
    }
    case 'agent-service': {
      const { opts, register } = await env.agentService();
      await installAgentService(session.docker(), opts);
      // Registered once the agents hold the private key: a key the database names must be one they have.
      const pool = await env.cluster.pool({ wait: true });
      if (register && pool) await pool.query(`select mp.cluster_key_register($1)`, [register]);
      if (register) await ctx.step('agent', `${env.input.host.name}: cluster key registered; its private key is the Docker secret ${opts.clusterKey!.secretName}`);
      return;
    }
    case 'migrate': {
      const applied = await migrateThrough((await env.cluster.pool())!);
      await ctx.step('database', `${env.input.host.name}: applied ${applied.length} migration(s)`);
      return;
    }
    case 'wait-agent': {
      const deadline = Date.now() + env.waitMs;
      const pool = await env.cluster.pool({ wait: true });
      while (!(await agentAlive(pool, a.node))) {
        if (Date.now() > deadline || ctx.signal.aborted) {
          throw new NotFoundError('AGENT_NOT_UP', `no heartbeat from the agent of ${a.node}`, `look at its task: docker service ps mp-agent (on ${env.input.firstManager.name})`);
        }
        await sleep(1_000, ctx.signal);
      }
      return;
    }
  }
}
