import { describe, expect, it } from 'vitest';
import { buildInputsOf, buildsOf } from '../../../agent/build/compose.ts';
import { ConfigError } from '../../../sql/errors.ts';

const projectDir = '/srv/hello';

function inputs(build: unknown, extra: Record<string, unknown> = {}, env: Record<string, string> = {}) {
  return buildInputsOf('api', { image: 'hello-api:1', build, ...extra }, { projectDir, env });
}

function refusal(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('buildInputsOf', () => {
  it('returns undefined for a service without build', () => {
    expect(buildInputsOf('db', { image: 'postgres:16' }, { projectDir })).toBeUndefined();
  });

  it.each([
    ['the short form: a context path', './app', { context: '/srv/hello/app', dockerfile: 'Dockerfile' }],
    ['the short form: the project directory', '.', { context: '/srv/hello', dockerfile: 'Dockerfile' }],
    ['an absolute context', { context: '/opt/src' }, { context: '/opt/src' }],
    ['no context: the project directory', { dockerfile: 'Dockerfile.prod' }, { context: '/srv/hello', dockerfile: 'Dockerfile.prod' }],
    ['a Dockerfile in a subfolder', { context: 'app', dockerfile: 'docker/api.Dockerfile' }, { dockerfile: 'docker/api.Dockerfile' }],
    ['an absolute Dockerfile inside the context', { context: 'app', dockerfile: '/srv/hello/app/Dockerfile.x' }, { dockerfile: 'Dockerfile.x' }],
    ['a target', { context: 'app', target: 'api' }, { target: 'api' }],
    ['args as a map (numbers as strings)', { args: { VERSION: '1.2', RETRIES: 3 } }, { args: { VERSION: '1.2', RETRIES: '3' } }],
    ['args as a list', { args: ['VERSION=1.2', 'EMPTY=', 'WITH=EQ=SIGN'] }, { args: { VERSION: '1.2', EMPTY: '', WITH: 'EQ=SIGN' } }],
    ['labels as a list and a map', { labels: ['a=1', 'b'] }, { labels: { a: '1', b: '' } }],
    ['flags and network', { no_cache: true, pull: true, network: 'host' }, { noCache: true, pull: true, network: 'host' }],
    ['extra tags', { tags: ['hello-api:latest'] }, { extraTags: ['hello-api:latest'] }],
  ])('reads %s', (_what, build, expected) => {
    expect(inputs(build)!.inputs).toMatchObject({ service: 'api', image: 'hello-api:1', ...expected });
  });

  it('takes args given without a value from the environment, and leaves out those it has not', () => {
    const parsed = inputs({ args: ['FROM_ENV', 'MISSING'] }, {}, { FROM_ENV: 'yes' });
    expect(parsed!.inputs.args).toEqual({ FROM_ENV: 'yes' });
    expect(inputs({ args: { FROM_ENV: null } }, {}, { FROM_ENV: 'map' })!.inputs.args).toEqual({ FROM_ENV: 'map' });
  });

  it('warns once per key that does not change what is built', () => {
    const parsed = inputs({ context: '.', cache_from: ['x'], platforms: ['linux/arm64'] });
    expect(parsed!.warnings).toEqual([
      "service 'api': build: ignoring build.cache_from (the engine's local layer cache is used)",
      "service 'api': build: ignoring build.platforms (images are built for the engine's own platform)",
    ]);
  });

  it('refuses a service with build but no image to tag', () => {
    const err = refusal(() => buildInputsOf('worker', { build: '.' }, { projectDir }));
    expect(err.code).toBe('COMPOSE_BUILD_NO_IMAGE');
    expect(err.message).toBe("service 'worker' has a build section but no image name to tag the result with");
    expect(err.hint).toContain('image: worker:${VERSION}');
  });

  it.each([
    ['a git context', { context: 'https://github.com/acme/app.git#main' }, 'COMPOSE_BUILD_REMOTE_CONTEXT'],
    ['a git@ context', 'git@github.com:acme/app.git', 'COMPOSE_BUILD_REMOTE_CONTEXT'],
    ['a Dockerfile outside the context', { context: 'app', dockerfile: '../Dockerfile' }, 'BUILD_DOCKERFILE_OUTSIDE'],
    ['an inline Dockerfile', { dockerfile_inline: 'FROM x' }, 'COMPOSE_BUILD_UNSUPPORTED'],
    ['build secrets', { secrets: ['npmrc'] }, 'COMPOSE_BUILD_UNSUPPORTED'],
    ['an arg without a name', { args: ['=1'] }, 'COMPOSE_BUILD_INVALID'],
    ['args of the wrong type', { args: 'VERSION=1' }, 'COMPOSE_BUILD_INVALID'],
    ['a build that is a number', 3, 'COMPOSE_BUILD_INVALID'],
  ])('refuses %s', (_what, build, code) => {
    expect(refusal(() => inputs(build)).code).toBe(code);
  });

  it('names an unknown key with the near miss', () => {
    const err = refusal(() => inputs({ context: '.', dockerfle: 'Dockerfile' }));
    expect(err.message).toBe("service 'api': build has an unknown key 'dockerfle'");
    expect(err.hint).toBe("did you mean 'dockerfile'?");
  });

  it('accepts x- extension keys', () => {
    expect(inputs({ context: '.', 'x-note': 'kept for humans' })!.warnings).toEqual([]);
  });
});

describe('buildsOf', () => {
  it('lists the services that build, by name', () => {
    const builds = buildsOf(
      {
        worker: { image: 'hello-worker:1', build: { context: './app', target: 'worker' } },
        db: { image: 'postgres:16' },
        api: { image: 'hello-api:1', build: { context: './app', target: 'api' } },
      },
      { projectDir },
    );
    expect(builds.map((b) => [b.inputs.service, b.inputs.target, b.inputs.context])).toEqual([
      ['api', 'api', '/srv/hello/app'],
      ['worker', 'worker', '/srv/hello/app'],
    ]);
  });
});
