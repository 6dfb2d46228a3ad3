/**
 * The provisioning steps of one host, each as observe (read the host), plan (pure: the actions, as
 * plain data, that take what was observed to what is wanted; none means `unchanged`) and apply
 * (agent/provision/apply.ts). Kamal-style: every remote action is a command object before it runs, so
 * unit tests assert on plans and `mp provision --dry-run` prints them.
 *
 * Steps, in order: os, docker, daemon, firewall, fail2ban and syslog (when enabled), swarm, labels,
 * agent-image, agent. A `[database]` host runs os, firewall, fail2ban and syslog, then postgres and
 * database (agent/provision/database.ts). Each is idempotent: run on a provisioned host it plans nothing.
 */
import { createHash } from 'node:crypto';
import { ConfigError } from '../../sql/errors.ts';
import type { Host, ProvisionSettings } from './inventory.ts';

/** The step names, in the order they run. */
export const STEP_NAMES = ['os', 'docker', 'daemon', 'firewall', 'fail2ban', 'syslog', 'postgres', 'database', 'swarm', 'labels', 'agent-image', 'agent'] as const;
/** The steps only a `[database]` host runs, and those only cluster nodes run. */
const DATABASE_ONLY: readonly StepName[] = ['postgres', 'database'];
const CLUSTER_ONLY: readonly StepName[] = ['docker', 'daemon', 'swarm', 'labels', 'agent-image', 'agent'];
export type StepName = (typeof STEP_NAMES)[number];

/** Releases MiniPaaS provisions: `ID VERSION_ID` of /etc/os-release. */
export const SUPPORTED_OS: readonly string[] = ['debian 12', 'ubuntu 22.04', 'ubuntu 24.04'];
export const SUPPORTED_ARCH: readonly string[] = ['x86_64', 'aarch64'];

/** Where TLS material lives on a manager. */
export const TLS_DIR = '/etc/docker/tls';
export const DAEMON_JSON = '/etc/docker/daemon.json';
export const NFT_CONF = '/etc/nftables.conf';
export const SYSTEMD_DROP_IN = '/etc/systemd/system/docker.service.d/minipaas.conf';

/** A file MiniPaaS writes. A key's content is never in a plan: `source` names the local file, `sha256` its content. */
export type FileAction = {
  type: 'write';
  path: string;
  mode: string;
  why: string;
} & ({ content: string } | { source: string; sha256: string });

/** One remote action, as data. */
export type Action =
  | { type: 'run'; command: string; why: string }
  | FileAction
  | { type: 'swarm-init'; advertise: string; why: string }
  | { type: 'swarm-join'; manager: string; remote: string; role: 'manager' | 'worker'; advertise: string; why: string }
  | { type: 'node-labels'; node: string; labels: Record<string, string>; why: string }
  | { type: 'ship-image'; image: string; imageId: string; why: string }
  | { type: 'agent-service'; image: string; why: string }
  | { type: 'migrate'; pending: string[]; why: string }
  | { type: 'wait-agent'; node: string; why: string };

/** What one host's provisioning is given (the `provision.host` payload, resolved). */
export interface HostPlanInput {
  host: Host;
  /** The manager that initialises the swarm; the others join it. */
  firstManager: Host;
  /** Addresses of every cluster node: the firewall lets only them reach the Swarm ports. */
  cluster: string[];
  settings: ProvisionSettings;
  /** The Docker TLS API files (managers, when `mp certs` made a server certificate). */
  tls?: { ca: LocalFile; cert: LocalFile; key: LocalFile };
}

/** A file on the provisioner's machine, by path and content hash. */
export interface LocalFile {
  path: string;
  sha256: string;
}

/** What `observe` read from a host: one shell script's `key=value` lines (see `FACTS_SCRIPT`). */
export type Facts = Record<string, string>;

/**
 * One round trip that reads everything the file and package steps depend on. Hashes, not contents:
 * a key's content never leaves the host.
 */
