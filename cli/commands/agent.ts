/** `mp agent [--name N] [--provisioner] [--concurrency N]`: runs a node agent in the foreground. */
import { z } from 'zod';
import type { Context } from '../context.ts';
import { nodeName, positiveInt } from '../inputs.ts';
import { checkSchema, probeDocker, runLocalAgent, untilStopped } from '../local-agent.ts';

export const options = z
  .object({
    name: nodeName.optional(),
    provisioner: z.boolean().default(false),
    concurrency: positiveInt.refine((n) => n <= 64, 'must be at most 64').default(4),
  })
  .strict();
export type Options = z.output<typeof options>;

/**
 * Checks the schema (it never migrates: run `mp migrate`), probes the local Docker engine (without one
 * it still runs and says which operations cannot), registers the node and claims operations until
 * SIGINT/SIGTERM, then stops claiming, lets running operations finish (or releases them after 30 s),
 * marks the node stopped and exits 0. Steps are logged to stderr.
 *
 * @example
 *   $ DATABASE_URL=postgres://... mp agent --name node-1
 *   agent node-1 registered; claims node:node-1, manager; Ctrl-C stops it
 */
export async function run(ctx: Context, opts: Options): Promise<void> {
  const url = ctx.databaseUrl();
  await checkSchema(ctx.db().pool);
  const docker = await probeDocker(ctx);
  const local = await runLocalAgent(ctx, { url, name: opts.name, provisioner: opts.provisioner, concurrency: opts.concurrency, docker });
  try {
    const { agent } = local;
    ctx.stdout.write(`agent ${agent.name} registered; claims ${agent.targets.join(', ')}; Ctrl-C stops it\n`);
    await untilStopped(ctx);
    ctx.stderr.write(`stopping agent ${agent.name}: running operations finish (or are released after 30 s)\n`);
  } finally {
    await local.stop();
  }
  ctx.stdout.write(`agent ${local.agent.name} stopped\n`);
}
