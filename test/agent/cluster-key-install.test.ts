// `mp agent install` gives agents the cluster key as a Docker secret: the spec mounts it and names it
// in MP_CLUSTER_KEY_FILE, and installs without a key keep the spec they had.
import { describe, expect, it } from 'vitest';
import { agentServiceSpec, CLUSTER_KEY_PATH, clusterKeySecretName } from '../../agent/global-service.ts';

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
  it('without a key the spec (and its hash) is what it was', () => {
    const spec = agentServiceSpec(base, { imageId: 'sha256:1', secretName: 'mp_database_url_x' });
    expect(container(spec).Secrets).toHaveLength(1);
    expect(container(spec).Env.some((e) => e.startsWith('MP_CLUSTER_KEY_FILE='))).toBe(false);
  });
});
