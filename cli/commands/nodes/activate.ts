/** `mp nodes activate NODE`: lets Swarm schedule tasks on the node again. */
import type { Context } from '../../context.ts';
import { setAvailability, type Options } from './availability.ts';

export { options } from './availability.ts';

export async function run(ctx: Context, opts: Options): Promise<void> {
  await setAvailability(ctx, opts, 'active');
}
