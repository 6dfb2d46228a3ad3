/** planStack is pure: observed state in, actions out. */
import { describe, expect, it } from 'vitest';
import { planStack, DIGEST_LABEL, type ObservedStack } from '../../../agent/deploy/index.ts';
import type { ServiceInfo } from '../../../agent/docker/engine.ts';
import { loadStack } from '../../../stack/index.ts';
import type { StackSpec } from '../../../stack/types.ts';

const COMPOSE = `
services:
  web:
    image: img:1
    secrets: [pw]
    networks: [front, out]
    deploy: { replicas: 2 }
  worker:
    image: img:1
networks:
  front: {}
  out: { external: true, name: shared }
secrets:
  pw: { file: pw.txt }
`;

function desired(pw = 'hunter2', image = 'img:1'): StackSpec {
  return loadStack({
    name: 'shop',
    files: [{ path: '/w/compose.yaml', content: COMPOSE.replaceAll('img:1', image) }],
    env: {},
    workingDir: '/w',
    readFile: () => pw,
    safeDefaults: true,
  });
}

const empty: ObservedStack = {
  stack: 'shop',
  networks: [],
  secrets: [],
  configs: [],
  services: [],
  networkNames: {},
  external: { networks: { shared: { id: 'n-shared', scope: 'swarm' } }, secrets: {}, configs: {} },
};

/** What the engine would hold after deploying `spec` (specs read back as sent, ids for names). */
function deployed(spec: StackSpec): ObservedStack {
  const netIds: Record<string, string> = { 'n-shared': 'shared', 'n-front': 'shop_front', 'n-default': 'shop_default' };
  const idOf = Object.fromEntries(Object.entries(netIds).map(([id, name]) => [name, id]));
  const services: ServiceInfo[] = spec.services.map((s, i) => {
    const read = structuredClone(s.spec) as ServiceInfo['spec'];
    const task = read.TaskTemplate as { Networks?: Array<{ Target: string }>; ContainerSpec: { Isolation?: string; Secrets?: Array<{ SecretID?: string }> } };
    for (const n of task.Networks ?? []) n.Target = idOf[n.Target] ?? n.Target;
    task.ContainerSpec.Isolation = 'default';
    for (const r of task.ContainerSpec.Secrets ?? []) r.SecretID = 'sec1';
    (read.EndpointSpec as { Mode?: string }).Mode = 'vip';
    return { id: `svc${i}`, name: s.name, version: 10 + i, labels: read.Labels ?? {}, mode: 'replicated', spec: read };
  });
  return {
    ...empty,
    networks: [{ id: 'n-front', name: 'shop_front', labels: {} }, { id: 'n-default', name: 'shop_default', labels: {} }],
    secrets: spec.secrets.map((s) => ({ id: 'sec1', name: s.name, labels: { [DIGEST_LABEL]: s.digest ?? '' }, digest: s.digest })),
    services,
    networkNames: netIds,
  };
}

describe('planStack', () => {
  it('creates everything on an empty stack, in order: networks, secrets, services', () => {
    const plan = planStack(desired(), empty);
    expect(plan.actions.map((a) => `${a.type} ${'name' in a ? a.name : ''}`)).toEqual([
      'create-network shop_default',
      'create-network shop_front',
      'create-secret shop_pw',
      'create-service shop_web',
      'create-service shop_worker',
    ]);
    expect(plan.changed).toBe(true);
    const secret = plan.actions.find((a) => a.type === 'create-secret');
    expect(JSON.stringify(secret)).not.toContain(Buffer.from('hunter2').toString('base64'));
    expect(secret).toMatchObject({ digest: expect.stringMatching(/^[0-9a-f]{64}$/) });
  });

  it('plans a deployed stack as unchanged, despite the defaults and ids the engine adds', () => {
    const spec = desired();
    const plan = planStack(spec, deployed(spec));
    expect(plan.changed).toBe(false);
    expect(plan.actions.every((a) => a.type === 'unchanged')).toBe(true);
  });

  it('updates a service with the exact changed fields', () => {
    const before = deployed(desired());
    const plan = planStack(desired('hunter2', 'img:2'), before);
    const updates = plan.actions.filter((a) => a.type === 'update-service');
    expect(updates.map((u) => (u.type === 'update-service' ? [u.name, u.version, u.changes] : []))).toEqual([
      [
        'shop_web',
        10,
        [
          { path: 'Labels.com.docker.stack.image', from: 'img:1', to: 'img:2' },
          { path: 'TaskTemplate.ContainerSpec.Image', from: 'img:1', to: 'img:2' },
        ],
      ],
      [
        'shop_worker',
        11,
        [
          { path: 'Labels.com.docker.stack.image', from: 'img:1', to: 'img:2' },
          { path: 'TaskTemplate.ContainerSpec.Image', from: 'img:1', to: 'img:2' },
        ],
      ],
    ]);
  });

  it('keeps an image pinned by digest when the file names the same reference', () => {
    const spec = desired();
    const before = deployed(spec);
    const c = before.services[0]!.spec.TaskTemplate as { ContainerSpec: { Image: string } };
    c.ContainerSpec.Image = 'img:1@sha256:abc';
    expect(planStack(spec, before).changed).toBe(false);
  });

  it('gives a secret with new content a versioned name and moves the services to it', () => {
    const before = deployed(desired());
    const next = desired('changed');
    const plan = planStack(next, before);
    const digest8 = (next.secrets[0]!.digest ?? '').slice(0, 8);
    expect(plan.actions).toContainEqual(expect.objectContaining({ type: 'create-secret', name: `shop_pw-${digest8}` }));
    const web = plan.actions.find((a) => a.type === 'update-service' && a.name === 'shop_web');
    expect(web && web.type === 'update-service' ? web.changes : []).toEqual([
      {
        path: 'TaskTemplate.ContainerSpec.Secrets',
        from: [{ File: { GID: '0', Mode: 292, Name: 'pw', UID: '0' }, SecretName: 'shop_pw' }],
        to: [{ File: { GID: '0', Mode: 292, Name: 'pw', UID: '0' }, SecretName: `shop_pw-${digest8}` }],
      },
    ]);
    expect(plan.warnings.some((w) => w.includes(`created as 'shop_pw-${digest8}'`))).toBe(true);
  });

  it('removes services the stack no longer defines, last', () => {
    const before = deployed(desired());
    before.services.push({ ...before.services[1]!, id: 'old', name: 'shop_old' });
    const plan = planStack(desired(), before);
    expect(plan.actions.at(-1)).toEqual({ type: 'remove-service', name: 'shop_old', id: 'old' });
  });

  it('refuses a missing or non-swarm external network', () => {
    expect(() => planStack(desired(), { ...empty, external: { ...empty.external, networks: { shared: null } } })).toThrow(
      /network 'shared' \(networks\.out\) is declared as external, but does not exist/,
    );
    expect(() =>
      planStack(desired(), { ...empty, external: { ...empty.external, networks: { shared: { id: 'x', scope: 'local' } } } }),
    ).toThrow(/local network, not a swarm one/);
  });
});
