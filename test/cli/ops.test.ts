// `mp ops`: bad input is refused before anything is written; operations submitted through the real
// binary are executed by a real agent against the real Docker engine + Swarm, and the exit code says how
// they ended.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { startAgent, type RunningAgent } from '../../agent/agent.ts';
import { connectDocker } from '../../agent/docker/engine.ts';
import * as kinds from '../../cli/commands/ops/kinds.ts';
import * as ls from '../../cli/commands/ops/ls.ts';
import * as retry from '../../cli/commands/ops/retry.ts';
import * as show from '../../cli/commands/ops/show.ts';
import * as submit from '../../cli/commands/ops/submit.ts';
import { InvalidPayloadError, OperationFailedError, StoppedFollowingError } from '../../cli/errors.ts';
import { controlDb, getOperation, submitOperation } from '../../sql/control/database.ts';
import { NotFoundError } from '../../sql/errors.ts';
import { freshDatabase, type TestDatabase } from '../support/database.ts';
import { describeSwarm, uniqueName } from '../support/docker.ts';
import { waitFor } from '../support/wait.ts';
import { captured, lines, mp, spawnMp, type CapturedContext } from './harness.ts';

let db: TestDatabase;
const contexts: CapturedContext[] = [];

beforeAll(async () => {
  db = await freshDatabase({ poolSize: 6 });
  await db.pool.query(`select mp.environment_create('prod'), mp.environment_create('staging')`);
});
afterAll(async () => {
  await Promise.all(contexts.map((c) => c.close()));
  await db.drop();
});

function ctx(opts: { json?: boolean; signal?: AbortSignal } = {}): CapturedContext {
  const c = captured(db.url, opts);
  contexts.push(c);
  return c;
}

/** What submitting writes: operation rows, jobs, events. Asserted unchanged after every refusal. */
async function written(): Promise<{ ops: number; jobs: number; events: number }> {
  const { rows } = await db.pool.query<{ ops: number; jobs: number; events: number }>(
    `select (select count(*)::int from mp.operations) as ops, (select count(*)::int from mp.jobs) as jobs,
            (select count(*)::int from mp.stream_events) as events`,
  );
  return rows[0]!;
}

/** Kills the heartbeats of every registered node (they look dead), so "no agent" tests see none. */
async function noAliveAgents(): Promise<void> {
  await db.pool.query(`update mp.nodes set heartbeat_at = now() - interval '1 hour'`);
}

