import { describe, expect, it } from 'vitest';
import { loadCompose } from '../../../stack/loader/index.ts';
import { parseShortPort, parseShortVolume, shellSplit } from '../../../stack/loader/normalize.ts';

const load = (...contents: string[]): ReturnType<typeof loadCompose> =>
  loadCompose({ files: contents.map((content, i) => ({ path: `f${i}.yaml`, content })), env: { TAG: '2' }, workingDir: '/w' });

describe('YAML errors', () => {
  it.each([
    ['services:\n  web: [\n', /^f0\.yaml:3:1: /],
    ['services:\n  web: {}\n  web: {}\n', /^f0\.yaml:3:3: Map keys must be unique/],
    ['- a\n', /f0\.yaml: the top level must be a mapping/],
  ])('%j', (content, message) => {
    expect(() => load(content)).toThrow(message);
  });
});

describe('merging files in order', () => {
  const base = `
services:
  web:
    image: a:\${TAG}
    command: sleep 1
    environment: [A=1, B=2]
    ports: ["8080:80", "9090:90"]
    volumes: ["data:/data", "./x:/x"]
    secrets: [s1]
    cap_add: [NET_ADMIN]
    labels: { one: "1" }
    healthcheck: { test: ["CMD", "a"], interval: 10s }
    deploy: { replicas: 1, resources: { limits: { memory: 1g } } }
`;
  const override = `
services:
  web:
    image: b
    command: ["sleep", "2"]
    environment: { B: "3", C: "4" }
    ports:
      - target: 80
        published: 8080
        protocol: tcp
        mode: host
    volumes: ["other:/data"]
    secrets: [{ source: s2, target: s1 }]
    cap_add: [SYS_TIME, NET_ADMIN]
    labels: [two=2]
    healthcheck: { test: ["CMD", "b"] }
    deploy: { replicas: 3, resources: { limits: { cpus: "1" } } }
  worker:
    image: w
`;
  const m = load(base, override);
  const web = m.services.web!;

  it.each<[string, unknown]>([
    ['image', 'b'],
    ['command', ['sleep', '2']],
    ['environment', { A: '1', B: '3', C: '4' }],
    ['labels', { one: '1', two: '2' }],
    ['cap_add', ['NET_ADMIN', 'SYS_TIME']],
    ['healthcheck', { test: ['CMD', 'b'], interval: '10s' }],
    ['deploy', { replicas: 3, resources: { limits: { memory: '1g', cpus: '1' } } }],
    [
      'ports',
      [
        { target: 80, published: 8080, protocol: 'tcp', mode: 'host' },
        { target: 90, published: 9090, protocol: 'tcp', mode: 'ingress' },
      ],
    ],
    [
      'volumes',
      [
        { type: 'volume', source: 'other', target: '/data' },
        { type: 'bind', source: './x', target: '/x' },
      ],
    ],
    ['secrets', [{ source: 's2', target: 's1' }]],
  ])('%s', (key, expected) => {
    expect(web[key]).toEqual(expected);
  });

  it('adds services and keeps where each came from', () => {
    expect(Object.keys(m.services).sort()).toEqual(['web', 'worker']);
    expect(m.origins).toEqual({ web: 'f0.yaml', worker: 'f1.yaml' });
  });

  it('!reset removes and !override replaces', () => {
    const r = load(base, 'services:\n  web:\n    ports: !reset []\n    environment:\n      A: !reset null\n    cap_add: !override [SYS_TIME]\n');
    expect(r.services.web!.ports).toBeUndefined();
    expect(r.services.web!.environment).toEqual({ B: '2' });
    expect(r.services.web!.cap_add).toEqual(['SYS_TIME']);
  });
});

describe('short syntax', () => {
  it.each<[string, unknown]>([
    ['80', [{ target: 80, protocol: 'tcp', mode: 'ingress' }]],
    ['8080:80', [{ target: 80, published: 8080, protocol: 'tcp', mode: 'ingress' }]],
    ['127.0.0.1:8080:80/UDP', [{ target: 80, published: 8080, protocol: 'udp', mode: 'ingress', host_ip: '127.0.0.1' }]],
    [
      '8000-8001:80-81',
      [
        { target: 80, published: 8000, protocol: 'tcp', mode: 'ingress' },
        { target: 81, published: 8001, protocol: 'tcp', mode: 'ingress' },
      ],
    ],
    [
      '8000-8001:80',
      [
        { target: 80, published: 8000, protocol: 'tcp', mode: 'ingress' },
        { target: 80, published: 8001, protocol: 'tcp', mode: 'ingress' },
      ],
    ],
  ])('port %s', (spec, expected) => {
    expect(parseShortPort(spec)).toEqual(expected);
  });

  it('refuses bad ports', () => {
    expect(() => parseShortPort('80-81:90-92')).toThrow(/different sizes/);
    expect(() => parseShortPort('x:80')).toThrow(/invalid published port/);
  });

  it.each<[string, unknown]>([
    ['/data', { type: 'volume', target: '/data' }],
    ['data:/data', { type: 'volume', source: 'data', target: '/data' }],
    ['./d:/data:ro', { type: 'bind', source: './d', target: '/data', read_only: true }],
    ['~/d:/data:rw,rshared', { type: 'bind', source: '~/d', target: '/data', read_only: false, bind: { propagation: 'rshared' } }],
    ['vol:/data:nocopy', { type: 'volume', source: 'vol', target: '/data', volume: { nocopy: true } }],
    // as docker/cli reads it: a one-letter source is a Windows drive
    ['v:/data:nocopy', { type: 'bind', source: 'v:/data', target: 'nocopy' }],
  ])('volume %s', (spec, expected) => {
    expect(parseShortVolume(spec)).toEqual(expected);
  });

  it.each<[string, string[]]>([
    ['sleep 3600', ['sleep', '3600']],
    [`sh -c 'echo "a b"' x`, ['sh', '-c', 'echo "a b"', 'x']],
    ['echo "a \\"b\\"" c\\ d', ['echo', 'a "b"', 'c d']],
    ['  spaced   out  ', ['spaced', 'out']],
  ])('command %j', (line, expected) => {
    expect(shellSplit(line)).toEqual(expected);
  });
});

describe('keys docker stack deploy refuses', () => {
  it('names them', () => {
    expect(() => load('services:\n  web:\n    image: a\n    mem_limit: 1g\n')).toThrow(/services\.web uses 'mem_limit'/);
  });
});
