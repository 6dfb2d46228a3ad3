/**
 * Job templates: which Compose services a deploy must not start, and their schedules. A service is a
 * template when its service labels (`deploy.labels`, where swarm-cronjob reads them too) say so:
 *
 * - MiniPaaS's own: `org.minipaas.kind: job` or `cron`, and for cron `org.minipaas.cron.schedule`
 *   (five fields or a macro), optional `org.minipaas.cron.timezone`, `org.minipaas.cron.overlap`
 *   (allow, forbid (default), replace), `org.minipaas.cron.catch-up` (latest (default), none), and
 *   `org.minipaas.job.timeout` (seconds, default 600). `org.minipaas.kind: worker` marks a worker,
 *   which stays an ordinary service.
 * - swarm-cronjob's, read unchanged: `swarm.cronjob.enable: "true"`, `swarm.cronjob.schedule` (five or
 *   six fields, `CRON_TZ=Zone` or `TZ=Zone` prefix), `swarm.cronjob.skip-running` (true: forbid; false,
 *   its default: replace, as swarm-cronjob force-updates a running service), `swarm.cronjob.replicas`.
 *
 * Expressions are parsed by croner (five fields, `@hourly`-style macros, time zones, daylight-saving
 * changes as croner documents them: a time skipped by a spring-forward change does not run, one
 * repeated by a fall-back change runs once). Sub-minute schedules (six fields, seconds first) are for
 * swarm-cronjob files and for tests (`MP_CRON_SECONDS=1` among the interpolation variables).
 */
import { Cron } from 'croner';
import { listNames, nearMiss } from '../../agent/executors/near-miss.ts';
import type { CatchUpPolicy, CronSchedule, OverlapPolicy, StackJob } from '../types.ts';
import { convertError } from './errors.ts';
import type { ConvertContext } from './namespace.ts';

type Dict = Record<string, unknown>;

/** The service label marking what a service is (`worker`, `job`, `cron`). */
export const KIND_LABEL = 'org.minipaas.kind';
/** MiniPaaS's cron labels. */
export const CRON_LABELS = {
  schedule: 'org.minipaas.cron.schedule',
  timezone: 'org.minipaas.cron.timezone',
  overlap: 'org.minipaas.cron.overlap',
  catchUp: 'org.minipaas.cron.catch-up',
} as const;
/** Seconds one run of a job may take (default 600). */
export const TIMEOUT_LABEL = 'org.minipaas.job.timeout';
/** swarm-cronjob's labels. */
export const SWARM_CRONJOB = {
  enable: 'swarm.cronjob.enable',
  schedule: 'swarm.cronjob.schedule',
  skipRunning: 'swarm.cronjob.skip-running',
  replicas: 'swarm.cronjob.replicas',
} as const;

const KINDS = ['worker', 'job', 'cron'] as const;
export const OVERLAP_POLICIES: readonly OverlapPolicy[] = ['allow', 'forbid', 'replace'];
export const CATCH_UP_POLICIES: readonly CatchUpPolicy[] = ['latest', 'none'];

/** Default seconds a run may take. */
export const DEFAULT_JOB_TIMEOUT = 600;

/**
 * `value` when it is one of `allowed`; else `ConfigError` at `where` listing them, with the near miss.
 *
 * @example oneOf('forbidd', OVERLAP_POLICIES, '--overlap', 'overlap policy') // throws: did you mean 'forbid'?
 */
export function oneOf<T extends string>(value: string, allowed: readonly T[], where: string, what: string): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  const guess = nearMiss(value, allowed);
  throw convertError(where, `unknown ${what} '${value}'; allowed: ${listNames(allowed)}`, guess ? `did you mean '${guess}'?` : `use one of ${listNames(allowed)}`);
}

/** Throws `ConfigError` for a time zone the runtime does not know, with the near miss. */
export function checkTimezone(zone: string, where: string): void {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
  } catch {
    const zones = Intl.supportedValuesOf('timeZone');
    const guess = nearMiss(zone, zones);
    throw convertError(where, `unknown time zone '${zone}'`, guess ? `did you mean '${guess}'?` : 'use an IANA zone name such as Europe/Berlin or UTC');
  }
}

