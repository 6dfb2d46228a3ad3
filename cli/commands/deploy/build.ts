/**
 * `mp deploy build --env DIR [--dry-run]`: builds every service of the environment that has a `build:`
 * section, where the source is, through the Docker API of the environment's engine; tags each image
 * `<registry>/<name>:<version>` when minipaas.yaml has `registry:` and pushes it there; then records the
 * digests (mp.builds) so the next `mp deploy` deploys exactly what was built.
 *
 * The build is an operation like every other (`mp ops show ID`), one this process runs itself: its row
 * and events are written as it goes (one event per Dockerfile step and per push), and it ends failed
 * with the reason when a step fails or the registry refuses a push. Every image is built before any is
 * pushed, and the digests are recorded only once every push succeeded: a failure records no digest,
 * and no deploy is enqueued.
 */
import { hostname } from 'node:os';
import { SingleBar, MultiBar, Presets } from 'cli-progress';
import { z } from 'zod';
import { buildImage, type BuiltImage } from '../../../agent/build/build.ts';
import { buildsOf, type BuildInputs } from '../../../agent/build/compose.ts';
import { pushBuiltImage, type LayerProgress } from '../../../agent/build/push.ts';
import { pushedReference, registryCredentials, registryHost } from '../../../agent/build/registry.ts';
import { connectDocker, type DockerEngine, type RegistryAuth } from '../../../agent/docker/engine.ts';
import { buildEvent, finishBuild, startBuild, type BuiltImageRecord } from '../../../sql/control/builds.ts';
import { DockerError, MiniPaasError } from '../../../sql/errors.ts';
import type { Context, Writer } from '../../context.ts';
import { loadEnvironment, type LoadedEnvironment } from '../../environment.ts';
import { toJson } from '../../output.ts';

export const options = z
  .object({
    env: z.string().min(1, 'name the environment directory, e.g. --env prod'),
    dryRun: z.boolean().default(false),
  })
  .strict();
export type Options = z.output<typeof options>;

/** One service's build as planned: what is built, every tag it gets, and where it is pushed. */
export interface PlannedBuild {
  inputs: BuildInputs;
  /** `<registry>/<name>:<version>`, when minipaas.yaml has `registry:`. */
  push?: string;
  warnings: string[];
}

/** What a finished build did: the operation, and each service's image. */
export interface BuildSummary {
  operationId: string;
  images: BuiltImageRecord[];
}

/**
 * The builds of an environment as plain data, before any engine is involved: the Compose `build:`
 * sections (`ConfigError` for one that cannot be built as written) and, with `registry:`, the reference
 * each image is pushed as (tagged too, so the engine can push it).
 */
export function planBuilds(env: LoadedEnvironment): PlannedBuild[] {
  return buildsOf(env.model.services, { projectDir: env.projectDir, env: process.env }).map(({ inputs, warnings }) => {
    const registry = env.settings.registry;
    if (!registry) return { inputs, warnings };
    const push = pushedReference(inputs.image, { registry, version: env.settings.deploy.version });
    return { inputs: { ...inputs, extraTags: [...inputs.extraTags.filter((t) => t !== push), push] }, push, warnings };
  });
}

/** A build stopped by `mp ops cancel` or Ctrl-C. */
class BuildCancelledError extends MiniPaasError {
  override readonly exitCode: number = 130;
}

/** The environment's engine (minipaas.yaml `api`, else DOCKER_HOST, else the local socket), answering. */
async function buildEngine(env: LoadedEnvironment): Promise<DockerEngine> {
  const docker = connectDocker({ host: env.settings.api.local ? undefined : env.settings.api.host });
  try {
    await docker.ping(3000);
  } catch (err) {
    throw new DockerError(
      'DOCKER_UNREACHABLE',
      `\`mp deploy build\` builds on the environment's engine, and none answers at ${docker.endpoint}: ${(err as Error).message}`,
      'start dockerd, or set api.host in minipaas.yaml or DOCKER_HOST',
    );
  }
  return docker;
}

/** Layer progress bars on a terminal; one line per pushed image elsewhere (logs, tests, --json). */
interface PushDisplay {
  layer(progress: LayerProgress): void;
  stop(): void;
}

