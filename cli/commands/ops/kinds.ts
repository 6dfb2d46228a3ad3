/** `mp ops kinds`: the operation kinds agents can run, with their target, description and an example payload. */
import { z } from 'zod';
import { executors, knownKinds } from '../../../agent/executors/index.ts';
import type { Context } from '../../context.ts';
import { printRows, type Column } from '../../output.ts';

export const options = z.object({}).strict();
export type Options = z.output<typeof options>;

/** One kind, as `--json` prints it. */
export interface KindRow {
  kind: string;
  target: string;
  description: string;
  example: unknown;
}

const COLUMNS: Column<KindRow>[] = [
  { key: 'kind' },
  { key: 'target' },
  { key: 'description' },
  { key: 'example', heading: 'EXAMPLE PAYLOAD' },
];

/** Lists the executor registry (`agent/executors/index.ts`); no database needed. */
export function kindRows(): KindRow[] {
  return knownKinds().map((kind) => {
    const e = executors.get(kind)!;
    return { kind, target: e.target === 'node' ? 'node:<name>' : e.target, description: e.description, example: e.example };
  });
}

/**
 * @example
 *   $ mp ops kinds
 *   KIND           TARGET   DESCRIPTION                                  EXAMPLE PAYLOAD
 *   docker.info    any      report the engine's version, OS, swarm ...   {}
 */
export async function run(ctx: Context, _opts: Options): Promise<void> {
  printRows(ctx, kindRows(), COLUMNS, 'no operation kinds');
}
