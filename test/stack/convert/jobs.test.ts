/**
 * Job and cron markings (stack/convert/jobs.ts), table-driven: service labels in, the job template out,
 * or one exact error line (and its hint) naming the label and what is wrong with it.
 */
import { describe, expect, it } from 'vitest';
import { loadStack } from '../../../stack/index.ts';
import { ConfigError } from '../../../sql/errors.ts';
import type { StackSpec } from '../../../stack/types.ts';

/** The stack of one service `web` with these `deploy.labels`. */
function withLabels(labels: Record<string, string>, env: Record<string, string> = {}): StackSpec {
  const lines = Object.entries(labels).map(([k, v]) => `        ${k}: ${JSON.stringify(v)}`);
  const yaml = ['services:', '  web:', '    image: img', '    deploy:', '      labels:', ...lines, ''].join('\n');
  return loadStack({ name: 'st', files: [{ path: '/w/compose.yaml', content: yaml }], env, workingDir: '/w', readFile: () => '', safeDefaults: false });
}

function failure(labels: Record<string, string>, env?: Record<string, string>): ConfigError {
  try {
    withLabels(labels, env);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

const L = 'services.web.deploy.labels';
const cron = (schedule: string, more: Record<string, string> = {}): Record<string, string> => ({
  'org.minipaas.kind': 'cron',
  'org.minipaas.cron.schedule': schedule,
  ...more,
});
const RANGES = 'fields are minute (0-59), hour (0-23), day of month (1-31), month (1-12 or jan-dec), weekday (0-7 or sun-sat); macros: @yearly @monthly @weekly @daily @hourly';

describe('job labels that do not convert', () => {
  it.each<[string, Record<string, string>, string, string]>([
    ['minute out of range', cron('61 * * * *'), `${L}.org.minipaas.cron.schedule: invalid cron expression '61 * * * *': minute field '61' is out of range (0-59)`, RANGES],
    ['hour out of range', cron('0 24 * * *'), `${L}.org.minipaas.cron.schedule: invalid cron expression '0 24 * * *': hour field '24' is out of range (0-23)`, RANGES],
    ['day out of range (croner would say 31)', cron('0 0 32 * *'), `${L}.org.minipaas.cron.schedule: invalid cron expression '0 0 32 * *': day of month field '32' is out of range (1-31)`, RANGES],
    ['month out of range', cron('0 0 1 13 *'), `${L}.org.minipaas.cron.schedule: invalid cron expression '0 0 1 13 *': month field '13' is out of range (1-12 or jan-dec)`, RANGES],
    ['weekday out of range', cron('0 0 * * 8'), `${L}.org.minipaas.cron.schedule: invalid cron expression '0 0 * * 8': weekday field '8' is out of range (0-7 or sun-sat)`, RANGES],
    ['a range out of range', cron('1-70 * * * *'), `${L}.org.minipaas.cron.schedule: invalid cron expression '1-70 * * * *': minute field '1-70' is out of range (0-59)`, RANGES],
    ['illegal characters', cron('0 x * * *'), `${L}.org.minipaas.cron.schedule: invalid cron expression '0 x * * *': hour field 'x': contains illegal characters`, RANGES],
    ['a step of zero', cron('*/0 * * * *'), `${L}.org.minipaas.cron.schedule: invalid cron expression '*/0 * * * *': minute field '*/0': Syntax error, illegal stepping: 0`, RANGES],
    ['a backwards range', cron('5-1 * * * *'), `${L}.org.minipaas.cron.schedule: invalid cron expression '5-1 * * * *': minute field '5-1': From value is larger than to value: '5-1'`, RANGES],
    ['an unknown macro', cron('@hourlyy'), `${L}.org.minipaas.cron.schedule: invalid cron expression '@hourlyy': unknown macro`, RANGES],
    ['four fields', cron('* * * *'), `${L}.org.minipaas.cron.schedule: '* * * *' has 4 fields; a cron expression has five (minute hour day month weekday)`, 'e.g. "*/5 * * * *" (every 5 minutes) or @hourly'],
    [
      'six fields outside tests',
      cron('*/5 * * * * *'),
      `${L}.org.minipaas.cron.schedule: '*/5 * * * * *' has six fields (seconds): schedules have five (minute hour day month weekday)`,
      'drop the seconds field; sub-minute schedules are for tests only',
    ],
    ['@every', cron('@every 5m'), `${L}.org.minipaas.cron.schedule: '@every 5m' is not supported`, 'write it as a cron expression, e.g. "*/5 * * * *" for every 5 minutes'],
    ['unknown time zone', cron('0 3 * * *', { 'org.minipaas.cron.timezone': 'Europe/Berln' }), `${L}.org.minipaas.cron.timezone: unknown time zone 'Europe/Berln'`, "did you mean 'Europe/Berlin'?"],
    ['unknown CRON_TZ= zone', cron('CRON_TZ=Mars/Olympus 0 3 * * *'), `${L}.org.minipaas.cron.schedule: unknown time zone 'Mars/Olympus'`, 'use an IANA zone name such as Europe/Berlin or UTC'],
    [
      'unknown overlap policy',
      cron('0 3 * * *', { 'org.minipaas.cron.overlap': 'forbidd' }),
      `${L}.org.minipaas.cron.overlap: unknown overlap policy 'forbidd'; allowed: allow, forbid, replace`,
      "did you mean 'forbid'?",
    ],
    [
      'unknown overlap policy, no near miss',
      cron('0 3 * * *', { 'org.minipaas.cron.overlap': 'sometimes' }),
      `${L}.org.minipaas.cron.overlap: unknown overlap policy 'sometimes'; allowed: allow, forbid, replace`,
      'use one of allow, forbid, replace',
    ],
    ['unknown catch-up policy', cron('0 3 * * *', { 'org.minipaas.cron.catch-up': 'all' }), `${L}.org.minipaas.cron.catch-up: unknown catch-up policy 'all'; allowed: latest, none`, 'use one of latest, none'],
    ['timeout zero', { 'org.minipaas.kind': 'job', 'org.minipaas.job.timeout': '0' }, `${L}.org.minipaas.job.timeout: must be a positive whole number, got '0'`, 'see docs/compose.md for what each key accepts'],
    ['timeout in words', { 'org.minipaas.kind': 'job', 'org.minipaas.job.timeout': '10m' }, `${L}.org.minipaas.job.timeout: must be a positive whole number, got '10m'`, 'see docs/compose.md for what each key accepts'],
    ['timeout fraction', cron('0 3 * * *', { 'org.minipaas.job.timeout': '1.5' }), `${L}.org.minipaas.job.timeout: must be a positive whole number, got '1.5'`, 'see docs/compose.md for what each key accepts'],
    ['cron without a schedule', { 'org.minipaas.kind': 'cron' }, `${L}.org.minipaas.cron.schedule: a cron job needs a schedule`, 'set it with `mp code cron --env DIR SERVICE --cron "*/5 * * * *"`'],
    ['unknown kind', { 'org.minipaas.kind': 'wroker' }, `${L}.org.minipaas.kind: unknown kind 'wroker'; allowed: cron, job, worker`, "did you mean 'worker'?"],
    [
      'swarm-cronjob enabled without a schedule',
      { 'swarm.cronjob.enable': 'true' },
      `${L}.swarm.cronjob.schedule: swarm.cronjob.enable is true but no schedule is set`,
      'set swarm.cronjob.schedule, e.g. "*/5 * * * *"',
    ],
    [
      'swarm-cronjob bad schedule',
      { 'swarm.cronjob.enable': 'true', 'swarm.cronjob.schedule': '0 0 61 * * *' },
      `${L}.swarm.cronjob.schedule: invalid cron expression '0 0 61 * * *': hour field '61' is out of range (0-23)`,
      RANGES,
    ],
    [
      'swarm-cronjob zero replicas',
      { 'swarm.cronjob.enable': 'true', 'swarm.cronjob.schedule': '* * * * *', 'swarm.cronjob.replicas': '0' },
      `${L}.swarm.cronjob.replicas: must be a positive whole number, got '0'`,
      'see docs/compose.md for what each key accepts',
    ],
  ])('%s', (_name, labels, message, hint) => {
    const err = failure(labels);
    expect(err.message).toBe(message);
    expect(err.message).not.toContain('\n');
    expect(err.hint).toBe(hint);
    expect(err.code).toBe('COMPOSE_CONVERT');
  });
});

describe('job labels that convert', () => {
  const job = (labels: Record<string, string>, env?: Record<string, string>): unknown => {
    const s = withLabels(labels, env);
    return s.jobs?.[0] ? { ...s.jobs[0], spec: undefined, services: s.services.length } : { services: s.services.length };
  };
  it.each<[string, Record<string, string>, unknown, Record<string, string>?]>([
    ['a worker stays a service', { 'org.minipaas.kind': 'worker' }, { services: 1 }],
    ['a job', { 'org.minipaas.kind': 'job' }, { key: 'web', name: 'st_web', kind: 'job', source: 'minipaas', replicas: 1, timeoutSeconds: 600, services: 0 }],
    [
      'a cron job with every policy',
      cron('0 3 * * 1-5', { 'org.minipaas.cron.timezone': 'Europe/Berlin', 'org.minipaas.cron.overlap': 'replace', 'org.minipaas.cron.catch-up': 'none', 'org.minipaas.job.timeout': '30' }),
      {
        key: 'web',
        name: 'st_web',
        kind: 'cron',
        source: 'minipaas',
        replicas: 1,
        timeoutSeconds: 30,
        schedule: { expression: '0 3 * * 1-5', timezone: 'Europe/Berlin', overlap: 'replace', catchUp: 'none' },
        services: 0,
      },
    ],
    ['a cron job with the defaults', cron('@hourly'), { kind: 'cron', schedule: { expression: '@hourly', overlap: 'forbid', catchUp: 'latest' } }],
    ['six fields in tests', cron('*/2 * * * * *'), { schedule: { expression: '*/2 * * * * *' } }, { MP_CRON_SECONDS: '1' }],
    [
      'swarm-cronjob labels',
      { 'swarm.cronjob.enable': 'true', 'swarm.cronjob.schedule': 'CRON_TZ=Asia/Tokyo 0 */2 * * * *', 'swarm.cronjob.skip-running': 'true', 'swarm.cronjob.replicas': '2' },
      { kind: 'cron', source: 'swarm-cronjob', replicas: 2, schedule: { expression: '0 */2 * * * *', timezone: 'Asia/Tokyo', overlap: 'forbid', catchUp: 'none' } },
    ],
    ['swarm-cronjob replaces by default', { 'swarm.cronjob.enable': 'true', 'swarm.cronjob.schedule': '* * * * *' }, { schedule: { overlap: 'replace', catchUp: 'none' } }],
    ['MiniPaaS labels win over swarm-cronjob ones', { 'swarm.cronjob.enable': 'true', 'swarm.cronjob.schedule': '* * * * *', 'org.minipaas.kind': 'job' }, { kind: 'job', source: 'minipaas' }],
  ])('%s', (_name, labels, expected, env) => {
    expect(job(labels, env)).toMatchObject(expected as Record<string, unknown>);
  });
});
