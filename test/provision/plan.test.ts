/**
 * Provisioning plans, as data: inventories, the order of hosts, and each step's actions from what a
 * host looked like. A step planned against the state it produced plans nothing (idempotent).
 */
import { describe, expect, it } from 'vitest';
import { checkHosts, parseInventory, provisionSchema, type Host } from '../../agent/provision/inventory.ts';
import {
  DAEMON_JSON,
  daemonJson,
  NFT_CONF,
  nftRuleset,
  parseFacts,
  planAgent,
  planAgentImage,
  planDaemon,
  planDocker,
  planFirewall,
  planLabels,
  planOs,
  planSwarm,
  sha256,
  stepsFor,
  TLS_DIR,
  type Facts,
  type HostPlanInput,
} from '../../agent/provision/steps.ts';
import { planProvision } from '../../cli/commands/provision.ts';
import { ConfigError } from '../../sql/errors.ts';
import { parseEnvironmentFile } from '../../stack/environment.ts';

const mgr: Host = { name: 'mgr-1', address: '10.0.0.2', role: 'manager', user: 'root', port: 22, labels: {} };
const wrk: Host = { name: 'wrk-1', address: '10.0.0.3', role: 'worker', user: 'root', port: 22, labels: { zone: 'b' } };
const settings = provisionSchema.parse({ ports: [8080], api_allow: ['192.0.2.1'] });
const input = (host: Host, extra: Partial<HostPlanInput> = {}): HostPlanInput => ({ host, firstManager: mgr, cluster: [mgr.address, wrk.address], settings, ...extra });
const debian: Facts = { os: 'debian 12', arch: 'x86_64', init: 'sysv', 'pkg_docker.io': 'no', pkg_nftables: 'no', dockerd: 'stopped', nft_table: 'no' };

describe('inventory', () => {
  it('reads [managers] and [workers] with ansible variables, managers first', () => {
    const hosts = parseInventory(
      'hosts.ini',
      `# lab
[workers]
w1 ansible_host=10.0.0.3 ansible_port=2222
[managers]
m1 ansible_host=10.0.0.2 ansible_user=admin ansible_ssh_private_key_file=~/.ssh/lab
[database]
db1 ansible_host=10.0.0.9
[all:vars]
ansible_user=ops
`,
    );
    expect(hosts.map((h) => [h.name, h.role, h.address, h.user, h.port])).toEqual([
      ['m1', 'manager', '10.0.0.2', 'admin', 22],
      ['w1', 'worker', '10.0.0.3', 'ops', 2222],
      ['db1', 'database', '10.0.0.9', 'ops', 22],
    ]);
    expect(hosts[0]!.sshKey).toBe('~/.ssh/lab');
  });

  it.each([
    ['[servers]\na\n', /hosts.ini:1: unknown group \[servers\]/],
    ['a ansible_host=1.2.3.4\n', /hosts.ini:1: host 'a' is outside any group/],
    ['[managers]\na ansible_host\n', /hosts.ini:2: 'ansible_host' is not key=value/],
    ['[managers]\na ansible_port=ssh\n', /hosts.ini:2: ansible_port of host 'a' is 'ssh', not a port number/],
    ['[managers]\na ansible_hots=1.2.3.4\n', /unknown variable 'ansible_hots'/],
  ])('refuses %j with the line', (text, message) => {
    expect(() => parseInventory('hosts.ini', text)).toThrow(message);
  });

  it('refuses a worker listed before any manager, no manager, and a name twice', () => {
    expect(() => checkHosts([wrk, mgr], 'minipaas.yaml hosts')).toThrow(/worker 'wrk-1' is listed before any manager/);
    expect(() => checkHosts([{ ...wrk }], 'x')).toThrow(/worker 'wrk-1' is listed before any manager/);
    expect(() => checkHosts([mgr, mgr], 'x')).toThrow(/listed twice/);
    expect(() => checkHosts([mgr, wrk], 'x')).not.toThrow();
  });

  it('minipaas.yaml: a port list with a non-number is one clear line', () => {
    expect(() => parseEnvironmentFile('prod/minipaas.yaml', 'project: {files: [c.yaml]}\nprovision: {ports: [8080, "http"]}\n')).toThrow(
      /provision\.ports\.1: .*number/,
    );
    expect(() => parseEnvironmentFile('m.yaml', 'project: {files: [c.yaml]}\nprovision: {port: [1]}\n')).toThrow(/unknown key 'provision.port' \(did you mean 'ports'\?\)/);
    const s = parseEnvironmentFile('m.yaml', 'project: {files: [c.yaml]}\nhosts: [{name: m, address: 10.0.0.2, role: manager}]\n');
    expect(s.hosts[0]).toMatchObject({ name: 'm', user: 'root', port: 22 });
    expect(s.monitoring.disk_percent).toBe(90);
  });

  it('plans one operation per host: the database host, then managers, then workers; each names the database host', () => {
    const db: Host = { ...wrk, name: 'db', address: '10.0.0.9', role: 'database' };
    const plan = planProvision([mgr, wrk, db, { ...mgr, name: 'mgr-2', address: '10.0.0.4' }], settings, { acceptNew: true });
    expect(plan.payloads.map((p) => p.host.name)).toEqual(['db', 'mgr-1', 'mgr-2', 'wrk-1']);
    expect(plan.payloads.every((p) => p.first_manager.name === 'mgr-1')).toBe(true);
    expect(plan.payloads.every((p) => p.database?.name === 'db')).toBe(true);
    // The cluster (whose nodes may reach the database) does not include the database host itself.
    expect(plan.payloads[0]!.cluster).toEqual(['10.0.0.2', '10.0.0.3', '10.0.0.4']);
    expect(planProvision([mgr, wrk], settings, { acceptNew: true }).payloads.every((p) => p.database === undefined)).toBe(true);
    // A host named by DNS name is listed by the address it resolved to.
    const named = planProvision([mgr, { ...wrk, address: 'wrk-1.internal' }], settings, { acceptNew: true, resolved: { 'wrk-1.internal': '10.0.0.7' } });
    expect(named.payloads[0]!.cluster).toEqual(['10.0.0.2', '10.0.0.7']);
    expect(named.payloads[1]!.host.address).toBe('wrk-1.internal');
    expect(() => planProvision([mgr, db, { ...db, name: 'db-2' }], settings, { acceptNew: true })).toThrow(/names 2 database hosts \(db, db-2\)/);
    expect(() => planProvision([mgr], settings, { acceptNew: false, only: 'nope' })).toThrow(/host 'nope' is not in the inventory/);
  });
});

