/**
 * Building an environment's images where the source is: every service with a `build:` section, through
 * the Docker API of the environment's engine (agent/build), with one progress line per Dockerfile step.
 * `mp dev` uses `buildServices` for the example; `mp deploy build` (cli/commands/deploy/build.ts) adds
 * tags, pushes and the record of what was pushed, which `withRecordedBuilds` puts into the next deploy.
 */
import { buildImage, type BuiltImage } from '../agent/build/build.ts';
import { buildsOf } from '../agent/build/compose.ts';
import type { DockerEngine } from '../agent/docker/engine.ts';
import type { RecordedBuild } from '../sql/control/builds.ts';
import type { StackSpec } from '../stack/types.ts';
import type { Context } from './context.ts';
import type { LoadedEnvironment } from './environment.ts';

/**
 * Builds the environment's services that have `build:`, in file order; throws `BuildFailedError`
 * (the failing step and its output) on the first that fails.
 */
export async function buildServices(ctx: Context, docker: DockerEngine, env: LoadedEnvironment): Promise<BuiltImage[]> {
  const builds = buildsOf(env.model.services, { projectDir: env.projectDir, env: process.env });
  const built: BuiltImage[] = [];
  for (const { inputs, warnings } of builds) {
    for (const warning of warnings) ctx.stderr.write(`warning: ${warning}\n`);
    ctx.stdout.write(`building ${inputs.service} as ${inputs.image}\n`);
    const image = await buildImage(docker, inputs, {
      signal: ctx.signal,
      onProgress: (p) => {
        if (p.kind === 'step') ctx.stdout.write(`  ${inputs.service}: step ${p.step}/${p.steps} ${p.instruction}\n`);
      },
    });
    ctx.stdout.write(`built ${inputs.image} (${image.imageId.slice(7, 19)}) in ${(image.durationMs / 1000).toFixed(1)} s\n`);
    built.push(image);
  }
  return built;
}

/** One service moved onto a recorded build by `withRecordedBuilds`. */
export interface BuiltImageUse {
  service: string;
  /** The image as the Compose files name it. */
  image: string;
  /** What the release deploys instead: `<pushed>@<digest>`. */
  ref: string;
  /** The build operation that pushed it. */
  operationId: string;
}

/**
 * The spec with every service whose image has a recorded, pushed build (`mp deploy build`) moved onto
 * exactly that build: `registry/name:version@sha256:...`. Images without one are left for the agent to
 * pin as before. Pure: the builds are read by the caller (`latestPushedBuilds`).
 *
 * @example
 *   withRecordedBuilds(spec, builds).spec.services[0].spec.TaskTemplate.ContainerSpec.Image
 *   // '127.0.0.1:5000/shop/hello-api:1@sha256:3f1c...'
 */
export function withRecordedBuilds(spec: StackSpec, builds: ReadonlyMap<string, RecordedBuild>): { spec: StackSpec; used: BuiltImageUse[] } {
  const used: BuiltImageUse[] = [];
  const services = spec.services.map((service) => {
    const tpl = service.spec.TaskTemplate;
    if (!tpl || !('ContainerSpec' in tpl) || !tpl.ContainerSpec?.Image) return service;
    const build = builds.get(tpl.ContainerSpec.Image);
    if (!build?.pushed || !build.digest) return service;
    const ref = `${build.pushed}@${build.digest}`;
    used.push({ service: service.key, image: tpl.ContainerSpec.Image, ref, operationId: build.operationId });
    return { ...service, spec: { ...service.spec, TaskTemplate: { ...tpl, ContainerSpec: { ...tpl.ContainerSpec, Image: ref } } } };
  });
  return { spec: { ...spec, services }, used };
}
