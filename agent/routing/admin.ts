/**
 * Reaching Caddy's admin API, which is never published: it listens on localhost:2019 inside the Caddy
 * container only. The agent runs `wget` inside that container through the Engine API's exec
 * (the official Alpine image has busybox's, the lab's Debian one GNU wget): no port, socket or
 * network is opened for it, and only someone who can already exec into containers on that node
 * (root on the node, or the engine's socket) can reach it.
 *
 * The price: exec reaches containers of the engine the agent talks to, so the Caddy task must run on
 * the agent's node. The ingress is placed on managers and the `routing` executor runs on a manager;
 * with several managers, the error says which node runs Caddy (submit with `--target node:<name>`).
 */
import { PassThrough } from 'node:stream';
import { isDeepStrictEqual } from 'node:util';
import { DockerError, NotFoundError } from '../../sql/errors.ts';
import type { DockerEngine } from '../docker/engine.ts';
import { ADMIN_ADDRESS, type CaddyConfig } from './caddy-config.ts';
import { INGRESS_KEY } from './ingress.ts';

/** The running Caddy container of a stack. */
export interface IngressContainer {
  serviceId: string;
  taskId: string;
  containerId: string;
  nodeId: string;
}

interface RawTask {
  ID: string;
  NodeID?: string;
  DesiredState?: string;
  Status?: { State?: string; ContainerStatus?: { ContainerID?: string } };
}

/**
 * The running task of `<stack>_caddy` on this engine. `NotFoundError` when the stack has no ingress
 * or none of its tasks runs yet; `DockerError` when it runs on another node.
 */
export async function ingressContainer(docker: DockerEngine, stack: string): Promise<IngressContainer> {
  const name = `${stack}_${INGRESS_KEY}`;
  const services = (await docker.listServices({ name: [name] })).filter((s) => s.name === name);
  if (services.length === 0) {
    throw new NotFoundError('NO_INGRESS', `stack ${stack} has no Caddy service (${name})`, 'add routes to minipaas.yaml and run `mp deploy --env DIR`, which creates it');
  }
  const service = services[0]!;
  const tasks = (await docker.api.listTasks({ filters: JSON.stringify({ service: [service.id], 'desired-state': ['running'] }) })) as RawTask[];
  const running = tasks.filter((t) => t.Status?.State === 'running' && t.Status.ContainerStatus?.ContainerID);
  if (running.length === 0) {
    throw new NotFoundError('INGRESS_NOT_RUNNING', `no task of ${name} is running yet`, '`docker service ps ' + name + '` shows why; the deploy waits for it');
  }
  const info = (await docker.api.info()) as { Swarm?: { NodeID?: string } };
  const own = running.find((t) => t.NodeID === info.Swarm?.NodeID) ?? (info.Swarm?.NodeID ? undefined : running[0]);
  if (!own) {
    throw new DockerError(
      'INGRESS_ELSEWHERE',
      `${name} runs on node ${running[0]!.NodeID}, not on this agent's node ${info.Swarm?.NodeID}: its admin API is reached only from its own node`,
      'submit the routing operation to that node: `mp deploy routing --env DIR --target node:<name>`',
    );
  }
  return { serviceId: service.id, taskId: own.ID, containerId: own.Status!.ContainerStatus!.ContainerID!, nodeId: own.NodeID ?? '' };
}

/** Runs `cmd` in a container and returns its exit code, stdout and stderr. */
async function exec(docker: DockerEngine, containerId: string, cmd: string[], timeoutMs: number): Promise<{ code: number; stdout: string; stderr: string }> {
  const container = docker.api.getContainer(containerId);
  const run = await container.exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
  const stream = await run.start({ hijack: true, stdin: false });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const stdout = new PassThrough().on('data', (b: Buffer) => out.push(b));
  const stderr = new PassThrough().on('data', (b: Buffer) => err.push(b));
  docker.api.modem.demuxStream(stream, stdout, stderr);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      stream.destroy();
      reject(new DockerError('CADDY_ADMIN_TIMEOUT', `Caddy's admin API did not answer within ${timeoutMs} ms`, 'look at `docker service logs <stack>_caddy`'));
    }, timeoutMs);
    stream.on('end', () => (clearTimeout(timer), resolve()));
    stream.on('close', () => (clearTimeout(timer), resolve()));
    stream.on('error', (e: Error) => (clearTimeout(timer), reject(e)));
  });
  const inspected = await run.inspect();
  return { code: inspected.ExitCode ?? -1, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
}

/** One admin API call from inside the container; `DockerError` CADDY_ADMIN with wget's words on failure. */
async function admin(docker: DockerEngine, c: IngressContainer, path: string, body?: string): Promise<string> {
  const url = `http://${ADMIN_ADDRESS}${path}`;
  const cmd = ['wget', '-q', '-O', '-', ...(body === undefined ? [] : ['--header', 'Content-Type: application/json', '--post-data', body]), url];
  const res = await exec(docker, c.containerId, cmd, 15_000);
  if (res.code !== 0) {
    throw new DockerError(
      'CADDY_ADMIN',
      `Caddy's admin API refused ${body === undefined ? 'GET' : 'POST'} ${path} (wget exit ${res.code}): ${res.stderr.trim() || res.stdout.trim() || 'no output'}`,
      `Caddy logs why: \`docker logs ${c.containerId.slice(0, 12)}\``,
    );
  }
  return res.stdout;
}

/** The config Caddy runs now (null when it runs none). */
export async function readCaddyConfig(docker: DockerEngine, c: IngressContainer): Promise<CaddyConfig | null> {
  const text = (await admin(docker, c, '/config/')).trim();
  return text === '' || text === 'null' ? null : (JSON.parse(text) as CaddyConfig);
}

/**
 * Loads `config` (`POST /load`: Caddy swaps configs gracefully, keeping listeners and connections),
 * then reads it back and checks it is the one asked for.
 */
export async function loadCaddyConfig(docker: DockerEngine, c: IngressContainer, config: CaddyConfig): Promise<void> {
  await admin(docker, c, '/load', JSON.stringify(config));
  const live = await readCaddyConfig(docker, c);
  if (!sameConfig(live, config)) {
    throw new DockerError('CADDY_CONFIG_MISMATCH', 'Caddy accepted the config but serves another one', 'run `mp deploy routing --env DIR` again; `mp routes ls` compares them');
  }
}

/** Whether two configs say the same (key order aside). */
export function sameConfig(a: unknown, b: unknown): boolean {
  return isDeepStrictEqual(JSON.parse(JSON.stringify(a ?? null)), JSON.parse(JSON.stringify(b ?? null)));
}

/** Reads a file from the Caddy container (the internal CA's root certificate, for tests and users). */
export async function readIngressFile(docker: DockerEngine, c: IngressContainer, path: string): Promise<string> {
  const res = await exec(docker, c.containerId, ['cat', path], 10_000);
  if (res.code !== 0) throw new NotFoundError('NO_SUCH_FILE', `${path} does not exist in the Caddy container: ${res.stderr.trim()}`);
  return res.stdout;
}
