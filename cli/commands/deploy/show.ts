/** `mp deploy show --env DIR VERSION`: one release: who, when, how it ended, its images and its full spec. */
import { z } from 'zod';
import { releaseByVersion } from '../../../sql/control/releases.ts';
import type { Context } from '../../context.ts';
import { environmentDir, environmentNameOf } from '../../environment.ts';
import { positiveInt } from '../../inputs.ts';
import { toJson } from '../../output.ts';
import { historyLine } from './history.ts';

export const options = z.object({ env: z.string().min(1), version: positiveInt }).strict();
export type Options = z.output<typeof options>;

export async function run(ctx: Context, opts: Options): Promise<void> {
  const name = environmentNameOf(environmentDir(opts.env));
  const r = await releaseByVersion(ctx.db().pool, name, opts.version);
  if (ctx.json) {
    ctx.stdout.write(`${toJson(r)}\n`);
    return;
  }
  const line = historyLine(r);
  const out = (k: string, v: unknown): void => void ctx.stdout.write(`${k.padEnd(12)}${v === null || v === undefined || v === '' ? '-' : String(v)}\n`);
  out('release', `${r.version} of ${r.environment} (stack ${r.stack})`);
  out('kind', r.kind + (r.restores !== null ? ` of release ${r.restores}` : ''));
  out('status', r.status);
  out('by', line.by);
  out('commit', line.commit);
  out('created', r.createdAt.toISOString());
  out('finished', r.finishedAt?.toISOString());
  out('operation', r.operationId);
  out('error', r.error);
  ctx.stdout.write('images\n');
  for (const [service, image] of Object.entries(r.images ?? {})) ctx.stdout.write(`  ${service}: ${image.ref}${image.id ? ` (id ${image.id.slice(7, 19)})` : ''}\n`);
  ctx.stdout.write('spec\n');
  ctx.stdout.write(`${JSON.stringify(r.spec, null, 2).replace(/^/gm, '  ')}\n`);
}
