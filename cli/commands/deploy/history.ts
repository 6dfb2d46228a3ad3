/** `mp deploy history --env DIR [--limit N]`: the environment's releases, newest first. */
import { z } from 'zod';
import { listReleases, type Release } from '../../../sql/control/releases.ts';
import type { Context } from '../../context.ts';
import { environmentDir, environmentNameOf } from '../../environment.ts';
import { positiveInt } from '../../inputs.ts';
import { printRows, type Column } from '../../output.ts';

export const options = z.object({ env: z.string().min(1), limit: positiveInt.default(20) }).strict();
export type Options = z.output<typeof options>;

interface Line {
  version: number;
  kind: string;
  status: string;
  restores: number | null;
  by: string;
  commit: string;
  created: Date;
  seconds: string;
  operation: string | null;
  error: string | null;
}

const COLUMNS: Column<Line>[] = [
  { key: 'version', heading: 'RELEASE', right: true },
  { key: 'kind' },
  { key: 'status' },
  { key: 'restores', right: true },
  { key: 'by' },
  { key: 'commit' },
  { key: 'created' },
  { key: 'seconds', heading: 'TOOK', right: true },
  { key: 'operation', heading: 'OP', right: true },
  { key: 'error' },
];

/** A release as one history line. */
export function historyLine(r: Release): Line {
  return {
    version: r.version,
    kind: r.kind,
    status: r.status,
    restores: r.restores,
    by: [r.requestedBy.os_user, r.requestedBy.host].filter(Boolean).join('@') + (r.requestedBy.role ? ` (${r.requestedBy.role})` : ''),
    commit: r.source.git_commit ? `${r.source.git_commit.slice(0, 10)}${r.source.git_dirty ? '+' : ''}` : '',
    created: r.createdAt,
    seconds: r.finishedAt ? `${((r.finishedAt.getTime() - r.createdAt.getTime()) / 1000).toFixed(1)} s` : '',
    operation: r.operationId,
    error: r.error ? r.error.split('\n')[0]!.slice(0, 80) : null,
  };
}

export async function run(ctx: Context, opts: Options): Promise<void> {
  const name = environmentNameOf(environmentDir(opts.env));
  const releases = await listReleases(ctx.db().pool, name, opts.limit);
  if (ctx.json) {
    ctx.stdout.write(`${JSON.stringify(releases.map((r) => ({ ...r, spec: undefined })))}\n`);
    return;
  }
  printRows(ctx, releases.map(historyLine), COLUMNS, `environment ${name} has no releases yet; \`mp deploy --env ${opts.env}\` makes the first`);
}