describe('mp ops submit: bad input is one line, a distinct exit code, and nothing written', () => {
  it('an unknown kind lists the known kinds and the near miss (exit 3)', async () => {
    const before = await written();
    const r = await mp(['ops', 'submit', 'docker.inf', '--env', 'prod'], db.url);
    expect(r.code).toBe(3);
    expect(r.stdout).toBe('');
    expect(lines(r.stderr)).toEqual([
      expect.stringMatching(/^error: unknown operation kind 'docker\.inf' \(did you mean 'docker\.info'\?\); known kinds: .*docker\.info, .*service\.scale/),
      'hint: `mp ops kinds` lists each kind with its target and an example payload',
    ]);
    expect(await written()).toEqual(before);
  });

  it('--payload that is not JSON names the problem (exit 2); one that fails the schema prints `path: problem` lines', async () => {
    const before = await written();
    const [notJson, invalid] = await Promise.all([
      mp(['ops', 'submit', 'service.scale', '--env', 'prod', '--payload', '{"service": web}'], db.url),
      mp(['ops', 'submit', 'service.scale', '--env', 'prod', '--payload', '{"service": "web", "replicas": -1, "extra": 1}'], db.url),
    ]);
    expect(notJson.code).toBe(2);
    expect(lines(notJson.stderr)).toEqual([
      expect.stringMatching(/^error: --payload is not valid JSON: /),
      `hint: a valid payload looks like --payload '{"service":"web","replicas":3,"timeoutSeconds":120}'`,
    ]);
    expect(invalid.code).toBe(2);
    const [first, ...rest] = lines(invalid.stderr);
    expect(first).toBe('error: invalid --payload for service.scale');
    expect(rest).toContainEqual(expect.stringMatching(/^ {2}replicas: .*>=0/));
    expect(rest).toContainEqual(expect.stringMatching(/^ {2}\(payload\): .*extra/));
    expect(rest.at(-1)).toMatch(/^hint: a valid payload looks like --payload '\{"service":"web"/);
    expect(await written()).toEqual(before);
  });

  it('in-process: a missing payload field is an InvalidPayloadError naming the field', async () => {
    const err = await submit.run(ctx(), { kind: 'service.scale', env: 'prod', payload: '{"replicas": 2}', detach: true, dryRun: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidPayloadError);
    expect((err as InvalidPayloadError).problems).toEqual([{ path: 'service', problem: expect.any(String) }]);
  });

  it('an unknown environment suggests the near miss and how to create it (exit 3)', async () => {
    const before = await written();
    const r = await mp(['ops', 'submit', 'docker.info', '--env', 'prdo', '--detach'], db.url);
    expect(r.code).toBe(3);
    expect(lines(r.stderr)).toEqual([
      'error: unknown environment "prdo" (did you mean "prod"?); environments: prod, staging',
      'hint: create it with `mp env create prdo`',
    ]);
    expect(await written()).toEqual(before);
  });

  it('an invalid environment name or target is refused before connecting (exit 2)', async () => {
    const nowhere = 'postgres://nobody@127.0.0.1:1/nowhere';
    const r = await mp(['ops', 'submit', 'docker.info', '--env', 'Prod', '--target', 'nodes:x'], nowhere);
    expect(r.code).toBe(2);
    expect(lines(r.stderr)).toEqual([
      'error: invalid input for `mp ops submit`',
      expect.stringMatching(/^ {2}--env: invalid environment name "Prod".*did you mean "prod"\?$/),
      expect.stringMatching(/^ {2}--target: invalid target "nodes:x": use manager, provisioner, any, or node:<name>/),
      'hint: run `mp ops submit --help` for usage',
    ]);
  });

  it('with no alive agent it refuses at once, naming who is missing, and writes nothing (exit 9)', async () => {
    await noAliveAgents();
    const before = await written();
    const [manager, any] = await Promise.all([
      mp(['ops', 'submit', 'service.scale', '--env', 'prod', '--payload', '{"service": "web", "replicas": 1}'], db.url),
      mp(['ops', 'submit', 'docker.info', '--env', 'prod'], db.url),
    ]);
    expect(manager.code).toBe(9);
    expect(lines(manager.stderr)).toEqual([
      'error: no manager agent has sent a heartbeat in 30 s',
      expect.stringMatching(/^hint: start one with `mp agent`.*--detach/),
    ]);
    expect(any.code).toBe(9);
    expect(lines(any.stderr)[0]).toBe('error: no agent has sent a heartbeat in 30 s');
    expect(await written()).toEqual(before);
  });

  it('--detach submits without an agent and prints the id at once; cancel then cancels it; a second cancel is a conflict', async () => {
    const before = await written();
    const r = await mp(['ops', 'submit', 'docker.info', '--env', 'staging', '--detach'], db.url);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^\d+\n$/);
    const id = r.stdout.trim();
    expect(await written()).toMatchObject({ ops: before.ops + 1, jobs: before.jobs + 1 });
    expect((await getOperation(controlDb(db.pool), id))!.status).toBe('queued');

    const json = await mp(['ops', 'submit', 'docker.info', '--env', 'staging', '--detach', '--json'], db.url);
    expect(JSON.parse(json.stdout)).toEqual({ id: Number(id) + 1 });

    const cancelled = await mp(['ops', 'cancel', id], db.url);
    expect(cancelled.code).toBe(0);
    expect(cancelled.stdout).toBe(`operation ${id} cancelled (it had not started)\n`);
    const afterCancel = await written();
    const again = await mp(['ops', 'cancel', id], db.url);
    expect(again.code).toBe(4);
    expect(lines(again.stderr)).toEqual([
      `error: operation ${id} already cancelled`,
      'hint: only queued or running operations can be cancelled; `mp ops retry` runs a finished one again',
    ]);
    expect(await written()).toEqual(afterCancel);
    const unknown = await mp(['ops', 'cancel', '999999'], db.url);
    expect(unknown.code).toBe(3);
    expect(lines(unknown.stderr)[0]).toBe('error: unknown operation 999999');
  });

  it('--target node:NAME must name a node that has registered (exit 3)', async () => {
    const before = await written();
    const r = await mp(['ops', 'submit', 'docker.info', '--target', 'node:ghost', '--detach'], db.url);
    expect(r.code).toBe(3);
    expect(lines(r.stderr)[0]).toMatch(/^error: unknown node "ghost" in --target node:ghost; nodes: /);
    expect(await written()).toEqual(before);
  });
});

describe('mp ops ls, show, tail, kinds', () => {
  it('kinds lists the registry with target and an example payload', async () => {
    const c = ctx({ json: true });
    await kinds.run(c, {});
    const rows = JSON.parse(c.out()) as kinds.KindRow[];
    expect(rows.find((r) => r.kind === 'service.scale')).toEqual({
      kind: 'service.scale',
      target: 'manager',
      description: expect.any(String),
      example: { service: 'web', replicas: 3, timeoutSeconds: 120 },
    });
    const text = ctx();
    await kinds.run(text, {});
    expect(lines(text.out())[0]).toMatch(/^KIND\s+TARGET\s+DESCRIPTION\s+EXAMPLE PAYLOAD$/);
  });

  it('ls shows operations newest first, filtered by status, env and kind; show prints the row and its events', async () => {
    const k = controlDb(db.pool);
    const a = await submitOperation(k, { kind: 'docker.info', environment: 'prod', payload: {}, options: { target: 'any' } });
    const b = await submitOperation(k, { kind: 'stack.remove', environment: 'staging', payload: { stack: 'shop' } });
    const all = ctx({ json: true });
    await ls.run(all, { limit: 50 });
    const ids = (JSON.parse(all.out()) as ls.OperationRow[]).map((r) => r.id);
    expect(ids.indexOf(Number(b))).toBeLessThan(ids.indexOf(Number(a)));

    const filtered = ctx({ json: true });
    await ls.run(filtered, { env: 'staging', kind: 'stack.remove', status: 'queued', limit: 5 });
    expect(JSON.parse(filtered.out())).toEqual([
      expect.objectContaining({ id: Number(b), kind: 'stack.remove', env: 'staging', status: 'queued', target: 'manager', last_step: 'queued' }),
    ]);
    const text = ctx();
    await ls.run(text, { env: 'staging', kind: 'stack.remove', limit: 5 });
    expect(lines(text.out())[0]).toMatch(/^\s*ID\s+KIND\s+ENV\s+TARGET\s+STATUS\s+TRY\s+NODE\s+CREATED\s+ELAPSED\s+LAST STEP\s+MESSAGE$/);
    const none = ctx();
    await ls.run(none, { kind: 'nothing.here', limit: 5 });
    expect(none.out()).toMatch(/^no operations match/);

    const shown = ctx({ json: true });
    await show.run(shown, { id: b });
    expect(JSON.parse(shown.out())).toMatchObject({
      id: Number(b),
      kind: 'stack.remove',
      payload: { stack: 'shop' },
      events: [expect.objectContaining({ step: 'queued', message: 'stack.remove queued for manager' })],
    });
    const shownText = ctx();
    await show.run(shownText, { id: b });
    expect(shownText.out()).toMatch(/^id\s+\d+\nkind\s+stack\.remove\n/);
    expect(shownText.out()).toMatch(/\nEVENTS\nPOS\s+TIME\s+STEP\s+LEVEL\s+TRY\s+NODE\s+MESSAGE\n\s*\d+\s+\S+Z\s+queued\s+info/);
    await expect(show.run(ctx(), { id: '424242' })).rejects.toBeInstanceOf(NotFoundError);
    // No agent must ever run it (and it would hold staging's serial key meanwhile).
    await db.pool.query(`select mp.cancel_operation($1)`, [b]);
  });

  it('the real binary: Ctrl-C while tailing stops following (exit 130), says how to resume, and leaves the operation running', async () => {
    // No agent claims node:nobody's operations: it stays queued for as long as we watch. No environment,
    // so no serial key: it holds up nothing else.
    const id = await submitOperation(controlDb(db.pool), { kind: 'docker.info', payload: {}, options: { target: 'node:nobody' } });
    const tail = spawnMp(['ops', 'tail', id], { env: { DATABASE_URL: db.url } });
    await waitFor('the queued event', () => tail.out().includes('queued'), { timeoutMs: 20_000 });
    tail.child.kill('SIGINT');
    expect(await tail.exited).toBe(130);
    expect(lines(tail.err())).toEqual([
      `error: stopped following operation ${id}; it is queued and keeps going without you`,
      `hint: resume with \`mp ops tail ${id}\`; stop it with \`mp ops cancel ${id}\``,
    ]);
    expect((await getOperation(controlDb(db.pool), id))!.status).toBe('queued');
  });

  it('in-process: an aborted follow throws StoppedFollowingError', async () => {
    const id = await submitOperation(controlDb(db.pool), { kind: 'docker.info', payload: {}, options: { target: 'node:nobody' } });
    const stop = new AbortController();
    stop.abort();
    const { run } = await import('../../cli/commands/ops/tail.ts');
    await expect(run(ctx({ signal: stop.signal }), { id })).rejects.toBeInstanceOf(StoppedFollowingError);
  });
});

describeSwarm('mp ops with a real agent on the real Docker engine + Swarm', () => {
  let agent: RunningAgent;
  let pool: pg.Pool;
  beforeAll(async () => {
    pool = new pg.Pool({ connectionString: db.url, max: 8 });
    agent = await startAgent({ pool, docker: connectDocker(), name: 'cli-test-agent', pollIntervalMs: 500, heartbeatMs: 1000 });
  });
  afterAll(async () => {
    await agent.stop();
    await pool.end();
  });

  it('the real binary: `mp ops submit docker.info --env prod` is executed by the agent; the CLI prints its events and exits 0', async () => {
    const r = await mp(['ops', 'submit', 'docker.info', '--env', 'prod'], db.url);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = lines(r.stdout);
    const id = out[0]!.match(/^operation (\d+) submitted; Ctrl-C stops following/)![1]!;
    const time = '\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ';
    expect(out[1]).toMatch(new RegExp(`^${time} {2}queued {5}docker\\.info queued for any$`));
    expect(out[2]).toMatch(new RegExp(`^${time} {2}started {4}started on cli-test-agent$`));
    expect(out[3]).toMatch(new RegExp(`^${time} {2}info {7}Docker .* swarm manager$`));
    expect(out[4]).toMatch(new RegExp(`^${time} {2}succeeded {2}succeeded$`));
    expect(out[5]).toMatch(new RegExp(`^operation ${id} docker\\.info succeeded in \\d+\\.\\d s$`));
    expect(JSON.parse(out[6]!.replace(/^result: /, ''))).toMatchObject({ swarm: { state: 'active', manager: true } });
    const op = (await getOperation(controlDb(db.pool), id))!;
    expect(op).toMatchObject({ status: 'succeeded', node: 'cli-test-agent', environment: 'prod' });
  });

  it('--json prints one event object per line, the last one carrying the result', async () => {
    const r = await mp(['ops', 'submit', 'docker.info', '--env', 'prod', '--json'], db.url);
    expect(r.code).toBe(0);
    const events = lines(r.stdout).map((l) => JSON.parse(l) as { op: number; step: string; data?: unknown });
    expect(events.map((e) => e.step)).toEqual(['queued', 'started', 'info', 'succeeded']);
    expect(new Set(events.map((e) => e.op)).size).toBe(1);
    expect(events.at(-1)!.data).toMatchObject({ engine: { version: expect.any(String) } });
  });

  it('a failing operation makes the CLI exit 8 with the reason; tail of the finished operation prints its events and exits the same way', async () => {
    const missing = uniqueName('missing');
    const r = await mp(['ops', 'submit', 'service.scale', '--env', 'staging', '--payload', JSON.stringify({ service: missing, replicas: 1 })], db.url);
    expect(r.code).toBe(8);
    const id = r.stdout.match(/^operation (\d+) submitted/)![1]!;
    expect(lines(r.stdout).at(-1)).toMatch(new RegExp(`failed {5}error: service '${missing}' does not exist in the swarm`));
    expect(lines(r.stderr)).toEqual([
      expect.stringMatching(new RegExp(`^error: operation ${id} failed: service '${missing}' does not exist in the swarm; services: `)),
      `hint: \`mp ops show ${id}\` shows its events; \`mp ops retry ${id}\` runs it again`,
    ]);

    const tail = await mp(['ops', 'tail', id], db.url);
    expect(tail.code).toBe(8);
    expect(lines(tail.stdout).map((l) => l.split(/\s+/)[1])).toEqual(['queued', 'started', 'failed']);

    // retry re-queues it, follows only the new events, and fails the same way.
    const c = ctx();
    const err = await retry.run(c, { id, detach: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OperationFailedError);
    expect(lines(c.out()).map((l) => l.split(/\s+/)[1])).toEqual(['queued', 'started', 'failed']);
    expect(lines(c.out())[0]).toMatch(/queued {5}retried by /);
    expect((await getOperation(controlDb(db.pool), id))!.attempts).toBe(2);
  });

  it('tail of a succeeded operation prints its events and exits 0 at once; retrying it is a conflict (exit 4)', async () => {
    const id = await submitOperation(controlDb(db.pool), { kind: 'docker.info', environment: 'prod', payload: {}, options: { target: 'any' } });
    await waitFor('the operation to succeed', async () => (await getOperation(controlDb(db.pool), id))!.status === 'succeeded', { timeoutMs: 20_000 });
    // What a retry would write: a new attempt and events of this operation (the agent may still be
    // acking its job, so the whole queue's count is not compared).
    const mine = async () =>
      (await db.pool.query(`select (select count(*)::int from mp.operations) as ops, (select count(*)::int from mp.operation_events($1)) as events,
                                   (select attempts from mp.operations where id = $1) as attempts, (select status from mp.operations where id = $1) as status`, [id])).rows[0];
    const before = await mine();
    const [tail, again] = await Promise.all([mp(['ops', 'tail', id], db.url), mp(['ops', 'retry', id], db.url)]);
    expect(tail.code).toBe(0);
    expect(lines(tail.stdout).at(-2)).toMatch(new RegExp(`^operation ${id} docker\\.info succeeded`));
    expect(again.code).toBe(4);
    expect(lines(again.stderr)[0]).toBe(`error: operation ${id} is succeeded, only failed or cancelled operations can be retried`);
    expect(await mine()).toEqual(before);
  });

  it('--dry-run prints the plan from the local engine and submits nothing', async () => {
    const before = await written();
    const c = ctx({ json: true });
    await submit.run(c, { kind: 'docker.info', env: 'prod', payload: '{}', detach: false, dryRun: true });
    const plan = JSON.parse(c.out()) as { kind: string; target: string; plan: Array<{ type: string }> };
    expect(plan).toMatchObject({ kind: 'docker.info', target: 'any', plan: [{ type: 'report' }] });
    const missing = await mp(['ops', 'submit', 'service.scale', '--payload', '{"service": "mpt-nothing-here", "replicas": 1}', '--dry-run'], db.url);
    expect(missing.code).toBe(3);
    expect(lines(missing.stderr)[0]).toMatch(/^error: service 'mpt-nothing-here' does not exist in the swarm/);
    expect(await written()).toEqual(before);
  });
});
