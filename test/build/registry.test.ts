// Where a built image goes, as pure functions: the pushed reference from minipaas.yaml's registry: and
// deploy.version, the push credentials (environment, docker login's config.json, a credential helper
// refused), and the release spec moved onto recorded builds.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { pushedReference, registryCredentials, registryHost } from '../../agent/build/registry.ts';
import { withRecordedBuilds } from '../../cli/builds.ts';
import type { RecordedBuild } from '../../sql/control/builds.ts';
import { ConfigError } from '../../sql/errors.ts';
import type { StackSpec } from '../../stack/types.ts';

const dir = mkdtempSync(join(tmpdir(), 'mp-registry-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('pushedReference', () => {
  it.each([
    ['hello-api:dev', '127.0.0.1:5000/shop', '1.4.2', '127.0.0.1:5000/shop/hello-api:1.4.2'],
    ['hello-api:dev', '127.0.0.1:5000/shop/', undefined, '127.0.0.1:5000/shop/hello-api:dev'],
    ['hello-api', 'registry.example.com', undefined, 'registry.example.com/hello-api:latest'],
    ['team/api:3', 'ghcr.io/acme', '4', 'ghcr.io/acme/team/api:4'],
    ['old.example.com:5000/api:3', 'registry.example.com/shop', '4', 'registry.example.com/shop/api:4'],
    ['127.0.0.1:5000/shop/api:3', '127.0.0.1:5000/shop', '9', '127.0.0.1:5000/shop/api:3'],
  ])('%s under %s (version %s) is %s', (image, registry, version, expected) => {
    expect(pushedReference(image, { registry, version })).toBe(expected);
  });

  it('refuses a registry written as a URL', () => {
    expect(() => pushedReference('api:1', { registry: 'https://registry.example.com' })).toThrow(/is not a registry prefix/);
  });

  it('names the host credentials are kept under', () => {
    expect(registryHost('127.0.0.1:5000/shop')).toBe('127.0.0.1:5000');
    expect(registryHost('acme/api:1')).toBe('https://index.docker.io/v1/');
  });
});

describe('registryCredentials', () => {
  const none = join(dir, 'absent.json');

  it('takes MP_REGISTRY_USERNAME and MP_REGISTRY_PASSWORD, and refuses only one of them', () => {
    expect(registryCredentials('r:5000', { env: { MP_REGISTRY_USERNAME: 'ci', MP_REGISTRY_PASSWORD: 'pw' }, dockerConfig: none })).toEqual({
      username: 'ci',
      password: 'pw',
      serveraddress: 'r:5000',
    });
    expect(() => registryCredentials('r:5000', { env: { MP_REGISTRY_USERNAME: 'ci' }, dockerConfig: none })).toThrow(ConfigError);
  });

  it('reads what docker login left, is anonymous without it, and refuses a credential helper', () => {
    const config = join(dir, 'config.json');
    writeFileSync(config, JSON.stringify({ auths: { 'r:5000': { auth: Buffer.from('alice:s3cret').toString('base64') }, 'h:1': {} }, credsStore: 'desktop' }));
    expect(registryCredentials('r:5000', { env: {}, dockerConfig: config })).toEqual({ username: 'alice', password: 's3cret', serveraddress: 'r:5000' });
    expect(registryCredentials('other:5000', { env: {}, dockerConfig: config })).toBeUndefined();
    expect(() => registryCredentials('h:1', { env: {}, dockerConfig: config })).toThrow(/credential helper 'desktop'/);
    expect(registryCredentials('r:5000', { env: {}, dockerConfig: none })).toBeUndefined();
  });
});

describe('withRecordedBuilds', () => {
  const service = (key: string, image: string): StackSpec['services'][number] => ({
    key,
    name: `shop_${key}`,
    spec: { Name: `shop_${key}`, TaskTemplate: { ContainerSpec: { Image: image } } },
  });
  const spec: StackSpec = { name: 'shop', networks: [], secrets: [], configs: [], warnings: [], services: [service('api', 'shop-api:1'), service('db', 'postgres:16')] };
  const digest = `sha256:${'a'.repeat(64)}`;
  const build: RecordedBuild = {
    environment: 'prod',
    service: 'api',
    image: 'shop-api:1',
    pushed: 'r:5000/shop/shop-api:1',
    digest,
    image_id: `sha256:${'b'.repeat(64)}`,
    operationId: '41',
    createdAt: new Date(0),
  };

  it('moves services with a recorded build onto its digest and leaves the others', () => {
    const { spec: moved, used } = withRecordedBuilds(spec, new Map([['shop-api:1', build]]));
    const images = moved.services.map((s) => (s.spec.TaskTemplate as { ContainerSpec: { Image: string } }).ContainerSpec.Image);
    expect(images).toEqual([`r:5000/shop/shop-api:1@${digest}`, 'postgres:16']);
    expect(used).toEqual([{ service: 'api', image: 'shop-api:1', ref: `r:5000/shop/shop-api:1@${digest}`, operationId: '41' }]);
    // The input is not changed.
    expect((spec.services[0]!.spec.TaskTemplate as { ContainerSpec: { Image: string } }).ContainerSpec.Image).toBe('shop-api:1');
  });
});
