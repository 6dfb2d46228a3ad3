/** Each converter concept, table-driven: a Compose fragment in, the Engine API fields out. */
import { describe, expect, it } from 'vitest';
import { loadStack } from '../../../stack/index.ts';
import { parseBytes, parseCpus, parseDuration } from '../../../stack/convert/units.ts';
import { parseEnvFile } from '../../../stack/convert/environment.ts';
import type { StackSpec } from '../../../stack/types.ts';

const files: Record<string, string> = { '/w/app.env': 'A=1\n# c\nB="q"\nSHELLVAR\nMISSING\n', '/w/s.txt': 'secret' };

function stack(yaml: string, opts: { safeDefaults?: boolean; env?: Record<string, string> } = {}): StackSpec {
  return loadStack({
    name: 'st',
    files: [{ path: '/w/compose.yaml', content: yaml }],
    env: opts.env ?? { SHELLVAR: 'sh', HOME: '/home/u' },
    workingDir: '/w',
    readFile: (p) => {
      const f = files[p];
      if (f === undefined) throw new Error('ENOENT');
      return f;
    },
    safeDefaults: opts.safeDefaults ?? false,
  });
}

/** The spec of service `web` from a service body (indented YAML lines under `web:`). */
function web(body: string, opts?: { safeDefaults?: boolean }): Record<string, unknown> {
  const yaml = `services:\n  web:\n    image: img\n${body.replace(/^/gm, '    ')}\nvolumes: { data: {}, ext: { external: true } }\nsecrets: { s: { file: ./s.txt } }\nconfigs: { c: { file: ./s.txt } }\nnetworks: { front: {}, out: { external: true, name: shared } }\n`;
  return stack(yaml, opts).services[0]!.spec as Record<string, unknown>;
}

const get = (o: unknown, path: string): unknown => path.split('.').reduce<unknown>((v, k) => (v as Record<string, unknown> | undefined)?.[k], o);

describe('units', () => {
  it.each<[string, number]>([
    ['1m30s', 90e9],
    ['500ms', 5e8],
    ['1h', 3600e9],
    ['1.5s', 1.5e9],
    ['0', 0],
    ['10us', 1e4],
  ])('duration %s', (s, ns) => expect(parseDuration(s)).toBe(ns));
  it.each<[string | number, number]>([
    ['512m', 512 * 1024 ** 2],
    ['1g', 1024 ** 3],
    ['64MiB', 64 * 1024 ** 2],
    ['100kb', 102400],
    [1024, 1024],
  ])('bytes %s', (s, b) => expect(parseBytes(s)).toBe(b));
  it.each<[string, number]>([
    ['0.5', 5e8],
    ['2', 2e9],
    ['.25', 2.5e8],
  ])('cpus %s', (s, n) => expect(parseCpus(s)).toBe(n));
  it('refuses bad values', () => {
    expect(() => parseDuration('10')).toThrow(/not a duration/);
    expect(() => parseBytes('lots')).toThrow(/not a size/);
    expect(() => parseCpus('0.0000000001')).toThrow(/too precise/);
  });
});

