/** `mp migrate`: applies the SQL migrations this version ships that the database does not have yet. */
import { z } from 'zod';
import { migrate } from '../../sql/migrate.ts';
import type { Context } from '../context.ts';
import { printResult } from '../output.ts';

export const options = z.object({}).strict();
export type Options = z.output<typeof options>;

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/**
 * Brings the database up to date, printing each file as it is applied (after its transaction commits,
 * so a line printed is a migration done even if a later one fails).
 *
 * @example
 *   $ mp migrate
 *   applied queues/0001_queues.sql
 *   database is up to date (1 migration applied, 0 already applied)
 */
export async function run(ctx: Context, _opts: Options): Promise<void> {
  const result = await migrate({
    connectionString: ctx.databaseUrl(),
    onApply: (id) => {
      if (!ctx.json) ctx.stdout.write(`applied ${id}\n`);
    },
  });
  printResult(
    ctx,
    `database is up to date (${plural(result.applied.length, 'migration')} applied, ${result.alreadyApplied} already applied)`,
    { applied: result.applied, alreadyApplied: result.alreadyApplied },
  );
}
