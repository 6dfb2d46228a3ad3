/**
 * `mp code worker|job|cron` as edits (stack/edit/kinds.ts, and the `remove` edit of stack/edit): lines
 * are only added or removed, every other byte stays, a second run changes nothing, only the first file
 * defining the service is touched, and the merged files convert to the worker, job or cron job asked for.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../sql/errors.ts';
import { planComposeEdits, type ComposeText } from '../../stack/edit/index.ts';
import { kindEdits, type KindRequest } from '../../stack/edit/kinds.ts';
import { loadStack } from '../../stack/index.ts';
import type { StackSpec } from '../../stack/types.ts';

const BASE = `# The shop.
services:
  api:   # public
    image: shop/api:1.4
    ports: ["8080:8080"]
  worker:   # consumes the emails queue
    image: shop/api:1.4
    command: ["node", "worker.js"]
    # for debugging only
    ports:
      - "9229:9229"   # inspector
    deploy:
      replicas: 2   # two consumers
      labels:
        team: mail

  cleanup:
    image: shop/api:1.4
    deploy: {replicas: 1, labels: {swarm.cronjob.enable: "true", swarm.cronjob.schedule: "0 * * * *", swarm.cronjob.replicas: "2"}}
`;

const OVERRIDE = `services:
  worker:
    environment:
      QUEUE: emails
  migrate:
    image: shop/api:1.4
    command: ["node", "migrate.js"]
`;

const files: ComposeText[] = [
  { path: 'compose.yaml', content: BASE },
  { path: 'compose.prod.yaml', content: OVERRIDE },
];

/** Plans `request` for `services` and returns the files after it. */
function mark(input: ComposeText[], services: string[], request: KindRequest): { after: ComposeText[]; changed: string[]; notes: string[] } {
  const marked = services.map((s) => kindEdits(input, s, request));
  const plan = planComposeEdits(
    input,
    marked.flatMap((m) => m.edits),
  );
  return { after: plan.files.map((f) => ({ path: f.path, content: f.after })), changed: plan.changes.map((c) => c.path), notes: marked.flatMap((m) => m.notes) };
}

function convert(input: ComposeText[]): StackSpec {
  return loadStack({
    name: 'shop',
    files: input.map((f) => ({ path: `/w/${f.path}`, content: f.content })),
    env: {},
    workingDir: '/w',
    readFile: () => '',
    safeDefaults: false,
  });
}

/** Lines of `after` not in `before` (in order), and lines of `before` not in `after`. */
function lineDiff(before: string, after: string): { added: string[]; removed: string[] } {
  const a = before.split('\n');
  const b = after.split('\n');
  // Longest common subsequence, small files.
  const dp = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--) for (let j = b.length - 1; j >= 0; j--) dp[i]![j] = a[i] === b[j] ? dp[i + 1]![j + 1]! + 1 : Math.max(dp[i + 1]![j]!, dp[i]![j + 1]!);
  const added: string[] = [];
  const removed: string[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    if (a[i] === b[j]) {
      i++;
      j++;
    } else if (dp[i + 1]![j]! >= dp[i]![j + 1]!) removed.push(a[i++]!);
    else added.push(b[j++]!);
  }
  return { added: [...added, ...b.slice(j)], removed: [...removed, ...a.slice(i)] };
}

