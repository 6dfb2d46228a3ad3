/**
 * `mp provision --env DIR [--inventory FILE] [--accept-new-host-keys] [--dry-run] [--detach]`, or
 * `mp provision HOST --role manager|worker --env DIR [--address A]`: one `provision.host` operation
 * per host (its steps are child operations), managers first. Hosts run in parallel (each has its own
 * serial key); a worker's swarm step waits for the first manager's swarm. Then follows them, printing
 * each step as it ends, and exits non-zero with one line per failed host naming the host and step.
 *
 * Progress is one query: `select * from mp.provisioning_v` (sql/control/0008).
 */
import { lookup } from 'node:dns/promises';
import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { z } from 'zod';
import { environmentHosts, type Host } from '../../agent/provision/inventory.ts';
import { bareHostPlan, type HostPayload } from '../../agent/provision/run.ts';
import { stepsFor } from '../../agent/provision/steps.ts';
import { ConfigError, ConflictError, NotFoundError } from '../../sql/errors.ts';
import type { Context } from '../context.ts';
import { environmentDir, environmentNameOf, readSettings } from '../environment.ts';
import { requireAgent } from '../operations.ts';

export const options = z
  .object({
    host: z.string().min(1).optional(),
    role: z.enum(['manager', 'worker']).optional(),
    address: z.string().min(1).optional(),
    env: z.string().min(1, 'name the environment directory, e.g. --env prod'),
    inventory: z.string().min(1).optional(),
    acceptNewHostKeys: z.boolean().default(false),
    dryRun: z.boolean().default(false),
    detach: z.boolean().default(false),
    timeout: z.coerce.number().int().positive().default(1800),
  })
  .strict();
export type Options = z.output<typeof options>;

/** A host as the payload carries it. */
function entry(h: Host): HostPayload['host'] {
  return { name: h.name, address: h.address, role: h.role, user: h.user, port: h.port, labels: h.labels, ...(h.sshKey ? { ssh_key: h.sshKey } : {}) };
}

/**
 * Pure: the operations to submit, in order: the `[database]` host (at most one), then managers, then
 * workers. Every payload names the database host, whose PostgreSQL the agents then use. `only`
 * provisions one host of the list.
 */
export function planProvision(
  hosts: Host[],
  settings: HostPayload['settings'],
  opts: { certsDir?: string; acceptNew: boolean; only?: string; resolved?: Record<string, string> },
): { payloads: HostPayload[] } {
  const cluster = hosts.filter((h) => h.role !== 'database');
  const databases = hosts.filter((h) => h.role === 'database');
  if (databases.length > 1) {
    throw new ConfigError(
      'SEVERAL_DATABASE_HOSTS',
      `the inventory names ${databases.length} database hosts (${databases.map((h) => h.name).join(', ')}); the control plane has one database`,
      'keep one host under [database] (role: database); a replica is set up outside MiniPaaS',
    );
  }
  const database = databases[0];
  const first = cluster.find((h) => h.role === 'manager')!;
  const ordered = [...databases, ...cluster.filter((h) => h.role === 'manager'), ...cluster.filter((h) => h.role === 'worker')];
  if (opts.only && !ordered.some((h) => h.name === opts.only)) {
    throw new NotFoundError('UNKNOWN_HOST', `host '${opts.only}' is not in the inventory`, `hosts: ${ordered.map((h) => h.name).join(', ')}`);
  }
  const payloads = ordered
    .filter((h) => !opts.only || h.name === opts.only)
    .map((h) => ({
      host: entry(h),
      first_manager: entry(first),
      // The firewalls and pg_hba list addresses: a name is given as the address it resolved to.
      cluster: cluster.map((c) => opts.resolved?.[c.address] ?? c.address),
      settings,
      ...(opts.certsDir ? { certs_dir: opts.certsDir } : {}),
      accept_new_host_keys: opts.acceptNew,
      ...(database ? { database: entry(database) } : {}),
    }));
  return { payloads };
}

/**
 * The IP address of each host named by a DNS name, as this machine resolves it now; one clear error
 * for a name that does not resolve.
 */
