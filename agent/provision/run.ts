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
import { installAgentService, observeInstall, planInstall, type AgentServiceOptions } from '../global-service.ts';
import type { Json } from '../executors/types.ts';
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
  const steps = payload.steps ?? stepsFor(payload.settings);
  const policy = hostKeyPolicy(payload, ctx.pool);
  const waitMs = ctx.waitMs ?? 600_000;
  const outcomes: StepOutcome[] = [];
  const done: string[] = [];
  let session: HostSession | undefined;
  let managerSession: HostSession | undefined;
  const manager = async (): Promise<HostSession> => {
    if (host.name === firstManager.name) return session!;
    managerSession ??= await openSession(target(firstManager), policy, { acceptNew: payload.accept_new_host_keys });
    return managerSession;
  };

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
        const actions = await planStep(ctx, step, input, session, manager, waitMs);
        for (const a of actions) {
          await ctx.step(step, `${host.name}: ${describeAction(a)}`);
          await applyAction(ctx, a, { session, manager, input, waitMs });
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
    session?.close();
    managerSession?.close();
  }
  return outcomes;
}

/** Observes what a step depends on and plans it. */
async function planStep(
  ctx: RunContext,
  step: StepName,
  input: HostPlanInput,
  session: HostSession,
  manager: () => Promise<HostSession>,
  waitMs: number,
): Promise<Action[]> {
  const facts = async (): Promise<Record<string, string>> => {
    const r = await session.run(FACTS_SCRIPT);
    return parseFacts(r.stdout);
  };
  switch (step) {
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
        const opts = agentServiceOptions(ctx, input);
        serviceUpToDate = planInstall(opts, await observeInstall(session.docker(), opts)).every((a) => a.type.startsWith('keep-'));
      }
      return planAgent(input, { serviceUpToDate, agentAlive: await agentAlive(ctx, hostname), hostname });
    }
  }
}

function agentServiceOptions(ctx: RunContext, input: HostPlanInput): AgentServiceOptions {
  if (!ctx.agentsDatabaseUrl) {
    throw new NotFoundError('NO_AGENTS_DATABASE_URL', 'the provisioner has no database URL for the agents', 'start the provisioner with MP_AGENTS_DATABASE_URL (or DATABASE_URL) set to a URL the hosts can reach');
  }
  return { service: 'mp-agent', image: input.settings.agent_image, databaseUrl: ctx.agentsDatabaseUrl, network: 'host' };
}

async function agentAlive(ctx: RunContext, node: string): Promise<boolean> {
  if (!ctx.pool) return false;
  const rows = await ctx.pool.query<{ alive: boolean }>(`select alive from mp.nodes_v where name = $1`, [node]);
  return rows.rows[0]?.alive ?? false;
}

/** Applies one action. Join tokens are read from the first manager's API here and passed straight to the host's. */
async function applyAction(
  ctx: RunContext,
  a: Action,
  env: { session: HostSession; manager: () => Promise<HostSession>; input: HostPlanInput; waitMs: number },
): Promise<void> {
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
    case 'agent-service':
      await installAgentService(session.docker(), agentServiceOptions(ctx, env.input));
      return;
    case 'wait-agent': {
      const deadline = Date.now() + env.waitMs;
      while (!(await agentAlive(ctx, a.node))) {
        if (Date.now() > deadline || ctx.signal.aborted) {
          throw new NotFoundError('AGENT_NOT_UP', `no heartbeat from the agent of ${a.node}`, `look at its task: docker service ps mp-agent (on ${env.input.firstManager.name})`);
        }
        await sleep(1_000, ctx.signal);
      }
      return;
    }
  }
}