describe('mp code worker as edits', () => {
  it('removes the ports, adds the label and restart policy, and keeps every other line and comment', () => {
    const { after, changed, notes } = mark(files, ['worker'], { kind: 'worker' });
    expect(changed).toEqual(['compose.yaml']);
    expect(after[1]!.content).toBe(OVERRIDE);
    expect(lineDiff(BASE, after[0]!.content)).toEqual({
      added: ['        org.minipaas.kind: worker', '      restart_policy:', '        condition: on-failure'],
      removed: ['    ports:', '      - "9229:9229"   # inspector'],
    });
    expect(after[0]!.content).toContain('    # for debugging only\n    deploy:\n      replicas: 2   # two consumers\n');
    expect(notes).toEqual(['worker: ports removed (a worker publishes none; a service that answers requests is not a worker)']);
  });

  it('converts to a service with no published port that restarts on failure, the override merged', () => {
    const spec = convert(mark(files, ['worker'], { kind: 'worker' }).after);
    const worker = spec.services.find((s) => s.key === 'worker')!.spec;
    expect(worker.Labels).toMatchObject({ 'org.minipaas.kind': 'worker', team: 'mail' });
    expect(worker.TaskTemplate?.RestartPolicy).toEqual({ Condition: 'on-failure' });
    expect(worker.EndpointSpec?.Ports ?? []).toEqual([]);
    expect((worker.TaskTemplate as { ContainerSpec?: { Env?: string[] } }).ContainerSpec?.Env).toEqual(['QUEUE=emails']);
    expect(spec.jobs?.map((j) => j.key)).toEqual(['cleanup']);
  });

  it('twice changes no byte', () => {
    const once = mark(files, ['worker'], { kind: 'worker' }).after;
    const twice = mark(once, ['worker'], { kind: 'worker' });
    expect(twice.changed).toEqual([]);
    expect(twice.after).toEqual(once);
  });

  it('refuses a later file that publishes ports for the service, naming it; nothing planned', () => {
    const withPorts = [files[0]!, { path: 'compose.prod.yaml', content: `${OVERRIDE.replace('      QUEUE: emails\n', '      QUEUE: emails\n    ports: ["9000:9000"]\n')}` }];
    expect(() => kindEdits(withPorts, 'worker', { kind: 'worker' })).toThrow(
      'compose.prod.yaml also sets services.worker.ports, which would override what `mp code worker` writes in compose.yaml (the first file defining worker)',
    );
  });
});

describe('mp code job as edits', () => {
  it('a service of the second file: only that file changes; it becomes a template no deploy starts', () => {
    const { after, changed } = mark(files, ['migrate'], { kind: 'job', timeoutSeconds: 120 });
    expect(changed).toEqual(['compose.prod.yaml']);
    expect(after[0]!.content).toBe(BASE);
    expect(lineDiff(OVERRIDE, after[1]!.content).added).toEqual([
      '    deploy:',
      '      labels:',
      '        org.minipaas.kind: job',
      '        org.minipaas.job.timeout: "120"',
      '      restart_policy:',
      '        condition: none',
    ]);
    const spec = convert(after);
    expect(spec.services.map((s) => s.key)).not.toContain('migrate');
    expect(spec.jobs?.filter((j) => j.key === 'migrate').map((j) => ({ key: j.key, kind: j.kind, timeoutSeconds: j.timeoutSeconds, replicas: j.replicas }))).toEqual([
      { key: 'migrate', kind: 'job', timeoutSeconds: 120, replicas: 1 },
    ]);
  });

  it('drops deploy.replicas (in a flow mapping too) and the swarm-cronjob labels, saying so', () => {
    const { after, notes } = mark(files, ['cleanup'], { kind: 'job' });
    expect(after[0]!.content).toContain('    deploy: {labels: {org.minipaas.kind: job}, restart_policy: { condition: none }}\n');
    expect(notes).toEqual([
      'cleanup: swarm-cronjob labels removed; a job has no schedule (each run is now one task, not swarm.cronjob.replicas 2)',
      'cleanup: deploy.replicas removed (a deploy does not start a job; each run is one task)',
    ]);
    expect(convert(after).jobs?.[0]).toMatchObject({ key: 'cleanup', kind: 'job', source: 'minipaas' });
  });
});