async function resolveAddresses(hosts: Host[]): Promise<Record<string, string>> {
  const resolved: Record<string, string> = {};
  for (const h of hosts.filter((x) => isIP(x.address) === 0)) {
    try {
      resolved[h.address] = (await lookup(h.address, { family: 4 })).address;
    } catch {
      throw new ConfigError('UNRESOLVED_HOST', `host ${h.name}: address '${h.address}' does not resolve to an IPv4 address`, 'give its IP address (address: in hosts:, or ansible_host= in the inventory)');
    }
  }
  return resolved;
}

function loadHosts(opts: Options, dir: string, settings: ReturnType<typeof readSettings>): Host[] {
  const read = (file: string): { path: string; text: string } => {
    const path = isAbsolute(file) ? file : resolve(opts.inventory === file ? process.cwd() : dir, file);
    if (!existsSync(path)) throw new NotFoundError('NO_INVENTORY', `inventory ${relative(process.cwd(), path)} does not exist`, 'fix inventory: in minipaas.yaml or --inventory');
    return { path, text: readFileSync(path, 'utf8') };
  };
  if (opts.host && opts.role && !settings.hosts.some((h) => h.name === opts.host) && !opts.inventory && !settings.inventory) {
    // One host named on the command line, joining the environment's swarm (its first manager is in hosts:).
    const known = settings.hosts.length ? environmentHosts(settings, read) : [];
    const one: Host = { name: opts.host, address: opts.address ?? opts.host, role: opts.role, user: 'root', port: 22, labels: {} };
    if (opts.role === 'worker' && !known.some((h) => h.role === 'manager')) {
      throw new ConfigError('NO_MANAGER', `worker '${opts.host}' has no manager to join`, 'list the managers under hosts: in minipaas.yaml, or provision a manager first');
    }
    return [...known, one];
  }
  return environmentHosts(settings, read, opts.inventory);
}

interface StepRow {
  host: string;
  step: string;
  status: string;
  outcome: string | null;
  detail: string | null;
  step_operation: string;
}

/**
 * @example
 *   $ mp provision --env prod --accept-new-host-keys
 *   mgr-1: operation 12 (manager; steps os, docker, daemon, firewall, swarm, labels, agent-image, agent)
 *   mgr-1  os        unchanged
 *   mgr-1  docker    changed: the Docker engine, from the distribution's packages; start the Docker engine
 *   ...
 *   provisioned 3 hosts in 142 s: 3 changed
 */
