/**
 * The hosts MiniPaaS provisions, and how it reaches them: `hosts:` in minipaas.yaml, or an INI
 * inventory as the original Ansible role used (`[managers]`, `[workers]`, `[database]`, with
 * `ansible_host`, `ansible_user`, `ansible_port` and `ansible_ssh_private_key_file`), plus the
 * `provision:` and `monitoring:` sections of minipaas.yaml. Pure: text in, validated hosts out.
 *
 * Terminology: a *host* is a machine reached over SSH; once provisioned it is a Swarm *node* running an
 * *agent*. The *first manager* initialises the swarm; every other host joins it.
 *
 * @example
 *   [managers]
 *   mgr-1 ansible_host=10.0.0.2 ansible_user=admin
 *   [workers]
 *   wrk-1 ansible_host=10.0.0.3
 *   wrk-2 ansible_host=10.0.0.4 ansible_port=2222 ansible_ssh_private_key_file=~/.ssh/wrk
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { ConfigError } from '../../sql/errors.ts';

/** What a host becomes. `database` hosts are listed in inventories but not provisioned yet. */
export type HostRole = 'manager' | 'worker' | 'database';

const HOST_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const port = z.number().int().min(1).max(65535);

/** One host of `hosts:` in minipaas.yaml. */
export const hostSchema = z
  .object({
    name: z.string().regex(HOST_NAME, 'host names are letters, digits, ".", "_" and "-"'),
    /** The address the host is reached at over SSH, and advertises to the swarm. Default: `name`. */
    address: z.string().min(1).optional(),
    role: z.enum(['manager', 'worker', 'database']),
    user: z.string().min(1).default('root'),
    port: port.default(22),
    /** Private key file on the provisioner's machine (default: ssh-agent, then ~/.ssh/id_ed25519 and id_rsa). */
    ssh_key: z.string().min(1).optional(),
    /** Swarm node labels, besides `org.minipaas.host`. */
    labels: z.record(z.string(), z.string()).default({}),
  })
  .strict();

/** The `provision:` section: what every host gets besides Docker and the swarm. */
export const provisionSchema = z
  .object({
    /** Extra TCP ports open to everyone (80 and 443 always are). */
    ports: z.array(port).default([]),
    /** Addresses or CIDRs, besides the cluster's nodes, that may reach the Docker TLS API (2376). */
    api_allow: z.array(z.string().min(1)).default([]),
    /** fail2ban for SSH. */
    fail2ban: z.boolean().default(false),
    /** Forward syslog to `host:port` (TCP), when set. */
    syslog: z.string().regex(/^[^:\s]+:\d+$/, 'use host:port').optional(),
    /** Keys merged over the daemon.json MiniPaaS writes (e.g. `storage-driver: vfs` in a nested lab). */
    daemon: z.record(z.string(), z.json()).default({}),
    /** known_hosts file the provisioner checks host keys against (default ~/.ssh/known_hosts). */
    known_hosts: z.string().min(1).optional(),
    /** Certificate directory (`mp certs --out`), relative to the environment directory: TLS on 2376 when it has a server certificate. */
    certs: z.string().min(1).default('.certs'),
    /** The agent image, shipped from the provisioner's engine to each host that lacks it. */
    agent_image: z.string().min(1).default('mp/agent:latest'),
  })
  .strict();

const percent = z.number().min(0).max(100);

/** The `monitoring:` section: thresholds that raise alerts, and where alerts go. */
export const monitoringSchema = z
  .object({
    /** URL alerts are POSTed to as JSON (`{"text": ...}`; a Telegram bot's sendMessage URL is one). */
    webhook: z.url().optional(),
    /** Extra JSON fields of each post (e.g. Telegram's `chat_id`). */
    webhook_fields: z.record(z.string(), z.union([z.string(), z.number()])).default({}),
    cpu_percent: percent.default(90),
    memory_percent: percent.default(90),
    disk_percent: percent.default(90),
    /** Load average (1 minute) per CPU. */
    load_per_cpu: z.number().positive().default(2),
    /** Seconds without a heartbeat (agents beat every 5 s) before a node is down. */
    down_after_seconds: z.int().min(10).max(86_400).default(30),
  })
  .strict();

export type HostEntry = z.output<typeof hostSchema>;
export type ProvisionSettings = z.output<typeof provisionSchema>;
export type MonitoringSettings = z.output<typeof monitoringSchema>;

/** A host, resolved: every field set. */
export interface Host {
  name: string;
  address: string;
  role: HostRole;
  user: string;
  port: number;
  sshKey?: string;
  labels: Record<string, string>;
}

/** A host entry of minipaas.yaml, with its defaults. */
export function hostFromEntry(e: HostEntry): Host {
  return { name: e.name, address: e.address ?? e.name, role: e.role, user: e.user, port: e.port, ...(e.ssh_key ? { sshKey: e.ssh_key } : {}), labels: e.labels };
}

const GROUPS: Record<string, HostRole> = { managers: 'manager', workers: 'worker', database: 'database' };
const HOST_VARS = new Set(['ansible_host', 'ansible_user', 'ansible_port', 'ansible_ssh_private_key_file', 'ansible_ssh_port', 'ansible_ssh_user']);

/**
 * Parses an INI inventory. Throws `ConfigError` naming the file and line of the first problem (an
 * unknown group, a host outside any group, a malformed `key=value`, a port that is not a number).
 */
