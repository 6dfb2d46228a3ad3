import { describe, expect, it } from 'vitest';
import { STACK_NAMESPACE_LABEL } from '../../../agent/docker/engine.ts';
import { parsePayload } from '../../../agent/executors/index.ts';
import { plan, stackRemove } from '../../../agent/executors/stack-remove.ts';
import { ConfigError } from '../../../sql/errors.ts';
import { describeSwarm, TEST_LABEL, useDockerScope } from '../../support/docker.ts';
import { waitFor } from '../../support/wait.ts';
import { recordingContext } from './recording-context.ts';

const obj = (id: string, name: string) => ({ id, name, labels: {} });
const empty = { services: [], networks: [], secrets: [], configs: [] };

describe('stack.remove payload', () => {
  it('takes a stack name and an optional timeout', () => {
    expect(parsePayload(stackRemove, { stack: 'shop' })).toEqual({ stack: 'shop', timeoutSeconds: 120 });
    expect(() => parsePayload(stackRemove, { stack: 'shop/x' })).toThrow(ConfigError);
    expect(() => parsePayload(stackRemove, {})).toThrow('invalid payload for stack.remove: stack: ');
  });
});

describe('stack.remove plan', () => {
  it('plans nothing for an absent stack', () => {
    expect(plan({ stack: 'shop', timeoutSeconds: 120 }, empty)).toEqual([]);
  });

  it('removes services, waits for their tasks, then secrets, configs and networks', () => {
    const actions = plan(
      { stack: 'shop', timeoutSeconds: 30 },
      {
        services: [obj('s2', 'shop_web'), obj('s1', 'shop_api')],
        networks: [obj('n1', 'shop_default')],
        secrets: [obj('x1', 'shop_db_password')],
        configs: [obj('c1', 'shop_nginx')],
      },
    );
    expect(actions).toEqual([
      { type: 'remove-service', service: { id: 's1', name: 'shop_api' } },
      { type: 'remove-service', service: { id: 's2', name: 'shop_web' } },
      { type: 'wait-tasks-gone', serviceIds: ['s1', 's2'], timeoutMs: 30_000 },
      { type: 'remove-secret', secret: { id: 'x1', name: 'shop_db_password' } },
      { type: 'remove-config', config: { id: 'c1', name: 'shop_nginx' } },
      { type: 'remove-network', network: { id: 'n1', name: 'shop_default' } },
    ]);
  });

  it('does not wait for tasks when the stack has no services', () => {
    const actions = plan({ stack: 'shop', timeoutSeconds: 30 }, { ...empty, networks: [obj('n1', 'shop_default')] });
    expect(actions).toEqual([{ type: 'remove-network', network: { id: 'n1', name: 'shop_default' } }]);
  });
});

describeSwarm('stack.remove on the lab Swarm', () => {
  const lab = useDockerScope();

  it("removes a stack's services, network, secret and config, leaves other stacks alone, and is idempotent", async () => {
    const stack = lab.stack('rm');
    const other = lab.stack('keep');
    const labels = { [STACK_NAMESPACE_LABEL]: stack, [TEST_LABEL]: '1' };
    const api = lab.docker.api;
    await api.createNetwork({ Name: `${stack}_default`, Driver: 'overlay', Labels: labels });
    await api.createSecret({ Name: `${stack}_token`, Labels: labels, Data: Buffer.from('s3cret').toString('base64') });
    await api.createConfig({ Name: `${stack}_conf`, Labels: labels, Data: Buffer.from('a=1').toString('base64') });
    const web = await lab.createSleeper(stack, 'web', 2);
    const worker = await lab.createSleeper(stack, 'worker', 1);
    const kept = await lab.createSleeper(other, 'web', 1);
    await waitFor(
      '3 tasks of the stack running',
      async () =>
        (await lab.docker.listTasks({ serviceIds: [web, worker] })).filter((t) => t.state === 'running').length === 3,
      { timeoutMs: 30_000 },
    );

    const ctx = recordingContext(lab.docker);
    const result = await stackRemove.execute(ctx, { stack, timeoutSeconds: 60 });
    expect(result).toEqual({
      stack,
      removed: {
        services: [`${stack}_web`, `${stack}_worker`],
        networks: [`${stack}_default`],
        secrets: [`${stack}_token`],
        configs: [`${stack}_conf`],
      },
      nothingToRemove: false,
    });
    // Returned only once the tasks are gone, so nothing of the stack is left to see.
    const label = [`${STACK_NAMESPACE_LABEL}=${stack}`];
    expect(await lab.docker.listTasks({ serviceIds: [web, worker] })).toEqual([]);
    expect(await lab.docker.listServices({ label })).toEqual([]);
    expect(await lab.docker.listNetworks({ label })).toEqual([]);
    expect(await lab.docker.listSecrets({ label })).toEqual([]);
    expect(await lab.docker.listConfigs({ label })).toEqual([]);
    expect((await lab.docker.inspectService(kept)).name).toBe(`${other}_web`);
    expect(ctx.steps.map((s) => s.name)).toEqual([
      'remove-service',
      'remove-service',
      ...ctx.steps.filter((s) => s.name === 'wait').map(() => 'wait'),
      'remove-secret',
      'remove-config',
      'remove-network',
      'done',
    ]);

    const again = recordingContext(lab.docker);
    expect(await stackRemove.execute(again, { stack, timeoutSeconds: 60 })).toMatchObject({ nothingToRemove: true });
    expect(again.steps).toEqual([{ name: 'done', message: `stack '${stack}': nothing to remove`, data: undefined }]);
  });

  it('succeeds with nothing to remove for a stack that never existed', async () => {
    const stack = lab.stack('never');
    const result = await stackRemove.execute(recordingContext(lab.docker), { stack, timeoutSeconds: 60 });
    expect(result).toEqual({
      stack,
      removed: { services: [], networks: [], secrets: [], configs: [] },
      nothingToRemove: true,
    });
  });
});