export async function run(ctx: Context, opts: Options): Promise<void> {
  const dir = environmentDir(opts.env);
  const settings = readSettings(dir);
  const hosts = loadHosts(opts, dir, settings);
  const certsDir = resolve(dir, settings.provision.certs);
  const { payloads } = planProvision(hosts, settings.provision, {
    resolved: await resolveAddresses(hosts),
    ...(existsSync(join(certsDir, 'server-cert.pem')) ? { certsDir } : {}),
    acceptNew: opts.acceptNewHostKeys,
    ...(opts.host ? { only: opts.host } : {}),
  });
  if (opts.dryRun) {
    if (ctx.json) {
      ctx.stdout.write(`${JSON.stringify({ dryRun: true, operations: payloads.map((p) => ({ ...p, bare_host_plan: bareHostPlan(p) })) }, null, 2)}\n`);
      return;
    }
    ctx.stdout.write('plan of mp provision (nothing submitted): one provision.host operation per host, in this order\n');
    ctx.stdout.write('each step\'s actions as on a bare host; no host is contacted: on a provisioned host, steps that already match do nothing\n');
    for (const p of payloads) {
      ctx.stdout.write(`  ${p.host.name} (${p.host.role}, ${p.host.user}@${p.host.address}:${p.host.port}): ${stepsFor(p.settings, p.host.role).join(', ')}\n`);
      for (const { step, actions } of bareHostPlan(p)) {
        ctx.stdout.write(`    ${step}:${actions.length ? '' : ' nothing'}\n`);
        for (const a of actions) ctx.stdout.write(`      - ${a}\n`);
      }
    }
    return;
  }
  const env = environmentNameOf(dir);
  const db = ctx.db();
  await db.query(`select mp.environment_create($1)`, [env]);
  await db.query(`select mp.monitoring_configure($1)`, [JSON.stringify(settings.monitoring)]);
  if (!opts.detach) await requireAgent(ctx, 'provisioner');
  const started = ctx.clock.now().getTime();
  const ids: { host: string; id: string }[] = [];
  for (const p of payloads) {
    const [row] = await db.query<{ id: string }>(`select mp.submit_operation('provision.host', $1, $2, $3) as id`, [
      env,
      JSON.stringify(p),
      JSON.stringify({ target: 'provisioner', serial_key: `provision:${p.host.name}` }),
    ]);
    ids.push({ host: p.host.name, id: String(row!.id) });
    if (!ctx.json) ctx.stdout.write(`${p.host.name}: operation ${row!.id} (${p.host.role}; steps ${stepsFor(p.settings, p.host.role).join(', ')})\n`);
  }
  if (opts.detach) {
    if (ctx.json) ctx.stdout.write(`${JSON.stringify({ operations: ids })}\n`);
    else ctx.stdout.write('follow with: psql -c "table mp.provisioning_v"\n');
    return;
  }
  const printed = new Set<string>();
  const deadline = started + opts.timeout * 1000;
  let finals: { id: string; status: string; error: string | null; host: string }[] = [];
  for (;;) {
    const steps = await db.query<StepRow>(
      `select host, step, status, outcome, detail, step_operation::text from mp.provisioning_v where operation = any($1::bigint[]) and status in ('succeeded', 'failed')`,
      [ids.map((i) => i.id)],
    );
    for (const s of steps) {
      const key = `${s.step_operation}:${s.status}`;
      if (printed.has(key)) continue;
      printed.add(key);
      if (!ctx.json) ctx.stdout.write(`${s.host.padEnd(12)} ${s.step.padEnd(12)} ${s.status === 'failed' ? `FAILED: ${s.detail ?? ''}` : (s.detail ?? s.outcome ?? '')}\n`);
    }
    finals = await db.query(
      `select id::text, status, error, payload -> 'host' ->> 'name' as host from mp.operations where id = any($1::bigint[]) order by id`,
      [ids.map((i) => i.id)],
    );
    if (finals.every((f) => ['succeeded', 'failed', 'cancelled'].includes(f.status))) break;
    if (ctx.clock.now().getTime() > deadline || ctx.signal.aborted) {
      throw new ConflictError('PROVISION_TIMEOUT', `provisioning still running after ${opts.timeout} s`, 'it carries on; follow it with psql -c "table mp.provisioning_v"');
    }
    await ctx.clock.sleep(1000, ctx.signal);
  }
  const seconds = Math.round((ctx.clock.now().getTime() - started) / 1000);
  const results = await db.query<{ host: string; changed: boolean | null }>(
    `select payload -> 'host' ->> 'name' as host, (result ->> 'changed')::boolean as changed from mp.operations where id = any($1::bigint[])`,
    [ids.map((i) => i.id)],
  );
  const failed = finals.filter((f) => f.status !== 'succeeded');
  if (ctx.json) ctx.stdout.write(`${JSON.stringify({ seconds, hosts: finals.map((f) => ({ ...f, changed: results.find((r) => r.host === f.host)?.changed ?? null })) })}\n`);
  else {
    const changed = results.filter((r) => r.changed).length;
    const how = failed.length ? `${failed.length} failed` : changed ? `${changed} changed` : 'all unchanged';
    ctx.stdout.write(`provisioned ${finals.length - failed.length} of ${finals.length} hosts in ${seconds} s: ${how}\n`);
  }
  if (failed.length) {
    throw new ConflictError(
      'PROVISION_FAILED',
      failed.map((f) => f.error ?? `host ${f.host}: ${f.status}`).join('\n'),
      `the other hosts carried on; fix the cause and run mp provision again (finished steps report unchanged), or \`mp ops retry <step operation>\``,
    );
  }
}
