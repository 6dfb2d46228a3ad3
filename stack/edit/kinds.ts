/**
 * What `mp code worker|job|cron` change in a Compose file, as edits for `planComposeEdits` (pure: files
 * in, edits and notes out). The markings are service labels under `deploy.labels`, the ones the
 * converter reads (stack/convert/jobs.ts):
 *
 * - worker: `org.minipaas.kind: worker`, `deploy.restart_policy.condition: on-failure`, and no
 *   `ports:` (they are removed: a worker serves no one, and a published port would pin it to the
 *   ingress or a host port for nothing).
 * - job: `org.minipaas.kind: job`, `deploy.restart_policy.condition: none` (a run is never restarted:
 *   its exit code is the result), no `deploy.replicas` (a deploy does not start a template).
 * - cron: as a job, with `org.minipaas.kind: cron` and the `org.minipaas.cron.*` labels given.
 *
 * Labels of another marking go (a worker keeps no schedule; MiniPaaS's cron labels replace
 * swarm-cronjob's), and labels the request does not name stay. Only the defining file is edited, so
 * a later file that sets one of these keys for the service (it would override the edit when the files
 * are merged) is refused, naming that file and key.
 */
import { parseDocument } from 'yaml';
import type { CatchUpPolicy, OverlapPolicy } from '../types.ts';
import { ConfigError } from '../../sql/errors.ts';
import { CRON_LABELS, KIND_LABEL, SWARM_CRONJOB, TIMEOUT_LABEL } from '../convert/jobs.ts';
import { definingFile, type ComposeEdit, type ComposeText } from './index.ts';

/** What a service is to become. Values are already validated (the CLI parses them first). */
export type KindRequest =
  | { kind: 'worker' }
  | { kind: 'job'; timeoutSeconds?: number }
  | {
      kind: 'cron';
      /** The expression without a `CRON_TZ=` prefix. */
      schedule: string;
      timezone?: string;
      overlap?: OverlapPolicy;
      catchUp?: CatchUpPolicy;
      timeoutSeconds?: number;
    };

/** The edits for one service, and a line for each thing removed that the user may not expect. */
export interface KindEdits {
  edits: ComposeEdit[];
  notes: string[];
}

type Dict = Record<string, unknown>;

const CRON_PREFIX = 'org.minipaas.cron.';
const SWARM_PREFIX = 'swarm.cronjob.';

/** Label keys of a `labels:` value in either Compose form (mapping, or `key=value` list). */
function labelKeys(labels: unknown): string[] {
  if (Array.isArray(labels)) return labels.map((l) => String(l).split('=')[0]!);
  return labels && typeof labels === 'object' ? Object.keys(labels) : [];
}

function serviceOf(file: ComposeText, service: string): Dict | undefined {
  const json = parseDocument(file.content).toJS() as { services?: Record<string, Dict | null> } | null;
  const svc = json?.services?.[service];
  return svc === undefined ? undefined : (svc ?? {});
}

/**
 * The edits making `service` what `request` says, in its defining file. Throws `ConfigError` for a
 * service no file defines (listing those that do), labels written as a list (`mp code` sets labels
 * in a mapping), or a later file that sets a key this changes.
 *
 * @example
 *   kindEdits(files, 'cleanup', { kind: 'cron', schedule: '*\/5 * * * *', overlap: 'forbid' }).edits
 *   // set deploy.labels.org.minipaas.kind = cron, ...cron.schedule, ...cron.overlap,
 *   // deploy.restart_policy.condition = none; remove deploy.replicas
 */
