/** `mp nodes drain NODE [--timeout S]`: moves the node's tasks elsewhere and waits until they have. */
import type { Context } from '../../context.ts';
import { setAvailability, type Options } from './availability.ts';

export { options } from './availability.ts';

export async function run(ctx: Context, opts: Options): Promise<void> {
  await setAvailability(ctx, opts, 'drain');
}