describe('step plans', () => {
  it('os: Debian 12 and Ubuntu 22.04/24.04 pass; anything else is refused naming the host', () => {
    expect(planOs(input(mgr), debian)).toEqual([]);
    expect(planOs(input(mgr), { ...debian, os: 'ubuntu 24.04' })).toEqual([]);
    expect(() => planOs(input(mgr), { ...debian, os: 'centos 9', os_name: 'CentOS Stream 9' })).toThrow(/host mgr-1: CentOS Stream 9 is not supported/);
    expect(() => planOs(input(mgr), { ...debian, arch: 'armv7l' })).toThrow(ConfigError);
  });

  it('docker: installs docker.io from the distribution and starts it; nothing when running', () => {
    const actions = planDocker(input(mgr), debian);
    expect(actions.map((a) => a.type)).toEqual(['run', 'run']);
    expect(actions[0]).toMatchObject({ command: expect.stringContaining('apt-get install -y -q --no-install-recommends docker.io') });
    expect(planDocker(input(mgr), { ...debian, 'pkg_docker.io': 'yes', dockerd: 'running' })).toEqual([]);
    expect(planDocker(input(mgr), { ...debian, 'pkg_docker.io': 'yes', dockerd: 'stopped', init: 'systemd' })).toEqual([
      { type: 'run', command: 'systemctl enable docker >/dev/null 2>&1; systemctl start docker', why: 'start the Docker engine' },
    ]);
  });

  it('daemon: log rotation, TLS on 2376 for a manager with certificates, the lab override; key content never in the plan', () => {
    const tls = { ca: { path: '/c/ca.pem', sha256: 'a'.repeat(64) }, cert: { path: '/c/server-cert.pem', sha256: 'b'.repeat(64) }, key: { path: '/c/server-key.pem', sha256: 'c'.repeat(64) } };
    const withTls = input(mgr, { tls, settings: { ...settings, daemon: { 'storage-driver': 'vfs' } } });
    const json = JSON.parse(daemonJson(withTls)) as Record<string, unknown>;
    expect(json).toMatchObject({ 'log-opts': { 'max-size': '10m', 'max-file': '3' }, tlsverify: true, hosts: ['unix:///var/run/docker.sock', 'tcp://0.0.0.0:2376'], 'storage-driver': 'vfs' });
    const actions = planDaemon(withTls, debian);
    expect(actions.map((a) => (a.type === 'write' ? a.path : a.type))).toEqual([`${TLS_DIR}/ca.pem`, `${TLS_DIR}/server-cert.pem`, `${TLS_DIR}/server-key.pem`, DAEMON_JSON, 'run']);
    expect(actions[2]).toEqual({ type: 'write', path: `${TLS_DIR}/server-key.pem`, mode: '0600', source: '/c/server-key.pem', sha256: 'c'.repeat(64), why: 'Docker TLS API (mp certs)' });
    expect(JSON.stringify(actions)).not.toContain('PRIVATE KEY');
    // The state the plan produced plans nothing.
    const after: Facts = { ...debian, [`sha:${TLS_DIR}/ca.pem`]: 'a'.repeat(64), [`sha:${TLS_DIR}/server-cert.pem`]: 'b'.repeat(64), [`sha:${TLS_DIR}/server-key.pem`]: 'c'.repeat(64), [`sha:${DAEMON_JSON}`]: sha256(daemonJson(withTls)) };
    expect(planDaemon(withTls, after)).toEqual([]);
    // A worker gets no TLS API.
    expect(JSON.parse(daemonJson(input(wrk)))).not.toHaveProperty('tlsverify');
  });

  it('firewall: default deny; Swarm ports and 2376 from the cluster (and api_allow) only', () => {
    const rules = nftRuleset(input(mgr));
    expect(rules).toContain('policy drop;');
    expect(rules).toContain('tcp dport { 22, 80, 443, 8080 } accept');
    expect(rules).toContain('set cluster { type ipv4_addr; flags interval; elements = { 10.0.0.2, 10.0.0.3 } }');
    expect(rules).toContain('ip saddr @cluster tcp dport { 2377, 7946 } accept');
    expect(rules).toContain('ip saddr @cluster udp dport { 7946, 4789 } accept');
    expect(rules).toContain('set api_clients { type ipv4_addr; flags interval; elements = { 10.0.0.2, 10.0.0.3, 192.0.2.1 } }');
    expect(rules).toContain('ip saddr @api_clients tcp dport 2376 accept');
    expect(rules).not.toContain('flush ruleset');
    // ICMP by number (a minimal host has no /etc/protocols); a name never reaches an address set.
    expect(rules).toContain('meta l4proto { 1, 58 } accept');
    expect(nftRuleset(input(mgr, { cluster: ['10.0.0.2', 'node-b.internal'] }))).toContain('elements = { 10.0.0.2 }');
    const actions = planFirewall(input(mgr), debian);
    expect(actions.map((a) => (a.type === 'write' ? `write ${a.path}` : a.type === 'run' ? a.command : a.type))).toEqual([
      expect.stringContaining('install -y -q --no-install-recommends nftables'),
      `write ${NFT_CONF}`,
      `nft -f ${NFT_CONF}`,
    ]);
    expect(planFirewall(input(mgr), { ...debian, pkg_nftables: 'yes', [`sha:${NFT_CONF}`]: sha256(rules), nft_table: 'yes' })).toEqual([]);
    // Loaded again when the file is right but the table is gone (a reboot without the nftables service).
    expect(planFirewall(input(mgr), { ...debian, pkg_nftables: 'yes', [`sha:${NFT_CONF}`]: sha256(rules), nft_table: 'no' })).toHaveLength(1);
  });

  it('swarm: init on the first manager, join for the others, nothing when active, refused in another swarm', () => {
    const inactive = { state: 'inactive', nodeId: '', manager: false };
    expect(planSwarm(input(mgr), { local: inactive })).toEqual([{ type: 'swarm-init', advertise: '10.0.0.2', why: expect.any(String) }]);
    const join = planSwarm(input(wrk), { local: inactive, managerClusterId: 'c1' });
    expect(join).toEqual([{ type: 'swarm-join', manager: 'mgr-1', remote: '10.0.0.2:2377', role: 'worker', advertise: '10.0.0.3', why: expect.stringContaining('at apply time') }]);
    expect(JSON.stringify(join)).not.toMatch(/SWMTKN/);
    expect(planSwarm(input(wrk), { local: { state: 'active', nodeId: 'n', clusterId: 'c1', manager: false }, managerClusterId: 'c1' })).toEqual([]);
    expect(() => planSwarm(input(wrk), { local: { state: 'active', nodeId: 'n', clusterId: 'c2', manager: false }, managerClusterId: 'c1' })).toThrow(/another swarm/);
  });

  it('labels, agent image and agent: only what differs', () => {
    expect(planLabels(input(wrk), { nodeId: 'n1', labels: {} })).toEqual([
      { type: 'node-labels', node: 'n1', labels: { zone: 'b', 'org.minipaas.host': 'wrk-1', 'org.minipaas.role': 'worker' }, why: expect.any(String) },
    ]);
    expect(planLabels(input(wrk), { nodeId: 'n1', labels: { zone: 'b', 'org.minipaas.host': 'wrk-1', 'org.minipaas.role': 'worker', other: 'kept' } })).toEqual([]);
    expect(planAgentImage(input(wrk), { localImageId: 'sha256:1' })).toHaveLength(1);
    expect(planAgentImage(input(wrk), { localImageId: 'sha256:1', remoteImageId: 'sha256:1' })).toEqual([]);
    expect(planAgent(input(mgr), { serviceUpToDate: false, agentAlive: false, hostname: 'mgr-1' }).map((a) => a.type)).toEqual(['agent-service', 'wait-agent']);
    expect(planAgent(input(wrk), { serviceUpToDate: false, agentAlive: true, hostname: 'wrk-1' })).toEqual([]);
  });

  it('facts parse from key=value lines; optional steps only when enabled', () => {
    expect(parseFacts('os=debian 12\narch=x86_64\nsha:/etc/x=abc\n')).toEqual({ os: 'debian 12', arch: 'x86_64', 'sha:/etc/x': 'abc' });
    expect(stepsFor(settings)).toEqual(['os', 'docker', 'daemon', 'firewall', 'swarm', 'labels', 'agent-image', 'agent']);
    expect(stepsFor({ ...settings, fail2ban: true, syslog: 'logs:514' })).toContain('fail2ban');
  });
});
