/**
 * `mp secret rotate-key [--detach]`: enqueues `secrets.rotate_key`, in which a manager agent makes a
 * new cluster key pair, re-seals every stored secret to it and then destroys the old private key; and
 * follows it. Runs on its own serial key, not behind any environment's operations.
 */
import { sql } from 'kysely';
import { z } from 'zod';
import { mapDatabaseErrors } from '../../../sql/errors.ts';
import type { Context } from '../../context.ts';
import { printResult } from '../../output.ts';
import { requireAgent } from '../../operations.ts';
import { control, follow } from './common.ts';

export const options = z.object({ detach: z.boolean().default(false) }).strict();
export type Options = z.output<typeof options>;

/**
 * @example
 *   $ mp secret rotate-key
 *   operation 31 rotates the cluster key
 *   ...  reseal     4 stored secrets re-sealed to key 2
 *   ...  destroy    1 old private key removed from .mp/dev/cluster.key
 */
export async function run(ctx: Context, opts: Options): Promise<void> {
  if (!opts.detach) await requireAgent(ctx, 'manager');
  const { rows } = await mapDatabaseErrors(() => sql<{ id: string }>`select mp.secrets_rotate_key() as id`.execute(control(ctx)));
  const id = rows[0]!.id;
  printResult(ctx, `operation ${id} rotates the cluster key`, { operation: Number(id) });
  await follow(ctx, id, opts.detach);
}