function pushDisplay(ctx: Context): PushDisplay {
  const stream = ctx.stderr as Writer & Partial<NodeJS.WriteStream>;
  if (ctx.json || stream.isTTY !== true) return { layer: () => {}, stop: () => {} };
  const bars = new MultiBar(
    { stream: stream as NodeJS.WriteStream, clearOnComplete: false, hideCursor: true, format: '  {layer} [{bar}] {value}/{total} kB {status}' },
    Presets.shades_classic,
  );
  const byLayer = new Map<string, SingleBar>();
  return {
    layer: (p) => {
      const kb = (n: number): number => Math.ceil(n / 1000);
      let bar = byLayer.get(p.layer);
      if (!bar) {
        bar = bars.create(kb(p.total) || 1, 0, { layer: p.layer, status: p.status });
        byLayer.set(p.layer, bar);
      }
      bar.setTotal(kb(p.total) || 1);
      bar.update(p.done ? kb(p.total) || 1 : kb(p.current), { status: p.status });
    },
    stop: () => bars.stop(),
  };
}

/**
 * Builds (and pushes, with `registry:`) the environment's images as one `build` operation and records
 * them; returns what was recorded. Throws `BuildFailedError` (the failing step and its output),
 * `PushFailedError` (what the registry said), or a cancel, after ending the operation failed or
 * cancelled; nothing is recorded then.
 */
