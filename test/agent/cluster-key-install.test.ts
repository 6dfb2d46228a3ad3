// `mp agent install` gives agents the cluster key as a Docker secret: the managers' spec mounts it and
// names it in MP_CLUSTER_KEY_FILE, the workers' service never does, and installs without a key keep the
// one spec for every node they had.
import { describe, expect, it } from 'vitest';
import { agentServiceSpec, CLUSTER_KEY_PATH, clusterKeySecretName, planInstall } from '../../agent/global-service.ts';

const base = { service: 'mp-agent', image: 'mp/agent:latest', databaseUrl: 'postgres://x@h/db', network: 'host' };
type Container = { Env: string[]; Secrets: { SecretName: string; File: { Name: string; Mode: number } }[] };
const container = (spec: ReturnType<typeof agentServiceSpec>): Container => (spec.TaskTemplate as { ContainerSpec: Container }).ContainerSpec;

describe('agent service spec with the cluster key', () => {
  it('mounts the key secret 0400 and points MP_CLUSTER_KEY_FILE at it', () => {
    const name = clusterKeySecretName('A'.repeat(43) + '=');
    expect(name).toMatch(/^mp_cluster_key_[0-9a-f]{12}$/);
    const c = container(agentServiceSpec({ ...base, clusterKey: { secretName: name } }, { imageId: 'sha256:1', secretName: 'mp_database_url_x' }));
    expect(c.Env).toContain(`MP_CLUSTER_KEY_FILE=${CLUSTER_KEY_PATH}`);
    expect(c.Secrets.map((s) => [s.SecretName, s.File.Name, s.File.Mode])).toEqual([
      ['mp_database_url_x', 'mp_database_url', 0o400],
      [name, 'mp_cluster_key', 0o400],
    ]);
  });
  it('is two services with a key: the managers with it, the workers without it, each placed by node role', () => {
    const opts = { ...base, clusterKey: { secretName: clusterKeySecretName('B'.repeat(43) + '=') } };
    const actions = planInstall(opts, { imageId: 'sha256:1', secrets: [] });
    const services = actions.flatMap((a) => (a.type === 'create-service' ? [a] : []));
    expect(services.map((a) => [a.part, a.name])).toEqual([['managers', 'mp-agent'], ['workers', 'mp-agent-workers']]);
    const placement = (spec: ReturnType<typeof agentServiceSpec>): unknown => (spec.TaskTemplate as { Placement?: { Constraints: string[] } }).Placement?.Constraints;
    expect(placement(services[0]!.spec)).toEqual(['node.role==manager']);
    expect(placement(services[1]!.spec)).toEqual(['node.role==worker']);
    const workers = container(services[1]!.spec);
    expect(workers.Secrets.map((s) => s.File.Name)).toEqual(['mp_database_url']);
    expect(workers.Env.some((e) => e.startsWith('MP_CLUSTER_KEY_FILE='))).toBe(false);
    // Both read the same database-URL secret.
    expect(workers.Secrets[0]!.SecretName).toBe(container(services[0]!.spec).Secrets[0]!.SecretName);
    // An install without a key takes the workers' service away again: one service on every node.
    const workersSvc = { id: 'w1', name: 'mp-agent-workers', version: 1, labels: { 'org.minipaas.role': 'agent' } };
    const back = planInstall(base, { imageId: 'sha256:1', secrets: [], workers: workersSvc });
    expect(back.filter((a) => a.type.endsWith('-service')).map((a) => [a.type, a.name])).toEqual([['create-service', 'mp-agent'], ['remove-service', 'mp-agent-workers']]);
  });

  it('without a key the spec (and its hash) is what it was', () => {
    const spec = agentServiceSpec(base, { imageId: 'sha256:1', secretName: 'mp_database_url_x' });
    expect(container(spec).Secrets).toHaveLength(1);
    expect(container(spec).Env.some((e) => e.startsWith('MP_CLUSTER_KEY_FILE='))).toBe(false);
  });
});
