// The pure parts of canaries, without Docker: the canary's Swarm spec from the new version, what `mp
// deploy canary` accepts as a canary, and the spec a promote deploys.
import type Dockerode from 'dockerode';
import { describe, expect, it } from 'vitest';
import { canaryServiceSpec } from '../../agent/executors/canary-start.ts';
import { canaryService } from '../../cli/commands/deploy/canary.ts';
import { promotedSpec } from '../../cli/commands/deploy/promote.ts';
import type { Canary } from '../../sql/control/canaries.ts';
import type { Release } from '../../sql/control/releases.ts';
import { MiniPaasError } from '../../sql/errors.ts';
import type { StackService, StackSpec } from '../../stack/types.ts';

const NS = 'com.docker.stack.namespace';

function service(key: string, message: string, replicas = 3, networks = ['shop_default']): StackService {
  const spec: Dockerode.ServiceSpec = {
    Name: `shop_${key}`,
    Labels: { [NS]: 'shop', 'org.minipaas.test': '1' },
    Mode: { Replicated: { Replicas: replicas } },
    TaskTemplate: {
      ContainerSpec: { Image: 'busybox:1', Env: [`MESSAGE=${message}`], Labels: { [NS]: 'shop' } },
      Networks: networks.map((Target) => ({ Target, Aliases: [key] })),
    },
    EndpointSpec: { Mode: 'vip', Ports: [{ TargetPort: 80, PublishedPort: 8080, PublishMode: 'host' }] },
  };
  return { key, name: `shop_${key}`, spec };
}

function stack(services: StackService[], networks = ['shop_default']): StackSpec {
  return { name: 'shop', networks: networks.map((n) => ({ key: n.slice(5), name: n, external: false })), secrets: [], configs: [], services, warnings: [] };
}

function release(spec: StackSpec): Release {
  return {
    id: '1', environment: 'shop', version: 4, kind: 'deploy', stack: 'shop', spec, source: {}, restores: null, requestedBy: {},
    operationId: '1', images: null, status: 'succeeded', error: null, createdAt: new Date(), finishedAt: new Date(),
  };
}

function canary(svc: StackService): Canary {
  return {
    id: '7', environment: 'shop', service: svc.key, stack: 'shop', replicas: 1, baseVersion: 4, spec: svc, source: {}, requestedBy: {},
    image: { ref: 'busybox:1@sha256:abc', digest: 'sha256:abc' }, status: 'live', reason: null, startOperationId: '9', endOperationId: null,
    promotedVersion: null, createdAt: new Date(), liveAt: new Date(), endedAt: null,
  };
}

function error(fn: () => unknown): MiniPaasError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(MiniPaasError);
    return err as MiniPaasError;
  }
  throw new Error('expected an error');
}

describe('canary spec', () => {
  it('is the new version under its own name, N replicas, pinned, on the same networks and alias, outside the stack, without published ports', () => {
    const spec = canaryServiceSpec(canary(service('api', 'v2')));
    expect(spec.Name).toBe('shop_api-canary');
    expect(spec.Mode).toEqual({ Replicated: { Replicas: 1 } });
    expect(spec.Labels).toEqual({ 'org.minipaas.test': '1', 'org.minipaas.canary': '7', 'org.minipaas.canary.of': 'shop_api', 'org.minipaas.environment': 'shop' });
    const tpl = spec.TaskTemplate as { ContainerSpec: Dockerode.ContainerSpec; Networks: unknown[] };
    expect(tpl.ContainerSpec.Image).toBe('busybox:1@sha256:abc');
    expect(tpl.ContainerSpec.Labels).toEqual({ 'org.minipaas.canary': '7' });
    expect(tpl.Networks).toEqual([{ Target: 'shop_default', Aliases: ['api'] }]);
    expect(spec.EndpointSpec).toEqual({ Mode: 'vip' });
  });
});

describe('what can be a canary', () => {
  const current = release(stack([service('api', 'v1'), service('web', 'w1')]));

  it('takes a changed service and names the others that changed too', () => {
    const { svc, others } = canaryService(stack([service('api', 'v2'), service('web', 'w2')]), current, 'api');
    expect(svc.key).toBe('api');
    expect(others).toEqual(['web']);
  });

  it('refuses a service with no change (a different replica count is no change), an unknown one with the near miss, a new network', () => {
    expect(error(() => canaryService(stack([service('api', 'v1', 5), service('web', 'w1')]), current, 'api')).message).toMatch(/is the same as in release 4/);
    const unknown = error(() => canaryService(stack([service('api', 'v2')]), current, 'apo'));
    expect(unknown.message).toMatch(/service 'apo' is not defined .*services: api/);
    expect(unknown.hint).toBe("did you mean 'api'?");
    const net = error(() => canaryService(stack([service('api', 'v2', 3, ['shop_backend'])], ['shop_backend']), current, 'api'));
    expect(net.message).toMatch(/uses network 'shop_backend', which release 4 does not have/);
  });
});

describe('the promoted spec', () => {
  it('is the current release with the service at the canary version and the main replica count', () => {
    const current = release(stack([service('api', 'v1', 3), service('web', 'w1')]));
    const next = service('api', 'v2', 1);
    const spec = promotedSpec(current, canary(next));
    expect(spec.services.map((s) => s.key)).toEqual(['api', 'web']);
    expect(spec.services[0]!.spec.Mode).toEqual({ Replicated: { Replicas: 3 } });
    expect((spec.services[0]!.spec.TaskTemplate as { ContainerSpec: Dockerode.ContainerSpec }).ContainerSpec.Env).toEqual(['MESSAGE=v2']);
    expect(spec.services[1]).toEqual(current.spec.services[1]);
  });
});
