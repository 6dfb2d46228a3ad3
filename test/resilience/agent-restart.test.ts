// A node agent as a real process (a bare pg.Pool) with an operation in flight while its private
// PostgreSQL restarts, once fast and once immediate: the agent stays up, and each operation ends exactly
// once, on its first attempt, after the restart.
import { rm, writeFile, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Kysely } from 'kysely';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { controlDb, getOperation, operationEvents, submitOperation, type Database } from '../../sql/control/database.ts';
import { startPrivatePostgres, type PrivatePostgres } from '../support/private-postgres.ts';
import { spawnScript, type ScriptProcess } from '../support/processes.ts';
import { waitFor } from '../support/wait.ts';

const AGENT = 'test/resilience/fixtures/agent.ts';
const TERMINAL = ['succeeded', 'failed', 'cancelled'];

let db: PrivatePostgres;
/** On the test's pool, which `db.stop()` ends. */
let kdb: Kysely<Database>;
let dir: string;
let agent: ScriptProcess | undefined;

beforeAll(async () => {
  db = await startPrivatePostgres();
  kdb = controlDb(db.pool);
  dir = await mkdtemp(join(tmpdir(), 'mp-resilience-'));
  await db.pool.query(`select mp.environment_create('e')`);
});

afterAll(async () => {
  await agent?.kill();
  await db?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

it('an operation in flight across a fast and an immediate restart ends once, on its first attempt', async () => {
  const gate = join(dir, 'gate');
  agent = spawnScript('agent', AGENT, { DATABASE_URL: db.url, AGENT_NAME: 'resilient', GATE_FILE: gate });
  await agent.waitForOutput('ready');
  const ended: string[] = [];
  for (const mode of ['fast', 'immediate'] as const) {
    await rm(gate, { force: true });
    const id = await submitOperation(kdb, { kind: 'docker.info', environment: 'e', payload: {} });
    // In flight: started, and its executor waits for the gate.
    await waitFor(
      `operation ${id} to start`,
      async () => (await operationEvents(kdb, id)).some((e) => e.step === 'started'),
      { timeoutMs: 20_000, intervalMs: 50 },
    );
    await db.server.restart(mode, { downForMs: 1_000 });
    await writeFile(gate, '');
    const op = await waitFor(
      `operation ${id} to end after the ${mode} restart`,
      async () => {
        const o = await getOperation(kdb, id);
        return o && TERMINAL.includes(o.status) ? o : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    const events = await operationEvents(kdb, id);
    expect(op.status, `${mode}: ${op.error ?? ''}`).toBe('succeeded');
    expect(op.attempts).toBe(1);
    expect(events.filter((e) => e.step === 'started')).toHaveLength(1);
    expect(events.filter((e) => TERMINAL.includes(e.step))).toHaveLength(1);
    ended.push(`${mode}: ${op.status} after ${op.attempts} attempt`);
  }
  // Heartbeats got through again after the restarts.
  await waitFor(
    'the node to be alive',
    async () => (await db.pool.query(`select 1 from mp.nodes_v where name = 'resilient' and alive`)).rowCount === 1,
    { timeoutMs: 10_000, intervalMs: 100 },
  );
  const warnings = agent.stderr().split('\n').filter((l) => l.startsWith('warn:')).length;
  console.log(`agent restart test: restarts 2 with an operation in flight; ${ended.join(', ')}; ${warnings} warnings logged; agent exited on its own: no`);
  expect(agent.exit(), `the agent exited on its own; stderr: ${agent.stderr()}`).toBeUndefined();
  expect(await agent.terminate(20_000)).toEqual({ code: 0, signal: null });
});
