/**
 * Restart, update and rollback policies, and MiniPaaS's safe defaults for the last two.
 *
 * Safe defaults (on unless `safeDefaults: false`) apply only to what the file leaves unsaid: a
 * rolling update starts the new task before stopping the old one (so a service never drops to zero),
 * rolls back by itself when a new task fails, and watches each new task for 10 s before going on.
 * Swarm's own defaults are the opposite (stop-first, pause, 5 s). Services that publish a port in
 * host mode keep stop-first: a second task on the same node could not bind the port. Jobs get no
 * update policy at all: they run to completion and are not rolled.
 */
import { at, convertError } from './errors.ts';
import { parseDuration } from './units.ts';

type Dict = Record<string, unknown>;

/** The Engine API RestartPolicy (durations in ns). */
export interface RestartPolicy {
  Condition: string;
  Delay?: number;
  MaxAttempts?: number;
  Window?: number;
}

/** The Engine API UpdateConfig, also used for RollbackConfig. */
export interface UpdateConfig {
  Parallelism: number;
  Delay: number;
  FailureAction: string;
  Monitor: number;
  MaxFailureRatio: number;
  Order: string;
}

/** The monitor period of MiniPaaS's safe defaults, in ns. */
export const SAFE_MONITOR_NS = 10_000_000_000;

/**
 * `deploy.restart_policy`, else the service-level `restart:` as docker/cli maps it (`always` and
 * `unless-stopped` to any, `on-failure[:N]`, `no` to none).
 */
export function convertRestartPolicy(policy: Dict | undefined, restart: unknown, where: string): RestartPolicy | undefined {
  if (policy) {
    const out: RestartPolicy = { Condition: String(policy.condition ?? '') };
    if (policy.delay !== undefined) out.Delay = at(`${where}.restart_policy.delay`, () => parseDuration(policy.delay));
    if (policy.max_attempts !== undefined) out.MaxAttempts = Number(policy.max_attempts);
    if (policy.window !== undefined) out.Window = at(`${where}.restart_policy.window`, () => parseDuration(policy.window));
    return out;
  }
  if (restart === undefined || restart === '' || restart === 'no') return undefined;
  const [name, count] = String(restart).split(':');
  if (name === 'always' || name === 'unless-stopped') return { Condition: 'any' };
  if (name === 'on-failure') return { Condition: 'on-failure', MaxAttempts: count ? Number(count) : 0 };
  throw convertError(where.replace(/\.deploy$/, '.restart'), `unknown restart policy '${String(restart)}'`, 'use no, always, unless-stopped or on-failure[:N]');
}

/** `update_config`/`rollback_config` as docker/cli converts it (parallelism 1 unless set). */
export function convertUpdateConfig(cfg: Dict | undefined, where: string): UpdateConfig | undefined {
  if (!cfg) return undefined;
  return {
    Parallelism: cfg.parallelism === undefined ? 1 : Number(cfg.parallelism),
    Delay: cfg.delay === undefined ? 0 : at(`${where}.delay`, () => parseDuration(cfg.delay)),
    FailureAction: String(cfg.failure_action ?? ''),
    Monitor: cfg.monitor === undefined ? 0 : at(`${where}.monitor`, () => parseDuration(cfg.monitor)),
    MaxFailureRatio: cfg.max_failure_ratio === undefined ? 0 : Number(cfg.max_failure_ratio),
    Order: String(cfg.order ?? ''),
  };
}

/**
 * Fills what the file did not say with MiniPaaS's safe defaults (see the module comment). `given`
 * is the file's own block, so a key the file sets is never changed, even to Swarm's default value.
 */
export function withSafeDefaults(
  converted: UpdateConfig | undefined,
  given: Dict | undefined,
  opts: { failureAction: string; hostPorts: boolean },
): UpdateConfig {
  const out: UpdateConfig = converted ?? { Parallelism: 1, Delay: 0, FailureAction: '', Monitor: 0, MaxFailureRatio: 0, Order: '' };
  if (given?.order === undefined) out.Order = opts.hostPorts ? 'stop-first' : 'start-first';
  if (given?.failure_action === undefined) out.FailureAction = opts.failureAction;
  if (given?.monitor === undefined) out.Monitor = SAFE_MONITOR_NS;
  return out;
}
