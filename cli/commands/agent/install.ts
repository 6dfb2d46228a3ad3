/**
 * `mp agent install [--image mp/agent:latest] [--database-url-for-agents URL] [--network host]`: runs
 * the agent on every node of the swarm as the global service `mp-agent`, from the locally built image
 * (`images/agent/build.sh`), with the database URL in a Docker secret. Idempotent: run it again after
 * changing the URL or rebuilding the image, and it updates the service (or says nothing changed).
 */
import { z } from 'zod';
import { connectDocker } from '../../../agent/docker/engine.ts';
import { dockerName } from '../../../agent/executors/names.ts';
import {
  AGENT_IMAGE,
  AGENT_SERVICE,
  installAgentService,
  planInstall,
  observeInstall,
  SECRET_PATH,
  type AgentServiceOptions,
} from '../../../agent/global-service.ts';
import { clusterPublicKey, generateClusterKeys, keyFileText, loadClusterKeys, registerClusterKey } from '../../../sql/control/sealing.ts';
import { ConflictError, NotFoundError } from '../../../sql/errors.ts';
import { clusterKeySecretName } from '../../../agent/global-service.ts';
import type { Context } from '../../context.ts';
import { control } from '../../operations.ts';
import { toJson } from '../../output.ts';

/** A PostgreSQL connection string, as agents will use it. */
const postgresUrl = z.string().check((ctx) => {
  let ok = false;
  try {
    ok = ['postgres:', 'postgresql:'].includes(new URL(ctx.value).protocol);
  } catch {
    ok = false;
  }
  if (!ok) {
    ctx.issues.push({
      code: 'custom',
      input: ctx.value,
      message: 'not a PostgreSQL URL: use postgres://user:password@host:5432/database',
    });
  }
});

export const options = z
  .object({
    image: z.string().min(1).default(AGENT_IMAGE),
    /** The URL agents connect with, when it differs from the one `mp` uses here (another host name). */
    databaseUrlForAgents: postgresUrl.optional(),
    network: dockerName.default('host'),
    serviceName: dockerName.default(AGENT_SERVICE),
    /** A cluster key file to give the agents (default: the one installed before, or a new one). */
    clusterKey: z.string().min(1).optional(),
    dryRun: z.boolean().default(false),
  })
  .strict();
export type Options = z.output<typeof options>;

/**
 * Creates or updates the secret and the global service, and prints what it did. The URL defaults to
 * `--database-url`/`DATABASE_URL`; with the host network (the default) an agent reaches a PostgreSQL
 * on its node's loopback, so the same URL works from the manager and the agents in a one-node lab.
 *
 * @example
 *   $ mp agent install --database-url-for-agents postgres://mp_agent:...@10.0.0.5/minipaas
 *   secret mp_database_url_3f2a9c1b7d4e: created
 *   service mp-agent: created (global on the managers, with the cluster key; image mp/agent:latest; network host; URL from /run/secrets/mp_database_url)
 *   service mp-agent-workers: created (global on the workers, without the cluster key)
 */
export async function run(ctx: Context, opts: Options): Promise<void> {
  const key = await clusterKeyFor(ctx, opts.clusterKey);
  const install: AgentServiceOptions = {
    service: opts.serviceName,
    image: opts.image,
    databaseUrl: opts.databaseUrlForAgents ?? ctx.databaseUrl(),
    network: opts.network,
    clusterKey: { secretName: key.secretName, text: key.text },
  };
  const docker = connectDocker();
  if (opts.dryRun) {
    const actions = planInstall(install, await observeInstall(docker, install));
    if (ctx.json) {
      ctx.stdout.write(`${toJson({ dryRun: true, actions })}\n`);
      return;
    }
    ctx.stdout.write(`plan of mp agent install (nothing changed), as seen by ${docker.endpoint}:\n`);
    actions.forEach((a, i) => ctx.stdout.write(`  ${i + 1}. ${a.type} ${a.name}\n`));
    return;
  }
  const report = await installAgentService(docker, install);
  // Registered once the agents have the private key: a key the database names must be one they hold.
  if (key.register) await registerClusterKey(control(ctx), key.publicKey);
  if (!ctx.json) ctx.stdout.write(`cluster key: Docker secret ${key.secretName}${key.register ? ' (new; the private key exists only there)' : ''}\n`);
  if (ctx.json) {
    ctx.stdout.write(`${toJson(report)}\n`);
    return;
  }
  ctx.stdout.write(`secret ${report.secret.name}: ${report.secret.action}\n`);
  for (const name of report.removedSecrets) ctx.stdout.write(`secret ${name}: removed (no longer used)\n`);
  for (const name of report.keptSecrets) ctx.stdout.write(`secret ${name}: still in use by stopping tasks; the next install removes it\n`);
  const where = report.workers ? 'global on the managers, with the cluster key' : 'global';
  ctx.stdout.write(
    `service ${report.service.name}: ${report.service.action} (${where}; image ${report.image}; network ${report.network}; URL from ${SECRET_PATH})\n`,
  );
  if (report.workers) {
    const what = report.workers.action === 'removed' ? 'removed (every node runs the one service)' : `${report.workers.action} (global on the workers, without the cluster key)`;
    ctx.stdout.write(`service ${report.workers.name}: ${what}\n`);
  }
  if (report.service.action !== 'unchanged' || (report.workers && report.workers.action !== 'unchanged')) {
    ctx.stdout.write("each node's agent registers under its hostname; watch them come up with `mp nodes ls`\n");
  }
}

/**
 * The cluster key the agents get: `--cluster-key FILE`; else the one a previous install gave them (its
 * Docker secret is named after the database's active public key); else a new pair, generated here and
 * kept only in the Docker secret. `ConflictError` when the file does not hold the database's key.
 */
async function clusterKeyFor(ctx: Context, file: string | undefined): Promise<{ secretName: string; text?: string; publicKey: string; register: boolean }> {
  const active = await clusterPublicKey(control(ctx)).catch((err: unknown) => {
    if (err instanceof NotFoundError) return null;
    throw err;
  });
  if (file) {
    const keys = await loadClusterKeys(file);
    const newest = keys.keys.at(-1)!.publicKey;
    if (active && !keys.keys.some((k) => k.publicKey === active.publicKey)) {
      throw new ConflictError('WRONG_CLUSTER_KEY', `${file} does not hold the cluster's active key (key ${active.id})`, 'pass the key file that goes with this database');
    }
    return { secretName: clusterKeySecretName(newest), text: keyFileText(keys), publicKey: newest, register: !active };
  }
  if (active) return { secretName: clusterKeySecretName(active.publicKey), publicKey: active.publicKey, register: false };
  const keys = await generateClusterKeys();
  const publicKey = keys.keys[0]!.publicKey;
  return { secretName: clusterKeySecretName(publicKey), text: keyFileText(keys), publicKey, register: true };
}
