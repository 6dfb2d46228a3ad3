import { describe, expect, it } from 'vitest';
import { schemaErrors, validateCompose } from '../../stack/schema/validate.ts';

describe('Compose schema errors: one line each, key path and what is allowed', () => {
  it.each<[unknown, string[]]>([
    [{ services: { web: { image: 'a', imag: 'b' } } }, ["services.web: 'imag' is not allowed (did you mean 'image'?)"]],
    [{ services: { web: { deploy: { replicas: 1, mode: 'global', labels: 7 } } } }, ['services.web.deploy.labels: must be object or array']],
    [{ services: { web: { deploy: { mode: 3 } } } }, ['services.web.deploy.mode: must be string']],
    [{ services: { web: { deploy: { replicas: true } } } }, ['services.web.deploy.replicas: must be integer or string']],
    [{ services: { web: { deploy: { restart_policy: { condition: 'sometimes' } } } } }, []],
    [{ servics: {} }, ["(top level): 'servics' is not allowed (did you mean 'services'?); allowed: version, name, include, services, models, networks, volumes, secrets, configs"]],
    [{ services: { web: { ports: [{ targt: 80 }] } } }, ["services.web.ports[0]: 'targt' is not allowed (did you mean 'target'?); allowed: name, mode, host_ip, target, published, protocol, app_protocol"]],
  ])('%j', (config, expected) => {
    const errors = schemaErrors(config);
    expect(errors).toEqual(expected);
  });

  it('throws one ConfigError naming the file', () => {
    expect(() => validateCompose({ services: { web: { imag: 'x' } } }, 'compose.yaml')).toThrow(
      /^compose\.yaml does not follow the Compose specification:\n {2}services\.web: 'imag' is not allowed/,
    );
  });
});
