// `mp dev` where no Docker engine answers (DOCKER_HOST names a socket nobody listens on), against the test
// database: it still starts, says which operations cannot run and how they fail, a submitted docker.info
// fails with that same "no Docker engine on node ..." reason, a manager kind is refused for want of a
// manager agent, and SIGTERM stops it cleanly. Needs no Docker, so it runs everywhere.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { executors, knownKinds } from '../../agent/executors/index.ts';
import { freshDatabase, type TestDatabase } from '../support/database.ts';
import { waitFor } from '../support/wait.ts';
import { lines, mp, spawnMp, type RunningMp } from './harness.ts';

const NODE = 'dev-no-docker';
const SOCKET = `/tmp/mp-no-docker-${randomBytes(4).toString('hex')}.sock`;

describe('mp dev without a Docker engine', () => {
  let db: TestDatabase;
  let dev: RunningMp | undefined;
  beforeAll(async () => {
    db = await freshDatabase();
  });
  afterAll(async () => {
    if (dev && dev.child.exitCode === null) {
      dev.child.kill('SIGTERM');
      await dev.exited;
    }
    await db?.drop();
  });

  it('starts, names the operations that cannot run, fails a docker.info with that reason, stops on SIGTERM', async () => {
    dev = spawnMp(['dev', '--name', NODE], { env: { DATABASE_URL: db.url, DOCKER_HOST: `unix://${SOCKET}` } });
    const running = dev;
    await waitFor(
      'mp dev to come up',
      () => {
        if (running.child.exitCode !== null) throw new Error(`mp dev exited ${running.child.exitCode}: ${running.err()}`);
        return running.out().includes('running; Ctrl-C stops');
      },
      { timeoutMs: 60_000, intervalMs: 100 },
    );

    // Startup: the agent registers for its own node and as the provisioner (no Docker, so no manager), and one stdout line
    // names every kind and how it fails; the probe's warning on stderr names the endpoint it tried.
    const out = lines(running.out());
    expect(out[0]).toBe('using the PostgreSQL named by DATABASE_URL (or --database-url)');
    expect(out).toContain(`agent ${NODE} registered; claims node:${NODE}, provisioner (no Docker engine)`);
    const manager = knownKinds().filter((k) => executors.get(k)!.target === 'manager');
    const others = knownKinds().filter((k) => !manager.includes(k));
    expect(others).toContain('docker.info');
    expect(manager).toContain('service.scale');
    const noDocker = `no Docker engine on node ${NODE}`;
    expect(out).toContain(
      `${noDocker}, so no operation can run here: ${others.join(', ')} fail${others.length === 1 ? 's' : ''} at once; ` +
        `${manager.join(', ')} need${manager.length === 1 ? 's' : ''} a manager agent (start dockerd or set DOCKER_HOST, then restart)`,
    );
    expect(running.err()).toMatch(
      new RegExp(`^warning: no Docker engine answers at ${SOCKET.replace(/\./g, '\\.')} .*operations that need Docker cannot run on this agent: ${knownKinds().join(', ')};`, 'm'),
    );
    // The first docker.info mp dev runs by itself fails with that reason, as a warning (mp dev keeps running).
    expect(running.err()).toMatch(new RegExp(`^warning: operation 1 failed: ${noDocker}: start dockerd or set DOCKER_HOST`, 'm'));

    // A docker.info submitted to this node fails with the same reason, and the CLI exits 8 saying so.
    const info = await mp(['ops', 'submit', 'docker.info', '--env', 'dev', '--target', `node:${NODE}`], db.url);
    expect(info.code).toBe(8);
    expect(info.stdout).toMatch(new RegExp(`\\bfailed +error: ${noDocker}: `));
    expect(lines(info.stderr)[0]).toBe(`error: operation 2 failed: ${noDocker}: start dockerd or set DOCKER_HOST, then \`mp ops retry 2\``);
    const { rows } = await db.pool.query<{ status: string; node: string; error: string }>(
      `select status, node, error from mp.operations where id = 2`,
    );
    expect(rows).toEqual([{ status: 'failed', node: NODE, error: expect.stringContaining(noDocker) }]);

    // A manager kind has no agent to run it here: refused before anything is written.
    const scale = await mp(['ops', 'submit', 'service.scale', '--env', 'dev', '--payload', '{"service": "web", "replicas": 2}'], db.url);
    expect(scale.code).not.toBe(0);
    expect(scale.stderr).toMatch(/^error: no manager agent /m);
    expect((await db.pool.query(`select 1 from mp.operations where kind = 'service.scale'`)).rowCount).toBe(0);

    running.child.kill('SIGTERM');
    expect(await running.exited).toBe(0);
    expect(lines(running.out()).at(-1)).toBe('mp dev stopped');
    const node = await db.pool.query<{ alive: boolean; running_ops: string }>(`select alive, running_ops from mp.nodes_v where name = $1`, [NODE]);
    expect(node.rows).toEqual([{ alive: false, running_ops: '0' }]);
  });
});
