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
import { run as runDeploy } from '../../cli/commands/deploy/rollout.ts';
import { run as runSubmit } from '../../cli/commands/ops/submit.ts';
import { captured } from '../cli/harness.ts';
import { MiniPaasError } from '../../sql/errors.ts';
import { freshDatabase, type TestDatabase } from '../support/database.ts';
import { describeDocker } from '../support/docker.ts';
import { docker, startHostLab, type HostLab } from '../support/host-lab.ts';
import { waitFor } from '../support/wait.ts';

const exec = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..');
const BUSYBOX_IMAGE = process.env.MP_LAB_BUSYBOX_IMAGE ?? 'mp-lab/busybox:latest';
/** A node is marked down within this: heartbeats every 5 s, down after 30 s, seen at the next tick of another agent. */
const DOWN_WITHIN_MS = 45_000;

describeDocker('provisioning three bare hosts into a swarm', () => {
  const id = randomBytes(3).toString('hex');
  let lab: HostLab<'mgr' | 'w1' | 'w2' | 'out'> | undefined;
  let names: Record<'mgr' | 'w1' | 'w2' | 'out', string>;
  let ip: Record<'mgr' | 'w1' | 'w2' | 'out', string>;
  let gateway = '';
  let db: TestDatabase;
  let forwarder: NetServer | undefined;
  let receiver: Server | undefined;
  const alerts: { text: string; node: string; condition: string }[] = [];
  let agent: RunningAgent | undefined;
  let envDir = '';
  let appDir = '';
  const stack = `lab${id}`;
  const timings: Record<string, number> = {};


  /** The lab manager's engine through its TLS API, with the client certificate `mp certs` made. */
  const managerDocker = (...args: string[]): Promise<string> => {
    const certs = join(envDir, '.certs');
    return docker('--tlsverify', `--tlscacert=${certs}/ca.pem`, `--tlscert=${certs}/cert.pem`, `--tlskey=${certs}/key.pem`, '-H', `tcp://${ip.mgr}:2376`, ...args);
  };

  /** The app environment: busybox tasks that only start when the Compose file secret (sealed to the cluster key) is mounted. */
  const writeApp = (round: number): void => {
    writeFileSync(
      join(appDir, 'minipaas.yaml'),
      ['project: {files: [compose.yaml]}', `stack: ${stack}`, `api: {host: "tcp://${ip.mgr}:2376", tls: true}`, 'deploy: {timeout: 150, stable: 1}', ''].join('\n'),
    );
    writeFileSync(join(appDir, 'token.txt'), `lab token ${id}\n`);
    writeFileSync(
      join(appDir, 'compose.yaml'),
      `services:
  web:
    image: ${BUSYBOX_IMAGE}
    command: ["sh", "-c", "test -s /run/secrets/token && exec sleep 86400"]
    environment:
      ROUND: "${round}"
    secrets: [token]
    deploy:
      replicas: 3
secrets:
  token:
    file: ./token.txt
`,
    );
  };

  /** The nodes with a running task of the app's service. */
  const taskNodes = async (): Promise<string[]> => {
    const out = await managerDocker('service', 'ps', `${stack}_web`, '--filter', 'desired-state=running', '--format', '{{.Node}} {{.CurrentState}}');
    return [...new Set(out.split('\n').filter((l) => / Running /.test(` ${l} `)).map((l) => l.split(' ')[0]!))].sort();
  };

  beforeAll(async () => {
    await exec(join(ROOT, 'images/agent/build.sh'), [], { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 });
    lab = await startHostLab('lab', ['mgr', 'w1', 'w2', 'out'] as const, { cacheVolume: 'mp-lab-apt-cache' });
    ({ names, ip, gateway } = lab);
    db = await freshDatabase();
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

    envDir = mkdtempSync(join(tmpdir(), 'mp-lab-env-'));
    const host = (name: string, address: string, role: string): string => `  - {name: ${name}, address: ${address}, role: ${role}, ssh_key: ${lab!.keyFile}}`;
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
        `  known_hosts: ${lab.knownHosts}`,
        'monitoring:',
        `  webhook: http://${gateway}:${hookPort}/hook`,
        '',
      ].join('\n'),
    );
    await runCerts(captured(undefined), { what: 'all', out: join(envDir, '.certs'), env: envDir, host: [], inventory: undefined });
    // Its own engine is this machine's, not the lab's: it must not claim the lab's deploys (manager operations).
    agent = await startAgent({ pool: db.pool, docker: connectDocker(), name: `mpt-prov-${id}`, provisioner: true, manager: false, heartbeatMs: 2_000 });
  }, 600_000);

  afterAll(async () => {
    // Stated in the closing report.
    console.log(`lab timings: ${JSON.stringify(timings)}`);
    await agent?.stop();
    await lab?.stop();
    await new Promise((r) => (forwarder ? forwarder.close(r) : r(undefined)));
    await new Promise((r) => (receiver ? receiver.close(r) : r(undefined)));
    delete process.env.MP_AGENTS_DATABASE_URL;
    await db?.drop();
  }, 300_000);

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

  it('a host that cannot be reached fails alone, in one line naming it and the step; the other hosts carry on', async () => {
    const file = join(envDir, 'minipaas.yaml');
    const good = readFileSync(file, 'utf8');
    // w1's address on a port its firewall drops (so SSH times out), and no new address in the firewalls.
    writeFileSync(file, good.replace('provision:\n', `  - {name: bad, address: ${ip.w1}, port: 2, role: worker, ssh_key: ${lab!.keyFile}}\nprovision:\n`));
    const before = Number((await db.pool.query<{ id: string }>(`select coalesce(max(id), 0) as id from mp.operations`)).rows[0]!.id);
    const ctx = captured(db.url);
    let err: unknown;
    try {
      err = await runProvision(ctx, { env: envDir, acceptNewHostKeys: false, dryRun: false, detach: false, timeout: 600 }).catch((e: unknown) => e);
    } finally {
      writeFileSync(file, good);
      await ctx.close();
    }
    expect(err).toBeInstanceOf(MiniPaasError);
    expect((err as MiniPaasError).message).toMatch(new RegExp(`^host bad, step os: host bad \\(root@${ip.w1!.replace(/\./g, '\\.')}:2\\): cannot connect over SSH: Timed out while waiting for handshake$`));
    expect((err as MiniPaasError).message.split('\n')).toHaveLength(1);
    expect((err as MiniPaasError).hint).toMatch(/^the other hosts carried on/);
    expect(ctx.out()).toMatch(/provisioned 3 of 4 hosts in \d+ s: 1 failed/);
    const hosts = await db.pool.query<{ host: string; status: string }>(
      `select payload -> 'host' ->> 'name' as host, status from mp.operations where kind = 'provision.host' and id > $1 order by host`,
      [before],
    );
    expect(hosts.rows).toEqual(
      [
        { host: 'bad', status: 'failed' },
        ...[names.mgr, names.w1, names.w2].map((host) => ({ host, status: 'succeeded' })),
      ].sort((a, b) => a.host.localeCompare(b.host)),
    );
  }, 700_000);

  it("the manager's TLS API takes the client certificate and refuses without; the firewall refuses 2377 and 2376 from outside the cluster", async () => {
    const certs = join(envDir, '.certs');
    const tls = ['--tlsverify', `--tlscacert=${certs}/ca.pem`, `--tlscert=${certs}/cert.pem`, `--tlskey=${certs}/key.pem`, '-H', `tcp://${ip.mgr}:2376`];
    expect(await docker(...tls, 'info', '-f', '{{.Swarm.LocalNodeState}}')).toBe('active');
    await expect(docker('--tlsverify', `--tlscacert=${certs}/ca.pem`, '-H', `tcp://${ip.mgr}:2376`, 'info')).rejects.toThrow();
    for (const port of [2377, 2376]) expect(await lab!.probe('out', ip.mgr, port), `port ${port} from outside the cluster`).toBe('closed');
    // SSH is open to everyone.
    expect(await lab!.probe('out', ip.mgr, 22)).toBe('open');
  }, 60_000);

  it('an app deployed with mp deploy runs on all three nodes; its file secret is opened by the manager agent with the cluster key', async () => {
    // The provisioner gave the manager agents the cluster key (a Docker secret) and registered its public half.
    expect((await db.pool.query(`select 1 from mp.cluster_keys where retired_at is null`)).rowCount).toBe(1);
    expect(await managerDocker('secret', 'ls', '--format', '{{.Name}}')).toMatch(/^mp_cluster_key_[0-9a-f]{12}$/m);
    // Only the manager's agent has the private key: no container on a worker can read it.
    const keyIn = (role: 'mgr' | 'w1' | 'w2') =>
      exec('docker', ['exec', names[role], 'sh', '-c', 'for c in $(docker ps -q); do docker exec "$c" cat /run/secrets/mp_cluster_key 2>/dev/null; done; true']).then((r) => r.stdout);
    expect(await keyIn('mgr')).toMatch(/\S/);
    for (const role of ['w1', 'w2'] as const) expect(await keyIn(role), `the cluster key on ${role}`).toBe('');
    // Images reach the inner engines as LAB.md says: docker save | docker load (no registry in the lab).
    for (const role of ['mgr', 'w1', 'w2']) {
      await exec('bash', ['-c', `docker save ${BUSYBOX_IMAGE} | docker exec -i ${names[role as 'mgr']} docker load -q`]);
    }
    appDir = mkdtempSync(join(tmpdir(), 'mp-lab-app-'));
    writeApp(1);
    const ctx = captured(db.url);
    const t0 = Date.now();
    try {
      await runDeploy(ctx, { env: appDir, dryRun: false, detach: false });
    } finally {
      console.log(ctx.out());
      await ctx.close();
    }
    timings.deploy_s = Math.round((Date.now() - t0) / 1000);
    expect(ctx.out()).toMatch(/operation \d+ deploy succeeded/);
    // Claimed by the lab manager's agent, not by this machine's provisioner.
    const claimed = await db.pool.query<{ node: string }>(`select node from mp.operations where kind = 'deploy' order by id desc limit 1`);
    expect(claimed.rows[0]!.node).toBe(names.mgr);
    // Swarm spreads a service's replicas over the nodes with the fewest of its tasks: one per node.
    expect(await waitFor('a running task on every node', async () => ((await taskNodes()).length === 3 ? await taskNodes() : undefined), { timeoutMs: 60_000, intervalMs: 1000 })).toEqual(
      [names.mgr, names.w1, names.w2].sort(),
    );
  }, 400_000);

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

  it('operations aimed at the stopped worker fail with a clear message; the rest of the cluster keeps deploying', async () => {
    // Followed: refused at once, nothing queued.
    const refused = captured(db.url);
    const err = await runSubmit(refused, { kind: 'docker.info', target: `node:${names.w2}`, detach: false, dryRun: false }).catch((e: unknown) => e);
    await refused.close();
    expect(String(err)).toMatch(new RegExp(`the agent of node "${names.w2}" has not sent a heartbeat`));
    // Queued anyway (--detach): failed at the next heartbeat of another agent, naming the node.
    const detached = captured(db.url);
    await runSubmit(detached, { kind: 'docker.info', target: `node:${names.w2}`, detach: true, dryRun: false });
    await detached.close();
    const opId = /\d+/.exec(detached.out())![0];
    const failed = await waitFor(
      `operation ${opId} failed`,
      async () => (await db.pool.query<{ status: string; error: string }>(`select status, error from mp.operations where id = $1 and status = 'failed'`, [opId])).rows[0],
      { timeoutMs: 30_000, intervalMs: 500 },
    );
    expect(failed.error).toMatch(new RegExp(`^node ${names.w2} is down since .*; the operation was not run there$`));

    // Swarm moved the stopped worker's task to the live nodes; a rolling update now runs on those alone.
    writeApp(2);
    const ctx = captured(db.url);
    try {
      await runDeploy(ctx, { env: appDir, dryRun: false, detach: false });
    } finally {
      console.log(ctx.out());
      await ctx.close();
    }
    expect(ctx.out()).toMatch(/operation \d+ deploy succeeded/);
    expect(await waitFor('running tasks on the two live nodes', async () => {
      const nodes = await taskNodes();
      return nodes.length === 2 ? nodes : undefined;
    }, { timeoutMs: 60_000, intervalMs: 1000 })).toEqual([names.mgr, names.w1].sort());
  }, 400_000);
});
