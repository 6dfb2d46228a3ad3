/**
 * The three-host lab: bare Debian 12 hosts (images/host, sshd only) on a private bridge network, turned
 * by `mp provision` into one manager and two workers, with nothing but MiniPaaS touching them (no test
 * step installs Docker or calls `docker swarm`). A fourth host outside the cluster checks the firewall.
 * The hosts are containers with the capabilities LAB.md lists (not --privileged); their engines use the
 * vfs storage driver, set through minipaas.yaml `provision.daemon`, the same knob a user has.
 *
 * Traffic stays on this machine: loopback, the lab's bridge network (the test's PostgreSQL forwarder
 * and webhook receiver listen on its gateway address, which the agents inside the hosts reach), and
 * Debian's mirror through the lab's apt-cacher-ng.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { connect, createServer, type Server as NetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startAgent, type RunningAgent } from '../../agent/agent.ts';
import { connectDocker } from '../../agent/docker/engine.ts';
import { run as runCerts } from '../../cli/commands/certs.ts';
import { run as runProvision } from '../../cli/commands/provision.ts';
import { captured } from '../cli/harness.ts';
import { freshDatabase, type TestDatabase } from '../support/database.ts';
import { describeDocker } from '../support/docker.ts';
import { waitFor } from '../support/wait.ts';

const exec = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..');
const HOST_IMAGE = process.env.MP_LAB_HOST_IMAGE ?? 'mp-lab/host:bookworm';
const CACHER_IMAGE = process.env.MP_LAB_APT_CACHER_IMAGE ?? 'mp-lab/apt-cacher:bookworm';
const CAPS = [
  'SYS_ADMIN', 'NET_ADMIN', 'SYS_MODULE', 'SYS_PTRACE', 'SYS_RAWIO', 'SYS_TIME', 'SYS_NICE', 'MKNOD', 'NET_RAW', 'IPC_LOCK', 'IPC_OWNER',
  'SYS_CHROOT', 'DAC_READ_SEARCH', 'LINUX_IMMUTABLE', 'NET_BROADCAST', 'SYS_BOOT', 'SYS_PACCT', 'SYS_TTY_CONFIG', 'LEASE', 'AUDIT_CONTROL',
  'MAC_ADMIN', 'MAC_OVERRIDE', 'SYSLOG', 'WAKE_ALARM', 'BLOCK_SUSPEND', 'AUDIT_READ',
];
/** A node is marked down within this: heartbeats every 5 s, down after 30 s, seen at the next tick of another agent. */
const DOWN_WITHIN_MS = 45_000;

async function docker(...args: string[]): Promise<string> {
  return (await exec('docker', args, { maxBuffer: 64 * 1024 * 1024 })).stdout.trim();
}

