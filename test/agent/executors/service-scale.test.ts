import { describe, expect, it } from 'vitest';
import type { ServiceInfo } from '../../../agent/docker/engine.ts';
import { parsePayload } from '../../../agent/executors/index.ts';
import { plan, serviceScale, type ScalePayload } from '../../../agent/executors/service-scale.ts';
import { ConfigError, ConflictError, DockerError, NotFoundError } from '../../../sql/errors.ts';
import { describeSwarm, sleeperSpec, useDockerScope } from '../../support/docker.ts';
import { waitFor } from '../../support/wait.ts';
import { recordingContext } from './recording-context.ts';

function service(over: Partial<ServiceInfo> = {}): ServiceInfo {
  return { id: 'svc1', name: 'web', version: 7, labels: {}, mode: 'replicated', replicas: 1, spec: {}, ...over };
}

const payload = (over: Partial<ScalePayload> = {}): ScalePayload => ({
  service: 'web',
  replicas: 3,
  timeoutSeconds: 120,
  ...over,
});

describe('service.scale payload', () => {
  it('accepts a service and a replica count, defaulting the timeout to 120 s', () => {
    expect(parsePayload(serviceScale, { service: 'web', replicas: 0 })).toEqual({
      service: 'web',
      replicas: 0,
      timeoutSeconds: 120,
    });
  });

  it.each([
    [{ service: 'web', replicas: -1 }, /replicas: .*>=0/],
    [{ service: 'web', replicas: 1.5 }, /replicas: .*int/i],
    [{ service: 'web' }, /replicas: /],
    [{ replicas: 2 }, /service: /],
    [{ service: '-web', replicas: 2 }, /service: use letters, digits/],
    [{ service: 'web', replicas: 2, replica: 3 }, /replica/],
    [{ service: 'web', replicas: 2, timeoutSeconds: 0 }, /timeoutSeconds: /],
  ])('refuses %j with a ConfigError naming the field', (raw, message) => {
    const err = (() => {
      try {
        parsePayload(serviceScale, raw);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe('MP008');
    expect((err as ConfigError).message).toMatch(/^invalid payload for service\.scale: /);
    expect((err as ConfigError).message).toMatch(message);
    expect((err as ConfigError).hint).toContain('"replicas":3');
  });
});

describe('service.scale plan', () => {
  it('sets the replicas, then waits for them', () => {
    expect(plan(payload(), { service: service(), serviceNames: ['web'] })).toEqual([
      { type: 'set-replicas', service: 'web', serviceId: 'svc1', version: 7, from: 1, to: 3 },
      { type: 'wait-running', service: 'web', serviceId: 'svc1', replicas: 3, timeoutMs: 120_000, stableMs: 2000 },
    ]);
  });

  it('only waits when the count is already right (a retried operation still converges)', () => {
    expect(plan(payload({ replicas: 1, timeoutSeconds: 5 }), { service: service(), serviceNames: ['web'] })).toEqual([
      { type: 'wait-running', service: 'web', serviceId: 'svc1', replicas: 1, timeoutMs: 5000, stableMs: 2000 },
    ]);
  });

  it('scales to zero without a stability window (no task can crash)', () => {
    const actions = plan(payload({ replicas: 0 }), { service: service(), serviceNames: ['web'] });
    expect(actions[0]).toMatchObject({ type: 'set-replicas', to: 0 });
    expect(actions[1]).toMatchObject({ type: 'wait-running', replicas: 0, stableMs: 0 });
  });

  it('names the existing services and the near miss for an unknown one', () => {
    const call = () => plan(payload({ service: 'wbe' }), { serviceNames: ['worker', 'web', 'api'] });
    expect(call).toThrow(NotFoundError);
    expect(call).toThrow("service 'wbe' does not exist in the swarm; services: api, web, worker");
    try {
      call();
    } catch (err) {
      expect((err as NotFoundError).hint).toBe("did you mean 'web'?");
    }
  });

  it('says so when there are no services at all', () => {
    expect(() => plan(payload(), { serviceNames: [] })).toThrow('services: (none)');
  });

  it('refuses a global service', () => {
    const call = () => plan(payload(), { service: service({ mode: 'global', replicas: undefined }), serviceNames: ['web'] });
    expect(call).toThrow(ConflictError);
    expect(call).toThrow("service 'web' runs in global mode");
  });
});

describeSwarm('service.scale on the lab Swarm', () => {
  const lab = useDockerScope();

  const running = async (serviceId: string): Promise<number> =>
    (await lab.docker.listTasks({ serviceIds: [serviceId] })).filter((t) => t.state === 'running').length;

  it('scales a service to 3 and back to 1, waiting for the tasks', async () => {
    const stack = lab.stack('scale');
    const id = await lab.createSleeper(stack, 'sleeper', 1);
    await waitFor('1 task running', async () => (await running(id)) === 1, { timeoutMs: 30_000 });

    const ctx = recordingContext(lab.docker);
    const up = await serviceScale.execute(ctx, payload({ service: `${stack}_sleeper`, replicas: 3, timeoutSeconds: 60 }));
    expect(up).toEqual({ service: `${stack}_sleeper`, serviceId: id, from: 1, to: 3, running: 3, changed: true });
    expect(await running(id)).toBe(3);
    expect((await lab.docker.inspectService(id)).replicas).toBe(3);
    expect(ctx.steps[0]).toMatchObject({ name: 'update', message: `scaling service '${stack}_sleeper' from 1 to 3 replicas` });
    expect(ctx.steps.at(-1)).toMatchObject({ name: 'wait', data: { running: 3, desired: 3 } });

    const down = await serviceScale.execute(ctx, payload({ service: `${stack}_sleeper`, replicas: 1, timeoutSeconds: 60 }));
    expect(down).toMatchObject({ from: 3, to: 1, running: 1 });
    // Scaling down waits until the extra containers stopped, not only until Swarm wants fewer.
    expect(await running(id)).toBe(1);
  });

  it('is a no-op that still confirms convergence when the count is already right', async () => {
    const stack = lab.stack('noop');
    const id = await lab.createSleeper(stack, 'sleeper', 1);
    const before = (await lab.docker.inspectService(id)).version;
    const ctx = recordingContext(lab.docker);
    const result = await serviceScale.execute(ctx, payload({ service: `${stack}_sleeper`, replicas: 1, timeoutSeconds: 60 }));
    expect(result).toMatchObject({ changed: false, running: 1 });
    expect((await lab.docker.inspectService(id)).version).toBe(before);
    expect(ctx.steps.map((s) => s.name)).not.toContain('update');
  });

  it('fails with NotFoundError listing the services for an unknown one', async () => {
    const stack = lab.stack('missing');
    await lab.createSleeper(stack, 'sleeper', 0);
    const err = await serviceScale
      .execute(recordingContext(lab.docker), payload({ service: `${stack}_sleepr` }))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as NotFoundError).message).toContain(`service '${stack}_sleepr' does not exist`);
    expect((err as NotFoundError).message).toContain(`${stack}_sleeper`);
    expect((err as NotFoundError).hint).toBe(`did you mean '${stack}_sleeper'?`);
  });

  it('times out with the task error when tasks exit at once (running for a moment is not success)', async () => {
    const stack = lab.stack('failing');
    const id = await lab.docker.createService(sleeperSpec(stack, 'broken', 0, ['false']));
    lab.track(id);
    const err = await serviceScale
      .execute(recordingContext(lab.docker), payload({ service: `${stack}_broken`, replicas: 1, timeoutSeconds: 4 }))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DockerError);
    expect((err as DockerError).code).toBe('DOCKER_TIMEOUT');
    expect((err as DockerError).message).toMatch(new RegExp(`^service '${stack}_broken' has [01]/1 tasks running steadily after 4 s$`));
    expect((err as DockerError).hint).toMatch(/the last task error was: .*exit/);
  });

  it('stops at the next safe point when cancelled', async () => {
    const stack = lab.stack('cancel');
    const id = await lab.createSleeper(stack, 'sleeper', 1);
    // Cancel as soon as the replica count is set: the wait must give up instead of running on.
    const ctx = recordingContext(lab.docker, (step) => {
      if (step.name === 'update') ctx.abort();
    });
    const err = await serviceScale
      .execute(ctx, payload({ service: `${stack}_sleeper`, replicas: 2, timeoutSeconds: 60 }))
      .catch((e: unknown) => e);
    expect((err as Error).name).toBe('AbortError');
    expect((await lab.docker.inspectService(id)).replicas).toBe(2);
  });
});
