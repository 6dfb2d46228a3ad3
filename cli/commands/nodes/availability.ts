/**
 * `mp nodes drain NODE` and `mp nodes activate NODE`: one `node.availability` operation each, followed
 * until it ends (a drain waits until the node's tasks have moved).
 */
import { z } from 'zod';
import { submitOperation } from '../../../sql/control/database.ts';
import type { Context } from '../../context.ts';
import { positiveInt } from '../../inputs.ts';
import { control, followOperation, reportOutcome, requireAgent } from '../../operations.ts';
import { printResult } from '../../output.ts';

export const options = z.object({ node: z.string().min(1), timeout: positiveInt.default(120), detach: z.boolean().default(false) }).strict();
export type Options = z.output<typeof options>;

/** Submits `node.availability` for `availability` and follows it. */
export async function setAvailability(ctx: Context, opts: Options, availability: 'active' | 'drain'): Promise<void> {
  if (!opts.detach) await requireAgent(ctx, 'manager');
  const id = await submitOperation(control(ctx), {
    kind: 'node.availability',
    environment: null,
    payload: { node: opts.node, availability, timeoutSeconds: opts.timeout },
    options: { target: 'manager' },
  });
  if (opts.detach) return printResult(ctx, id, { id: Number(id) });
  reportOutcome(ctx, await followOperation(ctx, id));
}