export const FACTS_SCRIPT = [
  '. /etc/os-release 2>/dev/null; echo "os=$ID $VERSION_ID"; echo "os_name=$PRETTY_NAME"',
  'echo "arch=$(uname -m)"',
  'test -d /run/systemd/system && echo init=systemd || echo init=sysv',
  ...['docker.io', 'nftables', 'fail2ban', 'rsyslog'].map((p) => `echo "pkg_${p}=$(dpkg-query -W -f='\${Status}' ${p} 2>/dev/null | grep -q 'ok installed' && echo yes || echo no)"`),
  `for f in ${DAEMON_JSON} ${NFT_CONF} ${SYSTEMD_DROP_IN} ${TLS_DIR}/ca.pem ${TLS_DIR}/server-cert.pem ${TLS_DIR}/server-key.pem /etc/fail2ban/jail.d/minipaas.conf /etc/rsyslog.d/90-minipaas.conf; do echo "sha:$f=$(sha256sum "$f" 2>/dev/null | cut -c1-64)"; done`,
  'docker version -f "{{.Server.Version}}" >/dev/null 2>&1 && echo dockerd=running || echo dockerd=stopped',
  'echo "dockerd_started=$(stat -c %Y /var/run/docker.pid 2>/dev/null)"',
  'nft list table inet minipaas >/dev/null 2>&1 && echo nft_table=yes || echo nft_table=no',
].join('\n');

/** Parses `FACTS_SCRIPT` output. */
export function parseFacts(stdout: string): Facts {
  const facts: Facts = {};
  for (const line of stdout.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) facts[line.slice(0, eq)] = line.slice(eq + 1).trim();
  }
  return facts;
}

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

const IPV4_OR_CIDR = /^\d{1,3}(\.\d{1,3}){3}(\/\d{1,2})?$/;
const HEADER = 'Written by MiniPaaS (mp provision): edits are replaced on the next run.';

/** Pure: `os` refuses what MiniPaaS does not support; plans nothing. */
export function planOs(input: HostPlanInput, facts: Facts): Action[] {
  const os = facts.os ?? 'unknown';
  if (!SUPPORTED_OS.includes(os)) {
    throw new ConfigError(
      'UNSUPPORTED_OS',
      `host ${input.host.name}: ${facts.os_name || os} is not supported`,
      `MiniPaaS provisions ${SUPPORTED_OS.map((o) => o.replace(/^\w/, (c) => c.toUpperCase())).join(', ')}`,
    );
  }
  if (!SUPPORTED_ARCH.includes(facts.arch ?? '')) {
    throw new ConfigError('UNSUPPORTED_ARCH', `host ${input.host.name}: architecture ${facts.arch ?? 'unknown'} is not supported`, `supported: ${SUPPORTED_ARCH.join(', ')}`);
  }
  return [];
}

const APT = 'DEBIAN_FRONTEND=noninteractive apt-get';

/**
 * Installs packages from the distribution, fetching the package lists first when the host has none
 * (a fresh image ships without them; a `[database]` host has no docker step to fetch them first).
 */
export function aptInstall(...packages: string[]): string {
  return `{ ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1 || ${APT} update -q; } && ${APT} install -y -q --no-install-recommends ${packages.join(' ')}`;
}

/** The command that (re)starts a service under the host's init: systemd, or the Debian init scripts. */
export function serviceCommand(facts: Facts, service: string, verb: 'restart' | 'start' | 'reload'): string {
  if (facts.init === 'systemd') return `systemctl enable ${service} >/dev/null 2>&1; systemctl ${verb} ${service}`;
  if (service === 'docker') {
    // Without systemd (a container as host): dockerd started in the background, as Debian's init script
    // would, but without its `ulimit` calls, which need CAP_SYS_RESOURCE.
    const stop = 'if [ -f /var/run/docker.pid ]; then kill "$(cat /var/run/docker.pid)" 2>/dev/null; for i in $(seq 1 100); do [ -f /var/run/docker.pid ] || break; sleep 0.2; done; fi';
    const start =
      'setsid /usr/sbin/dockerd >>/var/log/dockerd.log 2>&1 </dev/null & for i in $(seq 1 150); do docker version >/dev/null 2>&1 && exit 0; sleep 0.2; done; tail -n 20 /var/log/dockerd.log >&2; exit 1';
    return verb === 'start' ? start : `${stop}; ${start}`;
  }
  return `service ${service} ${verb === 'reload' ? 'reload' : verb}`;
}

