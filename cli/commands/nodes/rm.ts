/** `mp nodes rm NODE [--force]`: removes the node from the Swarm (drained or down first, or --force). */
import { z } from 'zod';
import { submitOperation } from '../../../sql/control/database.ts';
import type { Context } from '../../context.ts';
import { control, followOperation, reportOutcome, requireAgent } from '../../operations.ts';

export const options = z.object({ node: z.string().min(1), force: z.boolean().default(false) }).strict();
export type Options = z.output<typeof options>;

export async function run(ctx: Context, opts: Options): Promise<void> {
  await requireAgent(ctx, 'manager');
  const id = await submitOperation(control(ctx), { kind: 'node.remove', environment: null, payload: { node: opts.node, force: opts.force }, options: { target: 'manager' } });
  reportOutcome(ctx, await followOperation(ctx, id));
}