describe('service fields', () => {
  it.each<[string, string, unknown]>([
    ['names and labels', 'deploy: { labels: { a: "1" } }', { Name: 'st_web', Labels: { a: '1', 'com.docker.stack.namespace': 'st', 'com.docker.stack.image': 'img' } }],
    ['command split like a shell', 'command: sleep "1 2"', { 'TaskTemplate.ContainerSpec.Args': ['sleep', '1 2'] }],
    ['entrypoint is Command', 'entrypoint: [sh, -c]', { 'TaskTemplate.ContainerSpec.Command': ['sh', '-c'] }],
    [
      'environment, env_file and the shell',
      'env_file: app.env\nenvironment: [A=2, SHELLVAR, EMPTY=, UNSET]',
      { 'TaskTemplate.ContainerSpec.Env': ['A=2', 'B="q"', 'EMPTY=', 'SHELLVAR=sh', 'UNSET'] },
    ],
    ['container labels', 'labels: [x=1]', { 'TaskTemplate.ContainerSpec.Labels': { x: '1', 'com.docker.stack.namespace': 'st' } }],
    ['extra_hosts in ip-host order', 'extra_hosts: ["db:10.0.0.1", "v6=[::1]"]', { 'TaskTemplate.ContainerSpec.Hosts': ['10.0.0.1 db', '::1 v6'] }],
    ['user, dir, hostname', 'user: "1:2"\nworking_dir: /s\nhostname: h', { 'TaskTemplate.ContainerSpec.User': '1:2', 'TaskTemplate.ContainerSpec.Dir': '/s', 'TaskTemplate.ContainerSpec.Hostname': 'h' }],
    ['stop grace and signal', 'stop_grace_period: 1m\nstop_signal: SIGINT', { 'TaskTemplate.ContainerSpec.StopGracePeriod': 60e9, 'TaskTemplate.ContainerSpec.StopSignal': 'SIGINT' }],
    ['init', 'init: true', { 'TaskTemplate.ContainerSpec.Init': true }],
    ['capabilities', 'cap_add: [net_admin]\ncap_drop: [ALL]', { 'TaskTemplate.ContainerSpec.CapabilityAdd': ['CAP_NET_ADMIN'], 'TaskTemplate.ContainerSpec.CapabilityDrop': ['ALL'] }],
    [
      'ulimits',
      'ulimits: { nproc: 10, nofile: { soft: 1, hard: 2 } }',
      { 'TaskTemplate.ContainerSpec.Ulimits': [{ Name: 'nofile', Soft: 1, Hard: 2 }, { Name: 'nproc', Soft: 10, Hard: 10 }] },
    ],
    ['sysctls', 'sysctls: [a.b=1]', { 'TaskTemplate.ContainerSpec.Sysctls': { 'a.b': '1' } }],
    ['logging', 'logging: { driver: local, options: { max-file: 3 } }', { 'TaskTemplate.LogDriver': { Name: 'local', Options: { 'max-file': '3' } } }],
    ['dns', 'dns: 1.1.1.1', { 'TaskTemplate.ContainerSpec.DNSConfig': { Nameservers: ['1.1.1.1'], Search: undefined } }],
  ])('%s', (_name, body, expected) => {
    const spec = web(body);
    for (const [path, value] of Object.entries(expected as Record<string, unknown>)) expect(get(spec, path), path).toEqual(value);
  });
});

describe('ports', () => {
  it('sorts by published port; short ports are ingress, long ports leave defaults to the engine', () => {
    expect(web('ports: ["9000:90", {target: 80, published: 8000, mode: host}, 70]').EndpointSpec).toEqual({
      Mode: '',
      Ports: [
        { Protocol: 'tcp', TargetPort: 70, PublishedPort: 0, PublishMode: 'ingress' },
        { Protocol: '', TargetPort: 80, PublishedPort: 8000, PublishMode: 'host' },
        { Protocol: 'tcp', TargetPort: 90, PublishedPort: 9000, PublishMode: 'ingress' },
      ],
    });
    expect(get(web('deploy: { endpoint_mode: DNSRR }'), 'EndpointSpec.Mode')).toBe('dnsrr');
  });
});

describe('mounts', () => {
  it.each<[string, unknown]>([
    ['data:/d', { Type: 'volume', Source: 'st_data', Target: '/d', ReadOnly: false, VolumeOptions: { Labels: { 'com.docker.stack.namespace': 'st' } } }],
    ['ext:/d:ro', { Type: 'volume', Source: 'ext', Target: '/d', ReadOnly: true, VolumeOptions: {} }],
    ['/anon', { Type: 'volume', Target: '/anon', ReadOnly: false }],
    ['./site:/s', { Type: 'bind', Source: '/w/site', Target: '/s', ReadOnly: false }],
    ['~/x:/x:rshared', { Type: 'bind', Source: '/home/u/x', Target: '/x', ReadOnly: false, BindOptions: { Propagation: 'rshared' } }],
    ['{type: tmpfs, target: /t, tmpfs: {size: 1m}}', { Type: 'tmpfs', Target: '/t', ReadOnly: false, TmpfsOptions: { SizeBytes: 1048576 } }],
  ])('%s', (entry, expected) => {
    expect(get(web(`volumes: [${entry}]`), 'TaskTemplate.ContainerSpec.Mounts')).toEqual([expected]);
  });
  it('refuses an undefined named volume', () => {
    expect(() => web('volumes: ["nope:/d"]')).toThrow(/volume 'nope' is not defined/);
  });
});