describeDocker('provisioning three bare hosts into a swarm', () => {
  const id = randomBytes(3).toString('hex');
  const net = `mpt-lab-${id}`;
  const names = { mgr: `mpt-mgr-${id}`, w1: `mpt-w1-${id}`, w2: `mpt-w2-${id}`, out: `mpt-out-${id}`, cacher: `mpt-apt-${id}` };
  const containers: string[] = [];
  const ip: Record<string, string> = {};
  let gateway = '';
  let db: TestDatabase;
  let forwarder: NetServer | undefined;
  let receiver: Server | undefined;
  const alerts: { text: string; node: string; condition: string }[] = [];
  let agent: RunningAgent | undefined;
  let envDir = '';
  const timings: Record<string, number> = {};

  beforeAll(async () => {
    await exec(join(ROOT, 'images/host/build.sh'), [], { cwd: ROOT });
    await exec(join(ROOT, 'images/agent/build.sh'), [], { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 });
    db = await freshDatabase();
    await docker('network', 'create', '--label', 'org.minipaas.test=1', net);
    gateway = await docker('network', 'inspect', '-f', '{{(index .IPAM.Config 0).Gateway}}', net);
    // PostgreSQL for the agents inside the hosts: a forwarder on the lab network's gateway address.
    const pgPort = Number(new URL(db.url).port || 5432);
    forwarder = createServer((c) => {
      const up = connect(pgPort, '127.0.0.1');
      c.pipe(up).pipe(c);
      c.on('error', () => up.destroy());
      up.on('error', () => c.destroy());
    });
    await new Promise<void>((r) => forwarder!.listen(0, gateway, r));
    const fwdPort = (forwarder.address() as { port: number }).port;
    const agentsUrl = new URL(db.url);
    agentsUrl.hostname = gateway;
    agentsUrl.port = String(fwdPort);
    process.env.MP_AGENTS_DATABASE_URL = agentsUrl.toString();
    // The webhook receiver, on the gateway address too.
    receiver = createHttpServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        alerts.push(JSON.parse(body) as (typeof alerts)[number]);
        res.end('ok');
      });
    });
    await new Promise<void>((r) => receiver!.listen(0, gateway, r));
    const hookPort = (receiver.address() as { port: number }).port;

    const keyDir = mkdtempSync(join(tmpdir(), 'mp-lab-ssh-'));
    await exec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(keyDir, 'id'), '-C', 'mp-lab']);
    const pub = readFileSync(join(keyDir, 'id.pub'), 'utf8').trim();

    await docker('volume', 'create', 'mp-lab-apt-cache');
    containers.push(names.cacher);
    await docker('run', '-d', '--name', names.cacher, '--label', 'org.minipaas.test=1', '--network', net, '-v', 'mp-lab-apt-cache:/var/cache/apt-cacher-ng', CACHER_IMAGE);
    const cacherIp = await docker('inspect', '-f', `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`, names.cacher);
    for (const [role, name] of Object.entries(names)) {
      if (role === 'cacher') continue;
      containers.push(name);
      await docker(
        'run', '-d', '--name', name, '--hostname', name, '--label', 'org.minipaas.test=1', '--network', net,
        ...CAPS.flatMap((c) => ['--cap-add', c]),
        '--security-opt', 'seccomp=unconfined', '--security-opt', 'apparmor=unconfined', '--security-opt', 'systempaths=unconfined',
        '--cgroupns=host', '-v', '/sys/fs/cgroup:/sys/fs/cgroup',
        '-e', `AUTHORIZED_KEY=${pub}`, '-e', `APT_PROXY=http://${cacherIp}:3142`,
        HOST_IMAGE,
      );
      ip[role] = await docker('inspect', '-f', `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`, name);
    }
    for (const role of ['mgr', 'w1', 'w2', 'out']) {
      await waitFor(`sshd on ${role}`, () => new Promise<boolean>((resolve) => {
        const s = connect(22, ip[role]!);
        s.once('data', () => (s.destroy(), resolve(true)));
        s.once('error', () => resolve(false));
      }), { timeoutMs: 30_000, intervalMs: 250 });
    }
    envDir = mkdtempSync(join(tmpdir(), 'mp-lab-env-'));
    const host = (name: string, address: string, role: string): string => `  - {name: ${name}, address: ${address}, role: ${role}, ssh_key: ${join(keyDir, 'id')}}`;
    writeFileSync(
      join(envDir, 'minipaas.yaml'),
      [
        'project: {files: [compose.yaml]}',
        `api: {host: "tcp://${ip.mgr}:2376", tls: true}`,
        'hosts:',
        host(names.mgr, ip.mgr!, 'manager'),
        host(names.w1, ip.w1!, 'worker'),
        host(names.w2, ip.w2!, 'worker'),
        'provision:',
        // The lab's engines run inside containers: vfs is the storage driver that works there (LAB.md).
        '  daemon: {storage-driver: vfs}',
        `  api_allow: [${gateway}]`,
        `  known_hosts: ${join(keyDir, 'known_hosts')}`,
        'monitoring:',
        `  webhook: http://${gateway}:${hookPort}/hook`,
        '',
      ].join('\n'),
    );
    await runCerts(captured(undefined), { what: 'all', out: join(envDir, '.certs'), env: envDir, host: [], inventory: undefined });
    agent = await startAgent({ pool: db.pool, docker: connectDocker(), name: `mpt-prov-${id}`, provisioner: true, heartbeatMs: 2_000 });
  }, 600_000);

  afterAll(async () => {
    await agent?.stop();
    for (const c of containers) await docker('rm', '-f', '-v', c).catch(() => '');
    await docker('network', 'rm', net).catch(() => '');
    await new Promise((r) => (forwarder ? forwarder.close(r) : r(undefined)));
    await new Promise((r) => (receiver ? receiver.close(r) : r(undefined)));
    delete process.env.MP_AGENTS_DATABASE_URL;
    await db?.drop();
    // Stated in the closing report.
    console.log(`lab timings: ${JSON.stringify(timings)}`);
  }, 120_000);

  it('provisions 1 manager and 2 workers from bare hosts; three live agents with metrics', async () => {
    const ctx = captured(db.url);
    const t0 = Date.now();
    try {
      await runProvision(ctx, { env: envDir, acceptNewHostKeys: true, dryRun: false, detach: false, timeout: 1200 });
    } finally {
      console.log(ctx.out());
      await ctx.close();
    }
    timings.first_run_s = Math.round((Date.now() - t0) / 1000);
    const nodes = await waitFor(
      'three live agents with metrics',
      async () => {
        const rows = (await db.pool.query<{ name: string; alive: boolean; docker: string; cpus: number }>(`select * from mp.nodes_metrics_v where name like 'mpt-%' and name not like 'mpt-prov-%'`)).rows;
        return rows.filter((r) => r.alive && r.docker === 'running' && r.cpus > 0).length === 3 ? rows : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 1000 },
    );
    expect(nodes.map((n) => n.name).sort()).toEqual([names.mgr, names.w1, names.w2].sort());
  }, 1_300_000);

  it('a second mp provision reports every step unchanged', async () => {
    const ctx = captured(db.url);
    const t0 = Date.now();
    try {
      await runProvision(ctx, { env: envDir, acceptNewHostKeys: false, dryRun: false, detach: false, timeout: 600 });
    } finally {
      await ctx.close();
    }
    timings.second_run_s = Math.round((Date.now() - t0) / 1000);
    expect(ctx.out()).toContain('all unchanged');
    const changed = await db.pool.query(`select host, step, detail from mp.provisioning_v where operation > (select max(id) - 3 from mp.operations where kind = 'provision.host') and outcome <> 'unchanged'`);
    expect(changed.rows).toEqual([]);
  }, 700_000);

  it("the manager's TLS API takes the client certificate and refuses without; the firewall refuses 2377 and 2376 from outside the cluster", async () => {
    const certs = join(envDir, '.certs');
    const tls = ['--tlsverify', `--tlscacert=${certs}/ca.pem`, `--tlscert=${certs}/cert.pem`, `--tlskey=${certs}/key.pem`, '-H', `tcp://${ip.mgr}:2376`];
    expect(await docker(...tls, 'info', '-f', '{{.Swarm.LocalNodeState}}')).toBe('active');
    await expect(docker('--tlsverify', `--tlscacert=${certs}/ca.pem`, '-H', `tcp://${ip.mgr}:2376`, 'info')).rejects.toThrow();
    for (const port of [2377, 2376]) {
      const r = await exec('docker', ['exec', names.out, 'bash', '-c', `timeout 3 bash -c '</dev/tcp/${ip.mgr}/${port}' && echo open || echo closed`]);
      expect(r.stdout.trim(), `port ${port} from outside the cluster`).toBe('closed');
    }
    // SSH is open to everyone.
    const ssh = await exec('docker', ['exec', names.out, 'bash', '-c', `timeout 3 bash -c '</dev/tcp/${ip.mgr}/22' && echo open || echo closed`]);
    expect(ssh.stdout.trim()).toBe('open');
  }, 60_000);

  it('a stopped worker is marked down within the stated time and an alert is posted', async () => {
    const t0 = Date.now();
    await docker('stop', '-t', '1', names.w2);
    await waitFor(
      `incident 'down' for ${names.w2}`,
      async () => (await db.pool.query(`select 1 from mp.incidents where node = $1 and condition = 'down' and closed_at is null`, [names.w2])).rowCount === 1,
      { timeoutMs: DOWN_WITHIN_MS, intervalMs: 500 },
    );
    timings.down_detected_s = Math.round((Date.now() - t0) / 1000);
    await waitFor('the alert at the webhook', () => alerts.find((a) => a.node === names.w2 && a.condition === 'down'), { timeoutMs: 30_000, intervalMs: 250 });
  }, 120_000);
});