/** Pure: `docker` installs Debian's docker.io when it is missing and starts the engine when it is stopped. */
export function planDocker(_input: HostPlanInput, facts: Facts): Action[] {
  const actions: Action[] = [];
  if (facts['pkg_docker.io'] !== 'yes') {
    actions.push({
      type: 'run',
      command: `${APT} update -q && ${APT} install -y -q --no-install-recommends docker.io`,
      why: "the Docker engine, from the distribution's packages",
    });
  }
  if (facts['pkg_docker.io'] !== 'yes' || facts.dockerd !== 'running') {
    actions.push({ type: 'run', command: serviceCommand(facts, 'docker', 'start'), why: 'start the Docker engine' });
  }
  return actions;
}

/** Pure: the daemon.json MiniPaaS writes: log rotation, TLS on 2376 when the host has certificates, then the user's keys. */
export function daemonJson(input: HostPlanInput): string {
  const config: Record<string, unknown> = {
    'log-driver': 'json-file',
    'log-opts': { 'max-size': '10m', 'max-file': '3' },
  };
  if (input.tls) {
    Object.assign(config, {
      hosts: ['unix:///var/run/docker.sock', 'tcp://0.0.0.0:2376'],
      tls: true,
      tlsverify: true,
      tlscacert: `${TLS_DIR}/ca.pem`,
      tlscert: `${TLS_DIR}/server-cert.pem`,
      tlskey: `${TLS_DIR}/server-key.pem`,
    });
  }
  Object.assign(config, input.settings.daemon);
  return `${JSON.stringify(config, null, 2)}\n`;
}

/** Pure: `daemon` writes daemon.json (and the TLS files), restarting the engine when any changed. */
export function planDaemon(input: HostPlanInput, facts: Facts): Action[] {
  const actions: Action[] = [];
  if (input.tls) {
    const files: [LocalFile, string, string][] = [
      [input.tls.ca, 'ca.pem', '0644'],
      [input.tls.cert, 'server-cert.pem', '0644'],
      [input.tls.key, 'server-key.pem', '0600'],
    ];
    for (const [file, name, mode] of files) {
      const path = `${TLS_DIR}/${name}`;
      if (facts[`sha:${path}`] !== file.sha256) {
        actions.push({ type: 'write', path, mode, source: file.path, sha256: file.sha256, why: 'Docker TLS API (mp certs)' });
      }
    }
  }
  const json = daemonJson(input);
  if (facts[`sha:${DAEMON_JSON}`] !== sha256(json)) {
    actions.push({ type: 'write', path: DAEMON_JSON, mode: '0644', content: json, why: 'log rotation' + (input.tls ? ', TLS API on 2376' : '') });
  }
  // systemd's unit passes -H fd://, which clashes with `hosts` in daemon.json.
  if (facts.init === 'systemd' && input.tls) {
    const dropIn = `# ${HEADER}\n[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd --containerd=/run/containerd/containerd.sock\n`;
    if (facts[`sha:${SYSTEMD_DROP_IN}`] !== sha256(dropIn)) {
      actions.push({ type: 'write', path: SYSTEMD_DROP_IN, mode: '0644', content: dropIn, why: 'let daemon.json say which sockets dockerd listens on' });
      actions.push({ type: 'run', command: 'systemctl daemon-reload', why: 'load the changed unit' });
    }
  }
  if (actions.length > 0) actions.push({ type: 'run', command: serviceCommand(facts, 'docker', 'restart'), why: 'apply the daemon configuration' });
  return actions;
}