/**
 * Parses a cron expression (and its `CRON_TZ=`/`TZ=` prefix) into a schedule's expression and zone.
 * Throws `ConfigError` naming `where`, the field and why (croner's message), or the unknown zone.
 *
 * @example
 *   parseCron('CRON_TZ=Europe/Berlin 0 3 * * *', { where: 'x' }) // { expression: '0 3 * * *', timezone: 'Europe/Berlin' }
 */
export function parseCron(raw: string, opts: { where: string; timezone?: string; seconds?: boolean }): { expression: string; timezone?: string } {
  let text = raw.trim();
  let timezone = opts.timezone;
  const prefix = /^(?:CRON_TZ|TZ)=(\S+)\s+(.*)$/.exec(text);
  if (prefix) {
    timezone = prefix[1]!;
    text = prefix[2]!.trim();
  }
  if (text.startsWith('@every')) {
    throw convertError(opts.where, `'${text}' is not supported`, 'write it as a cron expression, e.g. "*/5 * * * *" for every 5 minutes');
  }
  const fields = text.startsWith('@') ? 1 : text.split(/\s+/).length;
  if (fields === 6 && !opts.seconds) {
    throw convertError(opts.where, `'${text}' has six fields (seconds): schedules have five (minute hour day month weekday)`, 'drop the seconds field; sub-minute schedules are for tests only');
  }
  if (fields !== 1 && fields !== 5 && fields !== 6) {
    throw convertError(opts.where, `'${text}' has ${fields} fields; a cron expression has five (minute hour day month weekday)`, 'e.g. "*/5 * * * *" (every 5 minutes) or @hourly');
  }
  if (timezone !== undefined) checkTimezone(timezone, opts.where);
  try {
    new Cron(text, { paused: true, ...(timezone ? { timezone } : {}) });
  } catch (err) {
    const why = fields === 1 ? `unknown macro` : (fieldProblem(text.split(/\s+/)) ?? (err as Error).message.replace(/^Cron\w*:\s*/, ''));
    throw convertError(opts.where, `invalid cron expression '${text}': ${why}`, 'fields are minute (0-59), hour (0-23), day of month (1-31), month (1-12 or jan-dec), weekday (0-7 or sun-sat); macros: @yearly @monthly @weekly @daily @hourly');
  }
  return { expression: text, ...(timezone ? { timezone } : {}) };
}

const FIELDS: readonly { name: string; range: string; any: string }[] = [
  { name: 'minute', range: '0-59', any: '*' },
  { name: 'hour', range: '0-23', any: '*' },
  { name: 'day of month', range: '1-31', any: '*' },
  { name: 'month', range: '1-12 or jan-dec', any: '*' },
  { name: 'weekday', range: '0-7 or sun-sat', any: '*' },
];
const SECONDS_FIELD = { name: 'second', range: '0-59', any: '0' };

/**
 * Which field of a five- or six-field expression croner refuses, and why, by parsing each field alone
 * (the others `*`). croner's own message numbers the entry, or names the field but shows the value
 * shifted to its internal 0-based range (`32` in the day field is reported as `31`).
 */
function fieldProblem(parts: string[]): string | undefined {
  const fields = parts.length === 6 ? [SECONDS_FIELD, ...FIELDS] : FIELDS;
  for (const [i, field] of fields.entries()) {
    const probe = fields.map((f, j) => (j === i ? parts[i]! : f.any)).join(' ');
    try {
      new Cron(probe, { paused: true });
    } catch (err) {
      const message = (err as Error).message;
      if (/Invalid value for/i.test(message)) return `${field.name} field '${parts[i]}' is out of range (${field.range})`;
      const why = message.replace(/^Cron\w*:\s*/, '').replace(/^configuration entry \d+ \([^)]*\) /, '').replace(/\.$/, '');
      return `${field.name} field '${parts[i]}': ${why}`;
    }
  }
  return undefined;
}

