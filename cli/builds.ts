/**
 * Building an environment's images where the source is: every service with a `build:` section, through
 * the Docker API of the environment's engine (agent/build), with one progress line per Dockerfile step.
 * The smallest piece of `mp deploy build`: no registry, no push yet.
 */
import { buildImage, type BuiltImage } from '../agent/build/build.ts';
import { buildsOf } from '../agent/build/compose.ts';
import type { DockerEngine } from '../agent/docker/engine.ts';
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
