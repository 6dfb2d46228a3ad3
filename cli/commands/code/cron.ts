/**
 * `mp code cron --env DIR SERVICE... --cron "EXPR" [--overlap allow|forbid|replace] [--tz ZONE]
 * [--catch-up latest|none] [--timeout SECONDS]`: each service becomes a cron job in the first Compose
 * file defining it: a job template (as `mp code job`) with label `org.minipaas.kind: cron` and
 * `org.minipaas.cron.schedule`, plus `...cron.overlap`, `...cron.timezone`, `...cron.catch-up` and
 * `org.minipaas.job.timeout` for the options given (an option left out leaves its label as it is, so
 * the default or an earlier choice stays). swarm-cronjob labels on the service are replaced.
 *
 * Every value is checked as the deploy will check it (croner for the expression, which field and why;
 * the runtime's time zones; the policies) before any file is read for writing.
 */
import { z } from 'zod';
import { CATCH_UP_POLICIES, checkTimezone, oneOf, OVERLAP_POLICIES, parseCron } from '../../../stack/convert/jobs.ts';
import { ConfigError } from '../../../sql/errors.ts';
import type { Context } from '../../context.ts';
import { positiveInt } from '../../inputs.ts';
import { markServices } from './mark.ts';

export const options = z
  .object({
    env: z.string().min(1, 'name the environment directory, e.g. --env prod'),
    services: z.array(z.string().min(1)).min(1, 'name at least one service, e.g. cleanup'),
    cron: z.string({ error: 'give the schedule, e.g. --cron "*/5 * * * *"' }).min(1, 'give the schedule, e.g. --cron "*/5 * * * *"'),
    overlap: z.string().optional(),
    tz: z.string().min(1).optional(),
    catchUp: z.string().optional(),
    timeout: positiveInt.optional(),
  })
  .strict();
export type Options = z.output<typeof options>;

/**
 * @example
 *   $ mp code cron --env dev cleanup --cron "*\/5 * * * *" --overlap forbid --tz Europe/Berlin
 *   cleanup: a cron job (*\/5 * * * *)
 *     compose.yaml: services.cleanup.deploy.labels.org.minipaas.kind = "cron"
 *     compose.yaml: services.cleanup.deploy.labels.org.minipaas.cron.schedule = "*\/5 * * * *"
 *     ...
 */
export async function run(ctx: Context, opts: Options): Promise<void> {
  if (opts.tz !== undefined) checkTimezone(opts.tz, '--tz');
  // Six fields (seconds) only for tests, as the deploy allows them (MP_CRON_SECONDS=1).
  const parsed = parseCron(opts.cron, { where: '--cron', seconds: process.env.MP_CRON_SECONDS === '1' });
  if (parsed.timezone !== undefined && opts.tz !== undefined && parsed.timezone !== opts.tz) {
    throw new ConfigError('COMPOSE_CONVERT', `--cron says CRON_TZ=${parsed.timezone} but --tz says ${opts.tz}`, 'give the zone once, with --tz');
  }
  const timezone = opts.tz ?? parsed.timezone;
  if (timezone !== undefined) parseCron(parsed.expression, { where: '--cron', timezone, seconds: process.env.MP_CRON_SECONDS === '1' });
  const overlap = opts.overlap === undefined ? undefined : oneOf(opts.overlap, OVERLAP_POLICIES, '--overlap', 'overlap policy');
  const catchUp = opts.catchUp === undefined ? undefined : oneOf(opts.catchUp, CATCH_UP_POLICIES, '--catch-up', 'catch-up policy');
  await markServices(ctx, opts.env, opts.services, {
    kind: 'cron',
    schedule: parsed.expression,
    ...(timezone !== undefined ? { timezone } : {}),
    ...(overlap !== undefined ? { overlap } : {}),
    ...(catchUp !== undefined ? { catchUp } : {}),
    ...(opts.timeout !== undefined ? { timeoutSeconds: opts.timeout } : {}),
  });
}