export function parseInventory(path: string, text: string): Host[] {
  const hosts: Host[] = [];
  const vars = new Map<string, Record<string, string>>();
  let group: string | undefined;
  let varsOf: string | undefined;
  const fail = (line: number, message: string, hint: string): never => {
    throw new ConfigError('INVALID_INVENTORY', `${path}:${line}: ${message}`, hint);
  };
  const pending: { line: number; name: string; role: HostRole; group: string; own: Record<string, string> }[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    const content = raw.replace(/\s[#;].*$/, '').trim();
    if (!content || content.startsWith('#') || content.startsWith(';')) return;
    const section = /^\[([^\]]+)\]$/.exec(content);
    if (section) {
      const [name, suffix] = section[1]!.trim().split(':');
      if (suffix === 'vars' && (name === 'all' || GROUPS[name!])) {
        varsOf = name;
        group = undefined;
        return;
      }
      if (suffix !== undefined || !GROUPS[name!]) {
        fail(line, `unknown group [${section[1]}]`, 'groups are [managers], [workers] and [database] (and [<group>:vars], [all:vars])');
      }
      group = name;
      varsOf = undefined;
      return;
    }
    const words = content.split(/\s+/);
    const pairs = (list: string[]): Record<string, string> => {
      const out: Record<string, string> = {};
      for (const w of list) {
        const eq = w.indexOf('=');
        if (eq <= 0) fail(line, `'${w}' is not key=value`, 'write host variables as ansible_host=10.0.0.2');
        out[w.slice(0, eq)] = w.slice(eq + 1).replace(/^["']|["']$/g, '');
      }
      return out;
    };
    if (varsOf) {
      vars.set(varsOf, { ...vars.get(varsOf), ...pairs(words) });
      return;
    }
    if (!group) fail(line, `host '${words[0]}' is outside any group`, 'put it under [managers] or [workers]');
    const name = words[0]!;
    if (!HOST_NAME.test(name)) fail(line, `'${name}' is not a valid host name`, 'host names are letters, digits, ".", "_" and "-"');
    pending.push({ line, name, role: GROUPS[group!]!, group: group!, own: pairs(words.slice(1)) });
  });
  for (const p of pending) {
    const v = { ...vars.get('all'), ...vars.get(p.group), ...p.own };
    for (const key of Object.keys(v)) {
      if (key.startsWith('ansible_') && !HOST_VARS.has(key)) {
        fail(p.line, `unknown variable '${key}' of host '${p.name}'`, `known: ${[...HOST_VARS].join(', ')}`);
      }
    }
    const portText = v.ansible_port ?? v.ansible_ssh_port ?? '22';
    const portNumber = Number(portText);
    if (!/^\d+$/.test(portText) || portNumber < 1 || portNumber > 65535) {
      fail(p.line, `ansible_port of host '${p.name}' is '${portText}', not a port number`, 'use a number from 1 to 65535');
    }
    hosts.push({
      name: p.name,
      address: v.ansible_host ?? p.name,
      role: p.role,
      user: v.ansible_user ?? v.ansible_ssh_user ?? 'root',
      port: portNumber,
      ...(v.ansible_ssh_private_key_file ? { sshKey: v.ansible_ssh_private_key_file } : {}),
      labels: {},
    });
  }
  // Groups, not lines, say the order: managers first (the first one initialises the swarm).
  const rank: Record<HostRole, number> = { manager: 0, worker: 1, database: 2 };
  return hosts.map((h, i) => ({ h, i })).sort((a, b) => rank[a.h.role] - rank[b.h.role] || a.i - b.i).map(({ h }) => h);
}

/**
 * Checks a host list as a whole: names unique, a manager first (it initialises the swarm; a worker
 * listed before any manager has nothing to join), addresses given. Throws `ConfigError` naming the host.
 */
export function checkHosts(hosts: Host[], source: string): void {
  const seen = new Set<string>();
  let managerSeen = false;
  for (const h of hosts) {
    if (seen.has(h.name)) throw new ConfigError('DUPLICATE_HOST', `${source}: host '${h.name}' is listed twice`, 'give every host its own name');
    seen.add(h.name);
    if (h.role === 'manager') managerSeen = true;
    if (h.role === 'worker' && !managerSeen) {
      throw new ConfigError(
        'WORKER_BEFORE_MANAGER',
        `${source}: worker '${h.name}' is listed before any manager`,
        'list the managers first: the first manager initialises the swarm that the workers join',
      );
    }
  }
  if (!hosts.some((h) => h.role === 'manager')) {
    throw new ConfigError('NO_MANAGER', `${source}: no manager among ${hosts.length} hosts`, 'add a host with role: manager (or a [managers] group)');
  }
}

/** Whether `address` is an IP literal (the firewall's cluster set holds addresses only). */
export function isAddress(address: string): boolean {
  return isIP(address) !== 0;
}

/**
 * The hosts of an environment: its INI inventory (`inventory` here, else `settings.inventory`, read
 * with `read`) or its `hosts:` list, checked with `checkHosts`.
 */
export function environmentHosts(
  settings: { hosts: HostEntry[]; inventory?: string },
  read: (path: string) => { path: string; text: string },
  inventory?: string,
): Host[] {
  const file = inventory ?? settings.inventory;
  if (file) {
    const { path, text } = read(file);
    const hosts = parseInventory(path, text);
    checkHosts(hosts, path);
    return hosts;
  }
  const hosts = settings.hosts.map(hostFromEntry);
  if (hosts.length === 0) {
    throw new ConfigError('NO_HOSTS', 'no hosts: minipaas.yaml has no hosts: list and no inventory: file', 'add hosts: (name, address, role) or pass --inventory FILE');
  }
  checkHosts(hosts, 'minipaas.yaml hosts');
  return hosts;
}
