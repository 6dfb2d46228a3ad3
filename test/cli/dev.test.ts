// `mp dev` with no DATABASE_URL: an embedded PostgreSQL in a temporary data folder (never the repo's .mp/),
// migrated, an agent on the local Docker engine, one docker.info run at start-up; psql on the printed URL
// sees it; SIGTERM stops everything and leaves no server behind; a second start reuses the data.
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerAvailable } from '../support/docker.ts';
import { freePort } from '../../dev/temporary-postgres.ts';
import { waitFor } from '../support/wait.ts';
import { lines, spawnMp, type RunningMp } from './harness.ts';

/** Processes whose command line mentions `text` (a data folder): what must be gone after a stop. */
function processesMentioning(text: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmd.includes(text)) found.push(`${pid}: ${cmd}`);
    } catch {
      // the process ended while we looked
    }
  }
  return found;
}

function psql(url: string, query: string): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile('/usr/bin/psql', [url, '-XAt', '-F', ' ', '-c', query], { timeout: 20_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${err.message}: ${stderr}`)) : resolve(stdout),
    ),
  );
}

describe('mp dev (the real binary, no DATABASE_URL)', () => {
  let dir: string;
  let dev: RunningMp | undefined;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mp-dev-test-'));
    // As root the server runs as the postgres OS user, which must be able to enter the folder.
    await chmod(dir, 0o755);
  });
  afterAll(async () => {
    if (dev && dev.child.exitCode === null) {
      dev.child.kill('SIGTERM');
      await dev.exited;
    }
    await rm(dir, { recursive: true, force: true });
  });

  async function start(port: number): Promise<RunningMp> {
    // The example app has its own test (test/deploy/example.test.ts).
    dev = spawnMp(['dev', '--data-dir', join(dir, 'data'), '--port', String(port), '--name', 'dev-test', '--no-example'], {
      env: { DATABASE_URL: undefined },
      cwd: dir,
    });
    const running = dev;
    await waitFor(
      'mp dev to come up',
      () => {
        if (running.child.exitCode !== null) throw new Error(`mp dev exited ${running.child.exitCode}: ${running.err()}`);
        return running.out().includes('running; Ctrl-C stops');
      },
      { timeoutMs: 90_000, intervalMs: 200 },
    );
    return running;
  }

  async function stop(running: RunningMp): Promise<void> {
    running.child.kill('SIGTERM');
    expect(await running.exited).toBe(0);
    expect(lines(running.out()).at(-1)).toBe('mp dev stopped');
    expect(processesMentioning(join(dir, 'data'))).toEqual([]);
  }

  it('comes up, prints the psql URL, runs docker.info; psql sees it; SIGTERM stops it all cleanly', async () => {
    const port = await freePort();
    const first = await start(port);
    const out = first.out();
    expect(out).toMatch(new RegExp(`^PostgreSQL started on 127\\.0\\.0\\.1:${port}, data in \\S+ \\(initialised now\\)\n`));
    expect(out).toMatch(/\napplied control\/0001_control\.sql\n/);
    const url = out.match(/\n {2}psql (postgres:\/\/\S+)\n/)![1]!;
    expect(url).toBe(`postgres://postgres:postgres@127.0.0.1:${port}/minipaas`);
    expect(out).toContain(`  DATABASE_URL=${url} npx mp ops submit docker.info --env dev\n`);

    const docker = await dockerAvailable();
    const ops = await psql(url, 'select id, kind, status from mp.operations_v order by id');
    expect(ops).toBe(`1 docker.info ${docker.engine ? 'succeeded' : 'failed'}\n`);
    if (docker.engine) {
      expect(out).toMatch(/\noperation 1 docker\.info succeeded in \d+\.\d s\nresult: \{/);
    } else {
      expect(first.err()).toMatch(/^warning: no Docker engine answers at /m);
    }
    expect(await psql(url, `select name, alive from mp.nodes_v`)).toBe('dev-test t\n');

    await stop(first);
  });

  it('a data folder the postgres OS user cannot reach is one clear line (when run as root)', async () => {
    if (process.getuid?.() !== 0) return;
    const closed = await mkdtemp(join(tmpdir(), 'mp-dev-closed-'));
    try {
      const r = spawnMp(['dev', '--data-dir', join(closed, 'data'), '--port', String(await freePort())], { env: { DATABASE_URL: undefined } });
      expect(await r.exited).toBe(4);
      expect(lines(r.err())).toEqual([
        `error: the postgres OS user cannot reach ${join(closed, 'data')}: ${closed} is not searchable by others`,
        expect.stringMatching(/^hint: pass --data-dir under a folder it can reach/),
      ]);
    } finally {
      await rm(closed, { recursive: true, force: true });
    }
  });

  it('a second mp dev reuses the data folder: nothing to initialise or migrate, the earlier operation is still there', async () => {
    const port = await freePort();
    const second = await start(port);
    expect(second.out()).toMatch(/^PostgreSQL started on 127\.0\.0\.1:\d+, data in \S+ \(kept from an earlier run\)\n/);
    expect(second.out()).not.toMatch(/\napplied /);
    const url = `postgres://postgres:postgres@127.0.0.1:${port}/minipaas`;
    expect(await psql(url, `select id, kind from mp.operations_v order by id`)).toBe('1 docker.info\n2 docker.info\n');
    await stop(second);
  });
});