/** Pure: the nftables ruleset: default deny inbound; SSH, HTTP(S) and extra ports open; Swarm and the TLS API only from the cluster. */
export function nftRuleset(input: HostPlanInput): string {
  if (input.host.role === 'database') return databaseRuleset(input);
  const cluster = [...new Set(input.cluster)].sort();
  const apiFrom = [...new Set([...cluster, ...input.settings.api_allow])].sort();
  const open = [...new Set([22, 80, 443, ...input.settings.ports, ...(input.host.port !== 22 ? [input.host.port] : [])])].sort((a, b) => a - b);
  // Only IPv4 addresses and CIDRs fit the sets (mp provision resolves names before it plans).
  const v4 = (list: string[]): string[] => list.filter((a) => IPV4_OR_CIDR.test(a));
  const set = (list: string[]): string => `{ ${list.join(', ')} }`;
  const lines = [
    '#!/usr/sbin/nft -f',
    `# ${HEADER}`,
    '# Only this table is replaced: Docker keeps its own rules in the ip and ip6 tables.',
    'table inet minipaas',
    'delete table inet minipaas',
    'table inet minipaas {',
    ...(v4(cluster).length ? [`  set cluster { type ipv4_addr; flags interval; elements = ${set(v4(cluster))} }`] : []),
    ...(v4(apiFrom).length ? [`  set api_clients { type ipv4_addr; flags interval; elements = ${set(v4(apiFrom))} }`] : []),
    '  chain input {',
    '    type filter hook input priority filter; policy drop;',
    '    ct state established,related accept',
    '    ct state invalid drop',
    '    iif lo accept',
    // ICMP and ICMPv6 by number: the names need /etc/protocols, which a minimal host may lack.
    '    meta l4proto { 1, 58 } accept',
    `    tcp dport ${set(open.map(String))} accept`,
    ...(v4(cluster).length
      ? ['    ip saddr @cluster tcp dport { 2377, 7946 } accept', '    ip saddr @cluster udp dport { 7946, 4789 } accept']
      : []),
    ...(v4(apiFrom).length ? ['    ip saddr @api_clients tcp dport 2376 accept'] : []),
    // Containers reach services on their host (the agent uses the host network; bridges are not cluster nodes).
    '    iifname "docker0" accept',
    '    iifname "docker_gwbridge" accept',
    '    iifname "br-*" accept',
    '  }',
    '}',
  ];
  return `${lines.join('\n')}\n`;
}

/**
 * Pure: a `[database]` host's ruleset: default deny inbound; SSH open; PostgreSQL (5432) only from the
 * cluster's nodes. No Swarm, HTTP or extra ports: it runs no containers. The provisioner reaches
 * PostgreSQL through SSH (agent/provision/tunnel.ts), so it needs no hole of its own.
 */
function databaseRuleset(input: HostPlanInput): string {
  const cluster = [...new Set(input.cluster)].filter((a) => IPV4_OR_CIDR.test(a)).sort();
  const ssh = [...new Set([22, input.host.port])].sort((a, b) => a - b);
  const lines = [
    '#!/usr/sbin/nft -f',
    `# ${HEADER}`,
    'table inet minipaas',
    'delete table inet minipaas',
    'table inet minipaas {',
    ...(cluster.length ? [`  set cluster { type ipv4_addr; flags interval; elements = { ${cluster.join(', ')} } }`] : []),
    '  chain input {',
    '    type filter hook input priority filter; policy drop;',
    '    ct state established,related accept',
    '    ct state invalid drop',
    '    iif lo accept',
    // ICMP and ICMPv6 by number: the names need /etc/protocols, which a minimal host may lack.
    '    meta l4proto { 1, 58 } accept',
    `    tcp dport { ${ssh.join(', ')} } accept`,
    ...(cluster.length ? ['    ip saddr @cluster tcp dport 5432 accept'] : []),
    '  }',
    '}',
  ];
  return `${lines.join('\n')}\n`;
}