export function kindEdits(files: ComposeText[], service: string, request: KindRequest): KindEdits {
  const file = definingFile(files, service);
  const svc = serviceOf(file, service)!;
  const deploy = (svc.deploy && typeof svc.deploy === 'object' ? svc.deploy : {}) as Dict;
  const verb = `mp code ${request.kind}`;
  if (Array.isArray(deploy.labels)) {
    throw new ConfigError(
      'COMPOSE_EDIT',
      `${file.path}: services.${service}.deploy.labels is a list of key=value; \`${verb}\` sets labels in a mapping`,
      `write it as a mapping (key: "value", one per line) and run the command again; nothing was changed`,
    );
  }
  const labels: Dict = { [KIND_LABEL]: request.kind };
  if (request.kind === 'cron') {
    labels[CRON_LABELS.schedule] = request.schedule;
    if (request.timezone !== undefined) labels[CRON_LABELS.timezone] = request.timezone;
    if (request.overlap !== undefined) labels[CRON_LABELS.overlap] = request.overlap;
    if (request.catchUp !== undefined) labels[CRON_LABELS.catchUp] = request.catchUp;
  }
  if (request.kind !== 'worker' && request.timeoutSeconds !== undefined) labels[TIMEOUT_LABEL] = String(request.timeoutSeconds);
  const restart = request.kind === 'worker' ? 'on-failure' : 'none';

  // A later file defining the service is merged over this one: one that sets what this edits would win.
  const owned = (key: string): boolean => key === KIND_LABEL || key === TIMEOUT_LABEL || key.startsWith(CRON_PREFIX) || key.startsWith(SWARM_PREFIX);
  for (const other of files.slice(files.indexOf(file) + 1)) {
    const later = serviceOf(other, service);
    if (!later) continue;
    const laterDeploy = (later.deploy && typeof later.deploy === 'object' ? later.deploy : {}) as Dict;
    const clash = [
      ...labelKeys(laterDeploy.labels).filter(owned).map((k) => `deploy.labels.${k}`),
      ...((laterDeploy.restart_policy as Dict | undefined)?.condition !== undefined ? ['deploy.restart_policy.condition'] : []),
      ...(request.kind === 'worker' && later.ports !== undefined ? ['ports'] : []),
    ][0];
    if (clash) {
      throw new ConfigError(
        'COMPOSE_OVERRIDE',
        `${other.path} also sets services.${service}.${clash}, which would override what \`${verb}\` writes in ${file.path} (the first file defining ${service})`,
        `remove services.${service}.${clash} from ${other.path}, then run the command again; nothing was changed`,
      );
    }
  }

  const edits: ComposeEdit[] = Object.entries(labels).map(([k, v]) => ({ op: 'set', service, path: ['deploy', 'labels', k], value: v as string }));
  edits.push({ op: 'set', service, path: ['deploy', 'restart_policy', 'condition'], value: restart });
  const notes: string[] = [];
  const stale = labelKeys(deploy.labels).filter(
    (k) => k.startsWith(SWARM_PREFIX) || (request.kind !== 'cron' && k.startsWith(CRON_PREFIX)) || (request.kind === 'worker' && k === TIMEOUT_LABEL),
  );
  for (const k of stale) edits.push({ op: 'remove', service, path: ['deploy', 'labels', k] });
  if (stale.some((k) => k.startsWith(SWARM_PREFIX)) && (deploy.labels as Dict)[SWARM_CRONJOB.enable] !== undefined) {
    const replicas = (deploy.labels as Dict)[SWARM_CRONJOB.replicas];
    notes.push(
      `${service}: swarm-cronjob labels removed; ${request.kind === 'cron' ? "MiniPaaS's cron labels replace them" : `a ${request.kind} has no schedule`}${replicas !== undefined && String(replicas) !== '1' ? ` (each run is now one task, not swarm.cronjob.replicas ${String(replicas)})` : ''}`,
    );
  } else if (stale.length) {
    notes.push(`${service}: ${stale.join(', ')} removed (a ${request.kind} has no schedule)`);
  }
  if (request.kind === 'worker' && svc.ports !== undefined) {
    edits.push({ op: 'remove', service, path: ['ports'] });
    notes.push(`${service}: ports removed (a worker publishes none; a service that answers requests is not a worker)`);
  }
  if (request.kind !== 'worker' && deploy.replicas !== undefined) {
    edits.push({ op: 'remove', service, path: ['deploy', 'replicas'] });
    notes.push(`${service}: deploy.replicas removed (a deploy does not start a ${request.kind}; each run is one task)`);
  }
  return { edits, notes };
}
