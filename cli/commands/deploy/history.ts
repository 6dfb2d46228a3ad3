/** `mp deploy history --env DIR [--limit N]`: the environment's releases, newest first. */
import { z } from 'zod';
import { listCanaries, type Canary } from '../../../sql/control/canaries.ts';
import { listReleases, type Release } from '../../../sql/control/releases.ts';
import type { Context } from '../../context.ts';
import { environmentDir, environmentNameOf } from '../../environment.ts';
import { positiveInt } from '../../inputs.ts';
import { printRows, type Column } from '../../output.ts';

export const options = z.object({ env: z.string().min(1), limit: positiveInt.default(20) }).strict();
export type Options = z.output<typeof options>;

interface Line {
  version: number | string;
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

/**
 * A canary as one history line, at the time it started: kind `canary <service>`, status live,
 * promoted (to release N) or aborted (the reason in the error column); RESTORES is the release it ran beside.
 */
export function canaryLine(c: Canary): Line & { at: Date } {
  const status = c.status === 'promoted' ? `promoted -> ${c.promotedVersion ?? '?'}` : c.status;
  return {
    version: '',
    kind: `canary ${c.service} x${c.replicas}`,
    status,
    restores: c.baseVersion,
    by: [c.requestedBy.os_user, c.requestedBy.host].filter(Boolean).join('@') + (c.requestedBy.role ? ` (${c.requestedBy.role})` : ''),
    commit: c.source.git_commit ? `${c.source.git_commit.slice(0, 10)}${c.source.git_dirty ? '+' : ''}` : '',
    created: c.createdAt,
    seconds: c.endedAt ? `${((c.endedAt.getTime() - c.createdAt.getTime()) / 1000).toFixed(1)} s` : '',
    operation: c.startOperationId,
    error: c.reason ? c.reason.split('\n')[0]!.slice(0, 80) : null,
    at: c.createdAt,
  };
}

export async function run(ctx: Context, opts: Options): Promise<void> {
  const name = environmentNameOf(environmentDir(opts.env));
  const releases = await listReleases(ctx.db().pool, name, opts.limit);
  // Canaries since the oldest release shown, between the releases by time.
  const oldest = releases.at(-1)?.createdAt.getTime() ?? 0;
  const canaries = (await listCanaries(ctx.db().pool, name, { limit: opts.limit })).filter((c) => releases.length < opts.limit || c.createdAt.getTime() >= oldest);
  if (ctx.json) {
    // Releases as before; canaries are entries of kind "canary" among them, by time.
    const entries = [
      ...releases.map((r) => ({ at: r.createdAt, value: { ...r, spec: undefined } as Record<string, unknown> })),
      ...canaries.map((c) => ({ at: c.createdAt, value: { ...c, kind: 'canary', spec: undefined } as Record<string, unknown> })),
    ].sort((a, b) => b.at.getTime() - a.at.getTime());
    ctx.stdout.write(`${JSON.stringify(entries.map((e) => e.value))}\n`);
    return;
  }
  const lines = [...releases.map((r) => ({ ...historyLine(r), at: r.createdAt })), ...canaries.map(canaryLine)]
    .sort((a, b) => b.at.getTime() - a.at.getTime())
    .map(({ at: _at, ...line }) => line);
  printRows(ctx, lines, COLUMNS, `environment ${name} has no releases yet; \`mp deploy --env ${opts.env}\` makes the first`);
}
