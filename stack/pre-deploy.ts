/**
 * `pre_deploy:` of minipaas.yaml checked against the stack it would run in, before a release is
 * recorded (the deploy's agent checks again against the recorded release): every name must be a job
 * template of the Compose files (`org.minipaas.kind: job` or `cron`). Pure.
 */
import { listNames, nearMiss } from '../agent/executors/near-miss.ts';
import { ConfigError } from '../sql/errors.ts';
import type { StackSpec } from './types.ts';

/**
 * Throws `ConfigError` (PRE_DEPLOY) for the first name of `names` that is not a job template of
 * `spec`: an unknown one lists the templates and the near miss; an ordinary service says how to mark
 * it. `env` is the `--env` argument, for the hint's command.
 *
 * @example checkPreDeploy(spec, ['migrat'], { env: 'prod', file: 'prod/minipaas.yaml' })
 *   // pre_deploy in prod/minipaas.yaml names 'migrat', which no Compose file defines; job templates: migrate
 */
export function checkPreDeploy(spec: Pick<StackSpec, 'services' | 'jobs'>, names: readonly string[], opts: { env: string; file: string }): void {
  const jobs = (spec.jobs ?? []).map((j) => j.key);
  const services = spec.services.map((s) => s.key);
  const mark = (name: string): string => `\`mp code job --env ${opts.env} ${name}\``;
  for (const name of names) {
    if (jobs.includes(name)) continue;
    if (services.includes(name)) {
      throw new ConfigError(
        'PRE_DEPLOY',
        `pre_deploy in ${opts.file} names '${name}', which is not a job template: a deploy runs it as a long-running service`,
        `mark it with ${mark(name)} (label org.minipaas.kind: job), or take it out of pre_deploy`,
      );
    }
    const guess = nearMiss(name, [...jobs, ...services]);
    throw new ConfigError(
      'PRE_DEPLOY',
      `pre_deploy in ${opts.file} names '${name}', which no Compose file defines; job templates: ${listNames(jobs)}`,
      guess === undefined
        ? `define it in a Compose file and mark it with ${mark(name)}, or take it out of pre_deploy`
        : jobs.includes(guess)
          ? `did you mean '${guess}'?`
          : `did you mean '${guess}'? it is not a job template yet: mark it with ${mark(guess)}`,
    );
  }
}
