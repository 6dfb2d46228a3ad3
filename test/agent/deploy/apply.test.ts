/** applyStack against the lab's Swarm: idempotent re-runs, secret rotation, removals. */
import { expect, it } from 'vitest';
import { applyStack, observeStack, planStack } from '../../../agent/deploy/index.ts';
import { loadStack } from '../../../stack/index.ts';
import { describeSwarm, LAB_BUSYBOX_IMAGE, useDockerScope } from '../../support/docker.ts';

const compose = (extra = ''): string => `
services:
  web:
    image: ${LAB_BUSYBOX_IMAGE}
    secrets: [pw]
    deploy: { replicas: 0 }
${extra}
secrets:
  pw: { file: pw.txt }
`;

describeSwarm('applyStack', () => {
  const lab = useDockerScope();

  it('converges, re-runs a stale plan without harm, rotates a secret under a new name, removes dropped services', async () => {
    const stack = lab.stack('apply');
    const load = (content: string, pw: string) =>
      loadStack({ name: stack, files: [{ path: '/w/compose.yaml', content }], env: {}, workingDir: '/w', readFile: () => pw });
    const steps: string[] = [];
    const step = (name: string): void => void steps.push(name);

    const v1 = load(compose(`  worker:\n    image: ${LAB_BUSYBOX_IMAGE}\n    deploy: { replicas: 0 }`), 'one');
    const first = planStack(v1, await observeStack(lab.docker, stack, v1));
    const res = await applyStack(lab.docker, first, { desired: v1, step });
    expect(Object.keys(res.serviceIds).sort()).toEqual([`${stack}_web`, `${stack}_worker`]);
    expect(steps).toEqual(['create-network', 'create-secret', 'create-service', 'create-service']);

    // A crash after applying: the same (stale) plan runs again and converges, creating nothing twice.
    steps.length = 0;
    await applyStack(lab.docker, first, { desired: v1, step });
    expect(steps).toEqual(['update-service', 'update-service']);
    expect(planStack(v1, await observeStack(lab.docker, stack, v1)).changed).toBe(false);

    // New secret content: a new object, the service moves to it; the worker is gone from the file.
    const v2 = load(compose(), 'two');
    const second = planStack(v2, await observeStack(lab.docker, stack, v2));
    const digest8 = v2.secrets[0]!.digest!.slice(0, 8);
    expect(second.actions.map((a) => a.type)).toEqual(['unchanged', 'create-secret', 'update-service', 'remove-service']);
    await applyStack(lab.docker, second, { desired: v2, step });
    const web = await lab.docker.inspectService(`${stack}_web`);
    const refs = (web.spec.TaskTemplate as { ContainerSpec: { Secrets: Array<{ SecretName: string }> } }).ContainerSpec.Secrets;
    expect(refs.map((r) => r.SecretName)).toEqual([`${stack}_pw-${digest8}`]);
    const after = await observeStack(lab.docker, stack, v2);
    expect(after.services.map((s) => s.name)).toEqual([`${stack}_web`]);
    expect(planStack(v2, after).changed).toBe(false);
  });
});
