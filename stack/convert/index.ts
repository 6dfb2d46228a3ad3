/**
 * The converter: a loaded Compose model to a `StackSpec`, what `docker stack deploy` would create.
 * Pure, apart from reading the files the model names through the injected `readFile`.
 */
import type { ComposeModel } from '../loader/index.ts';
import type { StackSpec } from '../types.ts';
import type { ConvertContext } from './namespace.ts';
import { convertNetworks } from './networks.ts';
import { convertObjects } from './objects.ts';
import { convertService, type ConvertOptions } from './service.ts';
import { unsupportedWarnings } from './warnings.ts';

export type { ConvertContext } from './namespace.ts';
export type { ConvertOptions } from './service.ts';
export { NAMESPACE_LABEL, IMAGE_LABEL } from './namespace.ts';

/** Converts a whole model: networks the services use, every secret and config, every service, warnings. */
export function convertStack(model: ComposeModel, ctx: ConvertContext, opts: ConvertOptions = {}): StackSpec {
  const keys = Object.keys(model.services).sort();
  return {
    name: ctx.stack,
    networks: convertNetworks(model.services, model.networks, ctx),
    secrets: convertObjects('secret', model.secrets, ctx),
    configs: convertObjects('config', model.configs, ctx),
    services: keys.map((key) => ({ key, name: `${ctx.stack}_${key}`, spec: convertService(key, model, ctx, opts) })),
    warnings: unsupportedWarnings(model.services),
  };
}