function positiveInt(value: string, where: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw convertError(where, `must be a positive whole number, got '${value}'`);
  return n;
}

/** What makes a service a job template, without its spec; undefined for an ordinary service (or a worker). */
export type JobMarking = Omit<StackJob, 'key' | 'name' | 'spec'>;

/**
 * Reads a service's labels: undefined for an ordinary service, its marking for a job or cron job.
 * Throws `ConfigError` for a label value that is not valid (unknown kind, schedule, zone, policy).
 */
export function jobMarking(key: string, svc: Dict, ctx: Pick<ConvertContext, 'env'>): JobMarking | undefined {
  const deploy = (svc.deploy as Dict | undefined) ?? {};
  const labels = (deploy.labels as Record<string, string> | undefined) ?? {};
  const where = (label: string): string => `services.${key}.deploy.labels.${label}`;
  const seconds = ctx.env.MP_CRON_SECONDS === '1';
  const timeout = labels[TIMEOUT_LABEL] !== undefined ? positiveInt(String(labels[TIMEOUT_LABEL]), where(TIMEOUT_LABEL)) : DEFAULT_JOB_TIMEOUT;

  const swarmCron = String(labels[SWARM_CRONJOB.enable] ?? '').toLowerCase() === 'true';
  const kindLabel = labels[KIND_LABEL];
  if (swarmCron && kindLabel === undefined) {
    const raw = labels[SWARM_CRONJOB.schedule];
    if (raw === undefined) throw convertError(where(SWARM_CRONJOB.schedule), 'swarm.cronjob.enable is true but no schedule is set', 'set swarm.cronjob.schedule, e.g. "*/5 * * * *"');
    const parsed = parseCron(String(raw), { where: where(SWARM_CRONJOB.schedule), seconds: true });
    const skip = String(labels[SWARM_CRONJOB.skipRunning] ?? 'false').toLowerCase() === 'true';
    const replicas = labels[SWARM_CRONJOB.replicas] !== undefined ? positiveInt(String(labels[SWARM_CRONJOB.replicas]), where(SWARM_CRONJOB.replicas)) : 1;
    return {
      kind: 'cron',
      source: 'swarm-cronjob',
      replicas,
      timeoutSeconds: timeout,
      // swarm-cronjob force-updates a running service on each tick (the old task is replaced) unless skip-running.
      schedule: { ...parsed, overlap: skip ? 'forbid' : 'replace', catchUp: 'none' },
    };
  }
  if (kindLabel === undefined) return undefined;
  const kind = oneOf(String(kindLabel), KINDS, where(KIND_LABEL), 'kind');
  if (kind === 'worker') return undefined;
  if (kind === 'job') return { kind, source: 'minipaas', replicas: 1, timeoutSeconds: timeout };
  const raw = labels[CRON_LABELS.schedule];
  if (raw === undefined) throw convertError(where(CRON_LABELS.schedule), 'a cron job needs a schedule', 'set it with `mp code cron --env DIR SERVICE --cron "*/5 * * * *"`');
  const zone = labels[CRON_LABELS.timezone];
  // The zone's own label is the place to point at, not the schedule's.
  if (zone !== undefined) checkTimezone(String(zone), where(CRON_LABELS.timezone));
  const parsed = parseCron(String(raw), { where: where(CRON_LABELS.schedule), seconds, timezone: zone === undefined ? undefined : String(zone) });
  const schedule: CronSchedule = {
    ...parsed,
    overlap: oneOf(String(labels[CRON_LABELS.overlap] ?? 'forbid'), OVERLAP_POLICIES, where(CRON_LABELS.overlap), 'overlap policy'),
    catchUp: oneOf(String(labels[CRON_LABELS.catchUp] ?? 'latest'), CATCH_UP_POLICIES, where(CRON_LABELS.catchUp), 'catch-up policy'),
  };
  return { kind, source: 'minipaas', replicas: 1, timeoutSeconds: timeout, schedule };
}