describe('mp code cron as edits', () => {
  const request: KindRequest = { kind: 'cron', schedule: '*/5 * * * *', timezone: 'Europe/Berlin', overlap: 'replace', catchUp: 'none' };

  it('converts to the schedule asked for; twice changes no byte; a later run changes only what it names', () => {
    const once = mark(files, ['worker'], request);
    const spec = convert(once.after);
    expect(spec.jobs?.find((j) => j.key === 'worker')).toMatchObject({
      kind: 'cron',
      source: 'minipaas',
      schedule: { expression: '*/5 * * * *', timezone: 'Europe/Berlin', overlap: 'replace', catchUp: 'none' },
    });
    expect(lineDiff(BASE, once.after[0]!.content)).toEqual({
      added: [
        '        org.minipaas.kind: cron',
        '        org.minipaas.cron.schedule: "*/5 * * * *"',
        '        org.minipaas.cron.timezone: Europe/Berlin',
        '        org.minipaas.cron.overlap: replace',
        '        org.minipaas.cron.catch-up: none',
        '      restart_policy:',
        '        condition: none',
      ],
      removed: ['      replicas: 2   # two consumers'],
    });
    expect(mark(once.after, ['worker'], request).changed).toEqual([]);
    const later = mark(once.after, ['worker'], { kind: 'cron', schedule: '@hourly' });
    expect(lineDiff(once.after[0]!.content, later.after[0]!.content)).toEqual({
      added: ['        org.minipaas.cron.schedule: "@hourly"'],
      removed: ['        org.minipaas.cron.schedule: "*/5 * * * *"'],
    });
  });

  it('replaces swarm-cronjob labels by its own', () => {
    const { after, notes } = mark(files, ['cleanup'], { kind: 'cron', schedule: '0 * * * *', overlap: 'forbid' });
    expect(notes[0]).toBe("cleanup: swarm-cronjob labels removed; MiniPaaS's cron labels replace them (each run is now one task, not swarm.cronjob.replicas 2)");
    expect(convert(after).jobs?.[0]).toMatchObject({ key: 'cleanup', source: 'minipaas', replicas: 1, schedule: { expression: '0 * * * *', overlap: 'forbid', catchUp: 'latest' } });
  });

  it('a cron job marked as a worker loses its schedule and timeout labels', () => {
    const cronned = mark(files, ['api'], { ...request, timeoutSeconds: 30 }).after;
    const worker = mark(cronned, ['api'], { kind: 'worker' });
    expect(worker.after[0]!.content).not.toMatch(/org\.minipaas\.(cron|job)\./);
    expect(worker.notes).toEqual([
      'api: org.minipaas.cron.schedule, org.minipaas.cron.timezone, org.minipaas.cron.overlap, org.minipaas.cron.catch-up, org.minipaas.job.timeout removed (a worker has no schedule)',
      'api: ports removed (a worker publishes none; a service that answers requests is not a worker)',
    ]);
    expect(convert(worker.after).services.find((s) => s.key === 'api')).toBeDefined();
  });
});

describe('what is refused, before anything is planned', () => {
  it('a service no file defines: one error listing the services, with the near miss', () => {
    let err: unknown;
    try {
      kindEdits(files, 'migrat', { kind: 'job' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toBe("service 'migrat' is not defined in compose.yaml or compose.prod.yaml; defined services: api, cleanup, migrate, worker");
    expect((err as ConfigError).hint).toBe("did you mean 'migrate'?");
  });

  it('labels written as a key=value list', () => {
    const list = [{ path: 'c.yaml', content: 'services:\n  w:\n    image: x\n    deploy:\n      labels: [a=b]\n' }];
    expect(() => kindEdits(list, 'w', { kind: 'worker' })).toThrow('c.yaml: services.w.deploy.labels is a list of key=value; `mp code worker` sets labels in a mapping');
  });

  it('a later file that sets the kind label for the service', () => {
    const later = [files[0]!, { path: 'compose.prod.yaml', content: 'services:\n  worker:\n    deploy:\n      labels: ["org.minipaas.kind=job"]\n' }];
    expect(() => kindEdits(later, 'worker', { kind: 'cron', schedule: '@daily' })).toThrow(
      'compose.prod.yaml also sets services.worker.deploy.labels.org.minipaas.kind, which would override what `mp code cron` writes in compose.yaml (the first file defining worker)',
    );
  });
});

describe('the remove edit', () => {
  const one = (content: string, path: string[]): string => planComposeEdits([{ path: 'c.yaml', content }], [{ op: 'remove', service: 'w', path }]).files[0]!.after;
  it.each<[string, string, string[], string]>([
    ['a block key with its list and comment', 'services:\n  w:\n    image: x\n    ports:\n      - 80   # web\n    init: true\n', ['ports'], 'services:\n  w:\n    image: x\n    init: true\n'],
    ['the last key of the file, no final newline', 'services:\n  w:\n    image: x\n    ports: [80]', ['ports'], 'services:\n  w:\n    image: x\n'],
    ['a mapping it empties goes too', 'services:\n  w:\n    image: x\n    deploy:\n      replicas: 2\n    init: true\n', ['deploy', 'replicas'], 'services:\n  w:\n    image: x\n    init: true\n'],
    ['first of a flow mapping', 'services:\n  w: {image: x, ports: [80], init: true}\n', ['image'], 'services:\n  w: {ports: [80], init: true}\n'],
    ['last of a flow mapping', 'services:\n  w: {image: x, ports: [80]}\n', ['ports'], 'services:\n  w: {image: x}\n'],
    ['absent: nothing changes', 'services:\n  w:\n    image: x\n', ['deploy', 'replicas'], 'services:\n  w:\n    image: x\n'],
  ])('%s', (_name, content, path, expected) => {
    expect(one(content, path)).toBe(expected);
  });
});
