import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePayload } from '../../../agent/executors/index.ts';
import { jobRun, jobServiceName, plan, type JobPayload } from '../../../agent/executors/job-run.ts';
import { ConfigError, DockerError } from '../../../sql/errors.ts';
import { describeSwarm, LAB_BUSYBOX_IMAGE, useDockerScope } from '../../support/docker.ts';
import { waitFor } from '../../support/wait.ts';
import { freshDatabase, type TestDatabase } from '../../support/database.ts';
import { recordingContext, type RecordingContext } from './recording-context.ts';

const payload = (over: Partial<JobPayload> = {}): JobPayload => ({
  image: 'busybox:latest',
  command: ['sh', '-c', 'echo hi'],
  timeoutSeconds: 600,
  ...over,
});

describe('job.run payload', () => {
  it('defaults the timeout to 600 s', () => {
    expect(parsePayload(jobRun, { image: 'x', command: ['true'] })).toEqual({ image: 'x', command: ['true'], timeoutSeconds: 600 });
  });

  it.each([
    [{ command: ['true'] }, /image: /],
    [{ image: 'x', command: [] }, /command: /],
    [{ image: 'x', command: 'true' }, /command: /],
    [{ image: 'x', command: ['true'], env: { '1X': 'a' } }, /env/],
    [{ image: 'x', command: ['true'], env: { X: 1 } }, /env\.X: /],
    [{ image: 'x', command: ['true'], timeoutSeconds: 0 }, /timeoutSeconds: /],
    [{ image: 'x', command: ['true'], name: 'bad name' }, /name: use letters/],
    [{ image: 'x', command: ['true'], cmd: ['x'] }, /cmd/],
  ])('refuses %j naming the field', (raw, message) => {
    expect(() => parsePayload(jobRun, raw)).toThrow(ConfigError);
    expect(() => parsePayload(jobRun, raw)).toThrow(message);
  });
});

describe('job.run plan', () => {
  const state = { operationId: '42', serviceName: jobServiceName('42') };

  it('creates a replicated job named after the operation, waits for it, removes it', () => {
    const actions = plan(payload({ env: { A: '1' }, name: 'migrate', timeoutSeconds: 30 }), state);
    expect(actions).toEqual([
      {
        type: 'create-service',
        service: 'mp-job-42',
        spec: {
          Name: 'mp-job-42',
          Labels: { 'org.minipaas.operation': '42', 'org.minipaas.job': 'migrate' },
          TaskTemplate: {
            ContainerSpec: {
              Image: 'busybox:latest',
              Args: ['sh', '-c', 'echo hi'],
              Env: ['A=1'],
              Labels: { 'org.minipaas.operation': '42', 'org.minipaas.job': 'migrate' },
            },
            RestartPolicy: { Condition: 'none' },
          },
          Mode: { ReplicatedJob: { MaxConcurrent: 1, TotalCompletions: 1 } },
        },
      },
      { type: 'wait-exit', service: 'mp-job-42', timeoutMs: 30_000 },
      { type: 'remove-service', service: 'mp-job-42' },
    ]);
  });

  it('sets no Env and no job label when none is given', () => {
    const [create] = plan(payload(), state);
    expect(create).toMatchObject({ spec: { Labels: { 'org.minipaas.operation': '42' } } });
    expect(create).not.toHaveProperty(['spec', 'Labels', 'org.minipaas.job']);
    expect(create).not.toHaveProperty(['spec', 'TaskTemplate', 'ContainerSpec', 'Env']);
  });

  it('resumes the job an earlier attempt started instead of starting a second one', () => {
    const actions = plan(payload(), { ...state, existing: { id: 'svc9', name: 'mp-job-42' } });
    expect(actions.map((a) => a.type)).toEqual(['resume', 'wait-exit', 'remove-service']);
    expect(actions[0]).toEqual({ type: 'resume', service: 'mp-job-42', serviceId: 'svc9' });
  });
});

/** Runs a minute but stops at once on SIGTERM (a bare `sleep` as PID 1 ignores it: 10 s to SIGKILL). */
const LONG = ['sh', '-c', 'trap "exit 143" TERM; sleep 60 & wait'];

