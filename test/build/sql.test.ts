// The build operation in SQL (0009_builds.sql): started running on cli@<host> with no job, steps as
// events, images recorded only with success, a cancel that ends it even with no CLI left, no retry.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildEvent, finishBuild, latestPushedBuilds, startBuild } from '../../sql/control/builds.ts';
import { ConflictError } from '../../sql/errors.ts';
import { freshDatabase, type TestDatabase } from '../support/database.ts';

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase();
});
afterAll(async () => {
  await db?.drop();
});

const digest = (c: string): string => `sha256:${c.repeat(64)}`;

describe('build operations', () => {
  it('run on cli@<host> without a job, report steps, and record images only when they succeed', async () => {
    const op = await startBuild(db.pool, { environment: 'b1', host: 'laptop', payload: { services: ['api'] } });
    const { rows: [row] } = await db.pool.query(`select kind, status, node, target, job_id, attempts from mp.operations where id = $1`, [op]);
    expect(row).toEqual({ kind: 'build', status: 'running', node: 'cli@laptop', target: 'node:cli@laptop', job_id: null, attempts: 1 });
    expect(await buildEvent(db.pool, op, { step: 'step', message: 'api: step 1/2 FROM x' })).toBe(false);

    const failed = await startBuild(db.pool, { environment: 'b1', host: 'laptop', payload: {} });
    await finishBuild(db.pool, failed, { status: 'failed', error: 'pushing image failed' });

    await finishBuild(db.pool, op, {
      status: 'succeeded',
      images: [{ service: 'api', image: 'api:1', pushed: 'r:5000/api:1', digest: digest('a'), image_id: digest('b') }],
    });
    const builds = await latestPushedBuilds(db.pool, 'b1');
    expect([...builds.keys()]).toEqual(['api:1']);
    expect(builds.get('api:1')).toMatchObject({ pushed: 'r:5000/api:1', digest: digest('a'), operationId: op });
    const { rows: events } = await db.pool.query<{ step: string }>(`select payload ->> 'step' as step from mp.operation_events($1)`, [op]);
    expect(events.map((e) => e.step)).toEqual(['started', 'step', 'succeeded']);
    await expect(buildEvent(db.pool, op, { step: 'late', message: 'x' })).rejects.toThrow(ConflictError);
  });

  it('a cancel ends a running build at once (its CLI may be gone); the CLI learns it at its next step', async () => {
    const op = await startBuild(db.pool, { environment: 'b2', host: 'laptop', payload: {} });
    await db.pool.query(`select mp.cancel_operation($1)`, [op]);
    const { rows: [row] } = await db.pool.query(`select status, error from mp.operations where id = $1`, [op]);
    expect(row.status).toBe('cancelled');
    await expect(buildEvent(db.pool, op, { step: 'step', message: 'x' })).rejects.toThrow(/build \d+ already cancelled/);
    await expect(finishBuild(db.pool, op, { status: 'succeeded', images: [] })).rejects.toThrow(ConflictError);
    expect((await latestPushedBuilds(db.pool, 'b2')).size).toBe(0);
  });

  it('refuses a retry: no agent could run a build', async () => {
    const op = await startBuild(db.pool, { environment: 'b3', host: 'laptop', payload: {} });
    await finishBuild(db.pool, op, { status: 'failed', error: 'x' });
    await expect(db.pool.query(`select mp.retry_operation($1)`, [op])).rejects.toThrow(/is a build: builds run where the source is/);
  });
});
