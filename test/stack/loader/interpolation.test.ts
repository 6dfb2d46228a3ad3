import { describe, expect, it } from 'vitest';
import { interpolateConfig, substitute } from '../../../stack/loader/interpolation.ts';
import { ConfigError } from '../../../sql/errors.ts';

const env = { NAME: 'web', EMPTY: '', TAG: '1.2' };

describe('substitute', () => {
  it.each([
    ['${NAME}', 'web'],
    ['$NAME', 'web'],
    ['$NAME-x', 'web-x'],
    ['${UNSET}', ''],
    ['${UNSET:-dflt}', 'dflt'],
    ['${EMPTY:-dflt}', 'dflt'],
    ['${EMPTY-dflt}', ''],
    ['${UNSET-dflt}', 'dflt'],
    ['${NAME:-dflt}', 'web'],
    ['${UNSET:-${TAG}}', '1.2'],
    ['$$NAME', '$NAME'],
    ['$${NAME}', '${NAME}'],
    ['cost: $$5', 'cost: $5'],
    ['${NAME:?}', 'web'],
    ['${EMPTY?}', ''],
    ['img:${TAG}@x', 'img:1.2@x'],
  ])('%s -> %s', (template, expected) => {
    expect(substitute(template, env)).toBe(expected);
  });

  it.each([
    ['${UNSET:?set UNSET}', /required variable UNSET is not set: set UNSET/],
    ['${EMPTY:?must not be empty}', /required variable EMPTY is empty/],
    ['${UNSET?}', /required variable UNSET is not set/],
  ])('%s fails', (template, message) => {
    expect(() => substitute(template, env)).toThrow(message);
  });

  it('refuses malformed templates', () => {
    expect(() => substitute('${', env)).toThrow(/unclosed/);
    expect(() => substitute('$ x', env)).toThrow(/variable name/);
    expect(() => substitute('${A:x}', env)).toThrow(/invalid variable/);
  });
});

describe('interpolateConfig', () => {
  it('converts typed paths after substitution, as docker/cli does', () => {
    const out = interpolateConfig(
      { services: { web: { deploy: { replicas: '${N}' }, read_only: '${RO}', ports: [{ target: '${P}', published: '8000-8001' }], image: '${N}' } } },
      { N: '3', RO: 'yes', P: '80' },
      'c.yaml',
    );
    expect(out).toEqual({ services: { web: { deploy: { replicas: 3 }, read_only: true, ports: [{ target: 80, published: '8000-8001' }], image: '3' } } });
  });

  it('names the file and key path of a failure', () => {
    const run = (): unknown => interpolateConfig({ services: { web: { deploy: { replicas: 'x' } } } }, {}, 'c.yaml');
    expect(run).toThrow(ConfigError);
    expect(run).toThrow('c.yaml: services.web.deploy.replicas: must be integer');
    expect(() => interpolateConfig({ services: { web: { image: '${T:?need T}' } } }, {}, 'c.yaml')).toThrow(
      'c.yaml: services.web.image: required variable T is not set: need T',
    );
  });
});
