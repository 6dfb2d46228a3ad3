import { describe, expect, it } from 'vitest';
import { connectDocker } from '../../../agent/docker/engine.ts';
import { executors, getExecutor, knownKinds, parsePayload, planOperation, runOperation } from '../../../agent/executors/index.ts';
import { ConfigError, NotFoundError } from '../../../sql/errors.ts';
import { describeSwarm } from '../../support/docker.ts';
import { recordingContext } from './recording-context.ts';

describe('executor registry', () => {
  it('lists the kinds, sorted, one entry each', () => {
    const kinds = knownKinds();
    expect(kinds).toEqual([...new Set(kinds)].sort());
    for (const kind of ['config.create', 'deploy', 'docker.info', 'job.run', 'secret.create', 'secret.remove', 'secrets.rotate_key', 'service.scale', 'stack.remove']) {
      expect(kinds).toContain(kind);
    }
  });

  it('finds an executor by kind', () => {
    expect(getExecutor('service.scale').target).toBe('manager');
    expect(getExecutor('stack.remove').target).toBe('manager');
    expect(getExecutor('docker.info').target).toBe('any');
    expect(getExecutor('job.run').target).toBe('manager');
  });

  it('names the known kinds and the near miss for an unknown kind', () => {
    const call = () => getExecutor('service.scal');
    expect(call).toThrow(NotFoundError);
    expect(call).toThrow(/^unknown operation kind 'service\.scal'; known kinds: .*docker\.info, .*service\.scale/);
    try {
      call();
    } catch (err) {
      expect((err as NotFoundError).hint).toBe("did you mean 'service.scale'?");
    }
  });

  it.each([...executors.values()])('$kind: its example payload is valid', (executor) => {
    expect(() => parsePayload(executor, executor.example)).not.toThrow();
  });

  it('refuses a payload that is not an object', () => {
    expect(() => parsePayload(getExecutor('service.scale'), 'web=3')).toThrow(ConfigError);
    expect(() => parsePayload(getExecutor('service.scale'), 'web=3')).toThrow(/service\.scale: \(payload\): /);
  });

  it('validates before it touches Docker', async () => {
    // An engine that cannot exist: a validation error must come first, not a connection error.
    const ctx = recordingContext(connectDocker({ host: 'unix:///nonexistent/docker.sock' }));
    await expect(runOperation(ctx, 'service.scale', { service: 'web' })).rejects.toThrow(ConfigError);
    await expect(runOperation(ctx, 'no.such', {})).rejects.toThrow(NotFoundError);
  });
});

describeSwarm('executor registry on the lab Swarm', () => {
  it('runs an operation by kind and plans one without applying it', async () => {
    const ctx = recordingContext(connectDocker());
    expect(await runOperation(ctx, 'docker.info', {})).toMatchObject({ swarm: { state: 'active' } });
    expect(await planOperation(ctx, 'stack.remove', { stack: 'mpt-never-deployed' })).toEqual([]);
  });
});