/** Pure: `firewall` installs nftables, writes the ruleset and loads it when it changed or is not loaded. */
export function planFirewall(input: HostPlanInput, facts: Facts): Action[] {
  const actions: Action[] = [];
  if (facts.pkg_nftables !== 'yes') actions.push({ type: 'run', command: aptInstall('nftables'), why: 'the firewall' });
  const rules = nftRuleset(input);
  const changed = facts[`sha:${NFT_CONF}`] !== sha256(rules);
  if (changed) actions.push({ type: 'write', path: NFT_CONF, mode: '0755', content: rules, why: input.host.role === 'database' ? 'default deny inbound; PostgreSQL from the cluster only' : 'default deny inbound; cluster-only Swarm ports' });
  if (changed || facts.nft_table !== 'yes') {
    actions.push({ type: 'run', command: `nft -f ${NFT_CONF}${facts.init === 'systemd' ? ' && systemctl enable nftables >/dev/null 2>&1' : ''}`, why: 'load the ruleset' });
  }
  return actions;
}

/** Pure: `fail2ban` (when enabled) bans addresses that fail SSH logins. */
export function planFail2ban(input: HostPlanInput, facts: Facts): Action[] {
  if (!input.settings.fail2ban) return [];
  const actions: Action[] = [];
  if (facts.pkg_fail2ban !== 'yes') actions.push({ type: 'run', command: aptInstall('fail2ban'), why: 'SSH brute-force protection' });
  const jail = `# ${HEADER}\n[sshd]\nenabled = true\nbackend = systemd\nmaxretry = 5\nbantime = 1h\n`;
  const path = '/etc/fail2ban/jail.d/minipaas.conf';
  if (facts[`sha:${path}`] !== sha256(jail)) {
    actions.push({ type: 'write', path, mode: '0644', content: jail, why: 'the sshd jail' });
    actions.push({ type: 'run', command: serviceCommand(facts, 'fail2ban', 'restart'), why: 'load the jail' });
  }
  return actions;
}

/** Pure: `syslog` (when `provision.syslog` is set) forwards the host's syslog over TCP. */
export function planSyslog(input: HostPlanInput, facts: Facts): Action[] {
  if (!input.settings.syslog) return [];
  const actions: Action[] = [];
  if (facts.pkg_rsyslog !== 'yes') actions.push({ type: 'run', command: aptInstall('rsyslog'), why: 'syslog forwarding' });
  const conf = `# ${HEADER}\n*.* @@${input.settings.syslog}\n`;
  const path = '/etc/rsyslog.d/90-minipaas.conf';
  if (facts[`sha:${path}`] !== sha256(conf)) {
    actions.push({ type: 'write', path, mode: '0644', content: conf, why: `forward to ${input.settings.syslog}` });
    actions.push({ type: 'run', command: serviceCommand(facts, 'rsyslog', 'restart'), why: 'load the forwarding rule' });
  }
  return actions;
}

/** What the swarm steps read through the Docker APIs of the host and of the first manager. */
export interface SwarmState {
  /** This host's engine: swarm state, node id, cluster id. */
  local: { state: string; nodeId: string; clusterId?: string; manager: boolean };
  /** The first manager's cluster id (absent until it initialised the swarm). */
  managerClusterId?: string;
}

/** Pure: `swarm` initialises the swarm on the first manager; every other host joins it. */
export function planSwarm(input: HostPlanInput, state: SwarmState): Action[] {
  const first = input.host.name === input.firstManager.name;
  const role = input.host.role === 'manager' ? 'manager' : 'worker';
  if (state.local.state === 'active') {
    if (!first && state.managerClusterId && state.local.clusterId && state.local.clusterId !== state.managerClusterId) {
      throw new ConfigError(
        'OTHER_SWARM',
        `host ${input.host.name} is in another swarm (cluster ${state.local.clusterId}) than ${input.firstManager.name}`,
        `make it leave that swarm (docker swarm leave --force on ${input.host.name}) and provision again`,
      );
    }
    return [];
  }
  if (first) return [{ type: 'swarm-init', advertise: input.host.address, why: 'the first manager initialises the swarm' }];
  return [
    {
      type: 'swarm-join',
      manager: input.firstManager.name,
      remote: `${input.firstManager.address}:2377`,
      role,
      advertise: input.host.address,
      why: `join as a ${role}; the token is read from ${input.firstManager.name}'s Docker API at apply time`,
    },
  ];
}

