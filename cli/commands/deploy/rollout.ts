/**
 * `mp deploy --env DIR [--dry-run] [--detach] [--build]` (also `mp deploy rollout`): loads and validates
 * the environment directory, records the full desired stack as a new release and enqueues its `deploy`
 * operation in the same transaction, then follows it until the stack has converged or failed.
 *
 * Services whose image has a pushed build recorded by `mp deploy build` deploy exactly that build
 * (`registry/name:version@sha256:...`); `--build` runs that build first, and deploys nothing when it fails.
 */
import { join } from 'node:path';
import { z } from 'zod';
import { observeStack, planStack } from '../../../agent/deploy/index.ts';
import { applyPins, resolveImages } from '../../../agent/deploy/images.ts';
import type { Context } from '../../context.ts';
import { deployRelease, environmentDocker, planLines, submitRelease } from '../../deploys.ts';
import { latestPushedBuilds } from '../../../sql/control/builds.ts';
import { listRegistryAuths, withoutStoredRegistries, withRegistryAuthLabels } from '../../../sql/control/registry-auth.ts';
import { withRecordedBuilds } from '../../builds.ts';
import { loadEnvironment, SETTINGS_FILE, type LoadedEnvironment } from '../../environment.ts';
import { checkPreDeploy } from '../../../stack/pre-deploy.ts';
import { buildEnvironment } from './build.ts';
import { awaitNoCanary } from '../../canaries.ts';
import { positiveInt } from '../../inputs.ts';
import { toJson } from '../../output.ts';
import { control } from '../../operations.ts';
import { keepScale } from '../scale.ts';

export const options = z
  .object({
    env: z.string().min(1, 'name the environment directory, e.g. --env prod'),
    dryRun: z.boolean().default(false),
    detach: z.boolean().default(false),
    // Optional rather than defaulted: callers that build Options by hand (secret create --deploy) need not name it.
    build: z.boolean().optional(),
    // While the environment has an unfinished canary a deploy refuses; --wait waits for it to end instead.
    wait: z.boolean().optional(),
    waitTimeout: positiveInt.optional(),
  })
  .strict()
  .refine((o) => !(o.detach && o.dryRun), { message: '--detach and --dry-run exclude each other', path: ['detach'] })
  .refine((o) => !(o.build && o.dryRun), { message: '--build and --dry-run exclude each other (`mp deploy build --dry-run` shows the builds)', path: ['build'] });
export type Options = z.output<typeof options>;

/**
 * @example
 *   $ mp deploy --env prod
 *   release 7 of prod (deploy) recorded; operation 42
 *   2026-12-01T22:31:39Z  queued     deploy queued for manager
 *   2026-12-01T22:31:39Z  plan       plan: create 0, update 1 (api), remove 0, unchanged 3
 *   2026-12-01T22:31:41Z  progress   shop_api 1/2 running (update updating)
 *   ...
 */
export async function run(ctx: Context, opts: Options): Promise<void> {
  const loaded = loadEnvironment(opts.env);
  // A pre_deploy name that is no job template is refused here: no release, no operation.
  checkPreDeploy(loaded.spec, loaded.settings.pre_deploy, { env: opts.env, file: join(opts.env, SETTINGS_FILE) });
  for (const warning of loaded.spec.warnings) ctx.stderr.write(`warning: ${warning}\n`);
  // A build that fails throws here: no release, no deploy operation.
  if (opts.build) await buildEnvironment(ctx, loaded);
  const env = await onRecordedBuilds(ctx, loaded);
  // Counts set by `mp scale` stay while the Compose files still say what they said then.
  const release = await keepScale(ctx, await deployRelease(ctx, env));
  if (opts.dryRun) {
    const docker = await environmentDocker(env.settings, '--dry-run');
    const stored = await listRegistryAuths(control(ctx), env.name);
    const desired = withRegistryAuthLabels(applyPins(release.spec, await resolveImages(docker, withoutStoredRegistries(release.spec, stored))), stored);
    const plan = planStack(desired, await observeStack(docker, desired.name, desired));
    if (ctx.json) {
      ctx.stdout.write(`${toJson({ environment: env.name, stack: desired.name, changed: plan.changed, actions: plan.actions })}\n`);
      return;
    }
    ctx.stdout.write(`plan for ${env.name} (stack ${desired.name}), nothing submitted, as seen by ${docker.endpoint}:\n`);
    for (const line of planLines(plan)) ctx.stdout.write(`  ${line}\n`);
    if (!plan.changed) ctx.stdout.write('unchanged: the stack already matches the environment\n');
    return;
  }
  // An image no node can get is refused before anything is written, when the engine answers here; the
  // agent resolves and pins the images again where it runs.
  const docker = await environmentDocker(env.settings, '`mp deploy`').catch(() => undefined);
  // Images of a registry with stored credentials are the agent's to check: only it can open them.
  if (docker) await resolveImages(docker, withoutStoredRegistries(env.spec, await listRegistryAuths(control(ctx), env.name)));
  // A deploy would roll a service under its canary (docs/routing.md "Canary").
  await awaitNoCanary(ctx, env.name, opts.env, { wait: opts.wait ?? false, waitSeconds: opts.waitTimeout ?? 900 });
  await submitRelease(ctx, release, { detach: opts.detach });
}

/** The environment with its services moved onto their recorded builds, saying which (unless `quiet`). */
export async function onRecordedBuilds(ctx: Context, env: LoadedEnvironment, opts: { quiet?: boolean } = {}): Promise<LoadedEnvironment> {
  const { spec, used } = withRecordedBuilds(env.spec, await latestPushedBuilds(ctx.db().pool, env.name));
  if (!ctx.json && !opts.quiet) {
    for (const u of used) ctx.stdout.write(`${u.service}: ${u.image} is build ${u.operationId}, ${u.ref}\n`);
  }
  return { ...env, spec };
}