export async function buildEnvironment(ctx: Context, env: LoadedEnvironment): Promise<BuildSummary | undefined> {
  const plan = planBuilds(env);
  for (const p of plan) for (const warning of p.warnings) ctx.stderr.write(`warning: ${warning}\n`);
  if (plan.length === 0) {
    if (!ctx.json) ctx.stdout.write(`no service of ${env.name} has a build: section; nothing to build\n`);
    return undefined;
  }
  // Everything that can fail without the database fails before the operation exists.
  const docker = await buildEngine(env);
  const host = env.settings.registry ? registryHost(env.settings.registry) : undefined;
  const auth: RegistryAuth | undefined = host ? registryCredentials(host) : undefined;

  const pool = ctx.db().pool;
  const opId = await startBuild(pool, {
    environment: env.name,
    host: hostname().replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 63) || 'localhost',
    payload: {
      services: plan.map((p) => p.inputs.service),
      registry: env.settings.registry ?? null,
      version: env.settings.deploy.version ?? null,
      images: Object.fromEntries(plan.map((p) => [p.inputs.service, { image: p.inputs.image, push: p.push ?? null }])),
      // Whose credentials, never what they are.
      auth: auth ? { username: auth.username, serveraddress: auth.serveraddress } : null,
    },
  });
  if (!ctx.json) ctx.stdout.write(`build of ${env.name} started; operation ${opId}\n`);

  // Ctrl-C (ctx.signal) and `mp ops cancel` (learnt with each event) both abort the engine's stream.
  const abort = new AbortController();
  const onInterrupt = (): void => abort.abort();
  ctx.signal.addEventListener('abort', onInterrupt, { once: true });
  const report = async (step: string, message: string, data?: unknown): Promise<void> => {
    if (!ctx.json) ctx.stdout.write(`${step.padEnd(9)} ${message}\n`);
    if (await buildEvent(pool, opId, { step, message, data })) abort.abort();
  };
  const started = Date.now();
  const display = pushDisplay(ctx);
  try {
    const built: { plan: PlannedBuild; image: BuiltImage }[] = [];
    for (const p of plan) {
      const { inputs } = p;
      await report('build', `${inputs.service}: building ${inputs.image} from ${inputs.context}`);
      // Step events in order, one after the other; the first failure to report one is kept, not lost.
      let steps: Promise<void> = Promise.resolve();
      let stepError: unknown;
      const image = await buildImage(docker, inputs, {
        signal: abort.signal,
        onProgress: (progress) => {
          if (progress.kind !== 'step') return;
          const line = `${inputs.service}: step ${progress.step}/${progress.steps} ${progress.instruction}`;
          steps = steps.then(() => report('step', line)).catch((err: unknown) => void (stepError ??= err));
        },
      }).finally(() => steps);
      await steps;
      if (stepError !== undefined) throw stepError;
      await report('built', `${inputs.service}: built ${image.imageId.slice(7, 19)} in ${(image.durationMs / 1000).toFixed(1)} s`, {
        image_id: image.imageId,
        tags: image.tags,
      });
      built.push({ plan: p, image });
    }
    const records: BuiltImageRecord[] = [];
    for (const { plan: p, image } of built) {
      let digest: string | null = null;
      if (p.push) {
        if (abort.signal.aborted) break;
        await report('push', `${p.inputs.service}: pushing ${p.push}`);
        digest = await pushBuiltImage(docker, p.push, { auth, signal: abort.signal, onLayer: (l) => display.layer(l) });
        await report('pushed', `${p.inputs.service}: pushed ${p.push}@${digest}`, { reference: p.push, digest });
      }
      records.push({ service: p.inputs.service, image: p.inputs.image, pushed: p.push ?? null, digest, image_id: image.imageId });
    }
    display.stop();
    if (abort.signal.aborted) throw new BuildCancelledError('BUILD_CANCELLED', `build ${opId} of ${env.name} was cancelled`, 'nothing was recorded; run `mp deploy build` again');
    await finishBuild(pool, opId, { status: 'succeeded', images: records, result: { images: records } });
    if (ctx.json) {
      ctx.stdout.write(`${toJson({ operation: Number(opId), images: records })}\n`);
    } else {
      ctx.stdout.write(`operation ${opId} build succeeded in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
      for (const r of records) {
        ctx.stdout.write(r.digest ? `  ${r.service}: ${r.pushed}@${r.digest}\n` : `  ${r.service}: ${r.image} (${r.image_id.slice(7, 19)}, not pushed: no registry: in minipaas.yaml)\n`);
      }
    }
    return { operationId: opId, images: records };
  } catch (err) {
    display.stop();
    const cancelled = abort.signal.aborted;
    const error = cancelled
      ? new BuildCancelledError('BUILD_CANCELLED', `build ${opId} of ${env.name} was cancelled`, 'nothing was recorded; run `mp deploy build` again')
      : err;
    const message = error instanceof Error ? error.message : String(error);
    // A cancel from `mp ops cancel` has ended the operation already (0009_builds.sql); nothing to add then.
    await finishBuild(pool, opId, { status: cancelled ? 'cancelled' : 'failed', error: message }).catch(() => {});
    throw error;
  } finally {
    ctx.signal.removeEventListener('abort', onInterrupt);
  }
}

/**
 * @example
 *   $ mp deploy build --env prod
 *   build of prod started; operation 41
 *   build     api: building shop-api:1.4.2 from /srv/shop/api
 *   step      api: step 1/6 FROM node:20-bookworm-slim
 *   ...
 *   pushed    api: pushed registry.example.com/shop/shop-api:1.4.2@sha256:3f1c...
 *   operation 41 build succeeded in 38.2 s
 */
export async function run(ctx: Context, opts: Options): Promise<void> {
  const env = loadEnvironment(opts.env);
  if (!opts.dryRun) {
    await buildEnvironment(ctx, env);
    return;
  }
  const plan = planBuilds(env);
  if (ctx.json) {
    ctx.stdout.write(`${toJson({ environment: env.name, builds: plan.map((p) => ({ service: p.inputs.service, context: p.inputs.context, dockerfile: p.inputs.dockerfile, tags: [p.inputs.image, ...p.inputs.extraTags], push: p.push ?? null })) })}\n`);
    return;
  }
  ctx.stdout.write(`builds of ${env.name}, nothing built:\n`);
  for (const p of plan) {
    ctx.stdout.write(`  ${p.inputs.service}: ${p.inputs.dockerfile} in ${p.inputs.context} -> ${[p.inputs.image, ...p.inputs.extraTags].join(', ')}${p.push ? `; push ${p.push}` : ''}\n`);
  }
  if (plan.length === 0) ctx.stdout.write('  (no service has a build: section)\n');
}