/** The labels MiniPaaS puts on a host's Swarm node, besides the user's. */
export function nodeLabels(host: Host): Record<string, string> {
  return { ...host.labels, 'org.minipaas.host': host.name, 'org.minipaas.role': host.role };
}

/** Pure: `labels` sets the node's labels (through the first manager) when any differs. */
export function planLabels(input: HostPlanInput, current: { nodeId: string; labels: Record<string, string> }): Action[] {
  const wanted = { ...current.labels, ...nodeLabels(input.host) };
  const same = Object.keys(wanted).every((k) => current.labels[k] === wanted[k]);
  return same ? [] : [{ type: 'node-labels', node: current.nodeId, labels: wanted, why: 'node labels for placement constraints' }];
}

/** Pure: `agent-image` ships the agent image from the provisioner's engine when the host lacks that image id. */
export function planAgentImage(input: HostPlanInput, state: { localImageId: string; remoteImageId?: string }): Action[] {
  if (state.remoteImageId === state.localImageId) return [];
  return [{ type: 'ship-image', image: input.settings.agent_image, imageId: state.localImageId, why: 'the agent image (no registry needed)' }];
}

/**
 * Pure: `agent`: on the first manager, the global agent service (`mp agent install`'s, planned by
 * agent/global-service.ts, so `unchanged` when its spec hash matches); on every host, waiting until the
 * node's agent heartbeats.
 */
export function planAgent(input: HostPlanInput, state: { serviceUpToDate: boolean; agentAlive: boolean; hostname: string }): Action[] {
  const actions: Action[] = [];
  if (input.host.name === input.firstManager.name && !state.serviceUpToDate) {
    actions.push({ type: 'agent-service', image: input.settings.agent_image, why: 'one agent per node (global service mp-agent)' });
  }
  if (!state.agentAlive) actions.push({ type: 'wait-agent', node: state.hostname, why: 'the node agent registers and heartbeats' });
  return actions;
}

/** The steps a host of `role` runs (fail2ban and syslog only when enabled). */
export function stepsFor(settings: ProvisionSettings, role: Host['role'] = 'manager'): StepName[] {
  const skip = role === 'database' ? CLUSTER_ONLY : DATABASE_ONLY;
  return STEP_NAMES.filter((s) => !skip.includes(s) && (s !== 'fail2ban' || settings.fail2ban) && (s !== 'syslog' || settings.syslog !== undefined));
}

/** One line per action, for `--dry-run` and step events. */
export function describeAction(a: Action): string {
  switch (a.type) {
    case 'run':
      return `run: ${a.command.length > 120 ? `${a.command.slice(0, 117)}...` : a.command} (${a.why})`;
    case 'write':
      return `write ${a.path} (mode ${a.mode}; ${a.why})`;
    case 'swarm-init':
      return `swarm init --advertise-addr ${a.advertise} (${a.why})`;
    case 'swarm-join':
      return `swarm join ${a.remote} as ${a.role} (${a.why})`;
    case 'node-labels':
      return `label node ${a.node}: ${Object.entries(a.labels).map(([k, v]) => `${k}=${v}`).join(', ')}`;
    case 'ship-image':
      return `ship image ${a.image} (${a.imageId.slice(0, 19)}) over SSH`;
    case 'agent-service':
      return `install the global agent service from ${a.image}`;
    case 'migrate':
      return `migrate the database: ${a.pending.length > 3 ? `${a.pending.slice(0, 3).join(', ')} and ${a.pending.length - 3} more` : a.pending.join(', ')}`;
    case 'wait-agent':
      return `wait for the agent of ${a.node}`;
  }
}