describe('networks', () => {
  it('default network, aliases, external names, sorted by target', () => {
    expect(get(web(''), 'TaskTemplate.Networks')).toEqual([{ Target: 'st_default', Aliases: ['web'] }]);
    expect(get(web('networks: { out: {}, front: { aliases: [a] } }'), 'TaskTemplate.Networks')).toEqual([
      { Target: 'shared', Aliases: ['web'] },
      { Target: 'st_front', Aliases: ['a', 'web'] },
    ]);
    expect(() => web('networks: [nope]')).toThrow(/network 'nope' is not defined/);
  });
  it('creates only the networks services use, overlay by default', () => {
    const s = stack('services:\n  a: { image: i, networks: [x] }\nnetworks: { x: { internal: true, labels: [k=v] }, unused: {} }\n');
    expect(s.networks).toEqual([
      { key: 'x', name: 'st_x', external: false, spec: { Name: 'st_x', Driver: 'overlay', Internal: true, Labels: { k: 'v', 'com.docker.stack.namespace': 'st' } } },
    ]);
  });
});

describe('secrets and configs', () => {
  it('references with defaults, and objects with content and digest', () => {
    const spec = web('secrets: [s, { source: s, target: /x, mode: 0400, uid: "5" }]\nconfigs: [c]');
    expect(get(spec, 'TaskTemplate.ContainerSpec.Secrets')).toEqual([
      { File: { Name: 's', UID: '0', GID: '0', Mode: 0o444 }, SecretName: 'st_s' },
      { File: { Name: '/x', UID: '5', GID: '0', Mode: 0o400 }, SecretName: 'st_s' },
    ]);
    expect(get(spec, 'TaskTemplate.ContainerSpec.Configs')).toEqual([{ File: { Name: 'c', UID: '0', GID: '0', Mode: 0o444 }, ConfigName: 'st_c' }]);
    const s = stack('services: {}\nsecrets: { s: { file: s.txt, labels: { a: b } }, e: { external: true } }\n');
    expect(s.secrets).toEqual([
      { key: 'e', name: 'e', external: true },
      {
        key: 's',
        name: 'st_s',
        external: false,
        spec: { Name: 'st_s', Labels: { a: 'b', 'com.docker.stack.namespace': 'st' } },
        data: Buffer.from('secret').toString('base64'),
        digest: '2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b',
      },
    ]);
    expect(() => web('secrets: [nope]')).toThrow(/secret 'nope' is not defined/);
  });
});