describeSwarm('job.run on the lab Swarm', () => {
  const lab = useDockerScope();

  const job = (over: Partial<JobPayload> = {}): JobPayload =>
    payload({ image: LAB_BUSYBOX_IMAGE, timeoutSeconds: 60, ...over });

  async function serviceGone(name: string): Promise<boolean> {
    return !(await lab.docker.listServices({ name: [name] })).some((s) => s.name === name);
  }

  it('runs a job to exit code 0, reports its steps and removes its service', async () => {
    const ctx = recordingContext(lab.docker);
    lab.track(jobServiceName(ctx.operationId));
    const result = await jobRun.execute(ctx, job({ command: ['sh', '-c', 'echo hi; exit 0'], env: { GREETING: 'hi' } }));
    expect(result).toMatchObject({ exitCode: 0, service: jobServiceName(ctx.operationId), resumed: false });
    expect(result.durationMs).toBeGreaterThan(0);
    expect(ctx.steps.map((s) => s.name)).toEqual(['create', 'running', 'exit']);
    expect(ctx.steps.at(-1)!.message).toMatch(/exited with code 0/);
    expect(await serviceGone(jobServiceName(ctx.operationId))).toBe(true);
  });

  it('fails with the exit code and the last output lines', async () => {
    const ctx = recordingContext(lab.docker);
    lab.track(jobServiceName(ctx.operationId));
    const err = await jobRun
      .execute(ctx, job({ command: ['sh', '-c', 'echo about to fail; exit 3'], name: 'failing' }))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DockerError);
    expect((err as DockerError).message).toMatch(/^job 'failing' \(mp-job-\S+\) failed with exit code 3 after /);
    expect((err as DockerError).hint).toContain('about to fail');
    expect(ctx.steps.at(-1)).toMatchObject({ name: 'exit', data: { exitCode: 3, state: 'failed', logs: ['about to fail'] } });
    expect(await serviceGone(jobServiceName(ctx.operationId))).toBe(true);
  });

  it('resumes a job that is already running instead of starting a second one', async () => {
    const first = recordingContext(lab.docker);
    lab.track(jobServiceName(first.operationId));
    // The first attempt "crashes" once the job runs: its promise is abandoned, as a killed agent's would be.
    const p = payload({ image: LAB_BUSYBOX_IMAGE, command: ['sh', '-c', 'sleep 2'], timeoutSeconds: 60 });
    const spec = plan(p, { operationId: first.operationId, serviceName: jobServiceName(first.operationId) })[0] as {
      spec: object;
    };
    const id = await lab.docker.createService(spec.spec as Parameters<typeof lab.docker.createService>[0]);
    const second = recordingContext(lab.docker, undefined, first.operationId);
    const result = await jobRun.execute(second, p);
    expect(result).toMatchObject({ exitCode: 0, resumed: true });
    expect(second.steps[0]).toMatchObject({ name: 'resume', message: expect.stringMatching(/^resuming: job .* already started$/), data: { serviceId: id } });
    expect(second.steps.some((s) => s.name === 'create')).toBe(false);
  });

  it('stops and removes the job when the operation is cancelled', async () => {
    const ctx = recordingContext(lab.docker, (step) => {
      if (step.name === 'running') ctx.abort();
    });
    lab.track(jobServiceName(ctx.operationId));
    await expect(jobRun.execute(ctx, job({ command: LONG }))).rejects.toThrow();
    expect(ctx.signal.aborted).toBe(true);
    await waitFor('the job service to be gone', () => serviceGone(jobServiceName(ctx.operationId)), { timeoutMs: 10_000 });
  });

  it('times out, stops the job and says so', async () => {
    const ctx = recordingContext(lab.docker);
    lab.track(jobServiceName(ctx.operationId));
    await expect(jobRun.execute(ctx, job({ command: LONG, timeoutSeconds: 2 }))).rejects.toThrow(
      // Under load the task may not have started yet; either way the job is stopped and the message says which.
      /was still (running|starting) after 2 s; stopped it/,
    );
    expect(await serviceGone(jobServiceName(ctx.operationId))).toBe(true);
  });
});

describeSwarm('job.run crash window on the lab Swarm', () => {
  const lab = useDockerScope();
  let db: TestDatabase;
  beforeAll(async () => {
    db = await freshDatabase();
  });
  afterAll(async () => db?.drop());

  /** A context whose steps are real events of operation `op` (so a later attempt can read them). */
  function dbContext(op: string, crashOn?: string): RecordingContext & { pool: pg.Pool } {
    const base = recordingContext(lab.docker, undefined, op);
    return {
      ...base,
      pool: db.pool,
      async step(name, message, data) {
        base.steps.push({ name, message, data });
        await db.pool.query(`select mp.op_event($1, $2, $3, 'info', $4)`, [op, name, message, data === undefined ? null : JSON.stringify(data)]);
        if (name === crashOn) throw new Error(`agent died after recording ${name}`);
      },
    };
  }

  it('does not run a job again when its agent died after recording the exit and before the operation ended', async () => {
    const p = payload({ image: LAB_BUSYBOX_IMAGE, command: ['sh', '-c', 'echo once'], timeoutSeconds: 60 });
    const op = String((await db.pool.query(`select mp.submit_operation('job.run', null, $1) id`, [JSON.stringify(p)])).rows[0].id);
    lab.track(jobServiceName(op));
    const first = dbContext(op, 'exit');
    await expect(jobRun.execute(first, p)).rejects.toThrow(/agent died after recording exit/);
    const second = dbContext(op);
    const result = await jobRun.execute(second, p);
    expect(result).toMatchObject({ exitCode: 0, resumed: true });
    expect(second.steps.map((s) => s.name)).toEqual(['resume']);
    expect(second.steps[0]!.message).toMatch(/already ended with exit code 0 \(recorded by an earlier attempt\); not run again/);
    const { rows } = await db.pool.query(`select count(*)::int n from mp.operation_events($1, 0) e where e.payload ->> 'step' = 'create'`, [op]);
    expect(rows[0].n).toBe(1);
  });
});
