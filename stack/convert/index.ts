/**
 * The converter: a loaded Compose model to a `StackSpec`, what `docker stack deploy` would create.
 * Pure, apart from reading the files the model names through the injected `readFile`.
 */
import type { ComposeModel } from '../loader/index.ts';
import type { StackJob, StackService, StackSpec } from '../types.ts';
import { jobMarking } from './jobs.ts';
import type { ConvertContext } from './namespace.ts';
import { convertNetworks } from './networks.ts';
import { convertObjects } from './objects.ts';
import { convertService, type ConvertOptions } from './service.ts';
import { unsupportedWarnings } from './warnings.ts';

export type { ConvertContext } from './namespace.ts';
export type { ConvertOptions } from './service.ts';
export { NAMESPACE_LABEL, IMAGE_LABEL } from './namespace.ts';

/**
 * Converts a whole model: networks the services use, every secret and config, every service, warnings.
 * Job templates (stack/convert/jobs.ts) go to `jobs` instead of `services`, so a deploy never starts
 * them; `jobs` is set only when there are some, so a stack without any converts as before.
 */
export function convertStack(model: ComposeModel, ctx: ConvertContext, opts: ConvertOptions = {}): StackSpec {
  const keys = Object.keys(model.services).sort();
  const services: StackService[] = [];
  const jobs: StackJob[] = [];
  for (const key of keys) {
    const spec = convertService(key, model, ctx, opts);
    const marking = jobMarking(key, model.services[key] as Record<string, unknown>, ctx);
    if (marking) jobs.push({ key, name: `${ctx.stack}_${key}`, ...marking, spec });
    else services.push({ key, name: `${ctx.stack}_${key}`, spec });
  }
  return {
    name: ctx.stack,
    networks: convertNetworks(model.services, model.networks, ctx),
    secrets: convertObjects('secret', model.secrets, ctx),
    configs: convertObjects('config', model.configs, ctx),
    services,
    ...(jobs.length ? { jobs } : {}),
    warnings: unsupportedWarnings(model.services),
  };
}