describe('deploy', () => {
  it.each<[string, string, unknown]>([
    ['replicas', 'deploy: { replicas: 3 }', { Mode: { Replicated: { Replicas: 3 } } }],
    ['global', 'deploy: { mode: global }', { Mode: { Global: {} } }],
    ['replicated-job', 'deploy: { mode: replicated-job, replicas: 2 }', { Mode: { ReplicatedJob: { MaxConcurrent: 2, TotalCompletions: 2 } } }],
    ['global-job', 'deploy: { mode: global-job }', { Mode: { GlobalJob: {} } }],
    [
      'resources',
      'deploy: { resources: { limits: { cpus: "0.5", memory: 1g, pids: 9 }, reservations: { memory: 1m, generic_resources: [{ discrete_resource_spec: { kind: gpu, value: 2 } }] } } }',
      {
        'TaskTemplate.Resources': {
          Limits: { NanoCPUs: 5e8, MemoryBytes: 1024 ** 3, Pids: 9 },
          Reservations: { NanoCPUs: 0, MemoryBytes: 1024 ** 2, GenericResources: [{ DiscreteResourceSpec: { Kind: 'gpu', Value: 2 } }] },
        },
      },
    ],
    ['restart_policy', 'deploy: { restart_policy: { condition: on-failure, delay: 5s, max_attempts: 3 } }', { 'TaskTemplate.RestartPolicy': { Condition: 'on-failure', Delay: 5e9, MaxAttempts: 3 } }],
    ['restart: always', 'restart: always', { 'TaskTemplate.RestartPolicy': { Condition: 'any' } }],
    ['restart: on-failure:2', 'restart: on-failure:2', { 'TaskTemplate.RestartPolicy': { Condition: 'on-failure', MaxAttempts: 2 } }],
    [
      'update_config',
      'deploy: { update_config: { delay: 1s, order: start-first } }',
      { UpdateConfig: { Parallelism: 1, Delay: 1e9, FailureAction: '', Monitor: 0, MaxFailureRatio: 0, Order: 'start-first' } },
    ],
    [
      'placement',
      'deploy: { placement: { constraints: [node.role==manager], preferences: [{ spread: node.labels.az }], max_replicas_per_node: 1 } }',
      { 'TaskTemplate.Placement': { Constraints: ['node.role==manager'], Preferences: [{ Spread: { SpreadDescriptor: 'node.labels.az' } }], MaxReplicas: 1 } },
    ],
  ])('%s', (_name, body, expected) => {
    const spec = web(body);
    for (const [path, value] of Object.entries(expected as Record<string, unknown>)) expect(get(spec, path), path).toEqual(value);
  });

  it('refuses replicas with global mode', () => {
    expect(() => web('deploy: { mode: global, replicas: 2 }')).toThrow(/replicas can only be used/);
  });
});

describe('safe defaults', () => {
  it('fill only what the file leaves unsaid', () => {
    const none = web('', { safeDefaults: true });
    expect(none.UpdateConfig).toEqual({ Parallelism: 1, Delay: 0, FailureAction: 'rollback', Monitor: 10e9, MaxFailureRatio: 0, Order: 'start-first' });
    expect(none.RollbackConfig).toEqual({ Parallelism: 1, Delay: 0, FailureAction: 'pause', Monitor: 10e9, MaxFailureRatio: 0, Order: 'start-first' });
    const partial = web('deploy: { update_config: { order: stop-first, parallelism: 2 } }', { safeDefaults: true });
    expect(partial.UpdateConfig).toEqual({ Parallelism: 2, Delay: 0, FailureAction: 'rollback', Monitor: 10e9, MaxFailureRatio: 0, Order: 'stop-first' });
    expect(get(web('ports: [{ target: 80, published: 80, mode: host }]', { safeDefaults: true }), 'UpdateConfig.Order')).toBe('stop-first');
    expect(web('deploy: { mode: replicated-job }', { safeDefaults: true }).UpdateConfig).toBeUndefined();
    expect(web('').UpdateConfig).toBeUndefined();
  });
});

describe('warnings and names', () => {
  it('one line per ignored key', () => {
    const s = stack('services:\n  a: { image: i, build: ., depends_on: [b] }\n  b: { image: i, build: . }\n');
    expect(s.warnings).toEqual([
      "ignoring unsupported option 'build' (services: a, b): Swarm runs images; build them first (mp deploy build)",
      "ignoring unsupported option 'depends_on' (services: a): Swarm starts services in no particular order; use health checks and retries",
    ]);
  });
  it('refuses a missing image and bad stack names', () => {
    expect(() => stack('services:\n  a: { build: . }\n')).toThrow(/services\.a: no image specified/);
    expect(() => loadStack({ name: 'bad name', files: [], env: {}, workingDir: '/', readFile: () => '' })).toThrow(/stack name 'bad name' is not valid/);
  });
  it('env files as docker reads them', () => {
    expect(() => parseEnvFile('A B=1\n', {}, 'f')).toThrow(/contains whitespace/);
    expect(parseEnvFile('\uFEFFA="q" \nC\n', { C: 'c' }, 'f')).toEqual([
      ['A', '"q" '],
      ['C', 'c'],
    ]);
  });
});
