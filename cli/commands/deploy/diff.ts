/**
 * `mp deploy diff --env DIR [A [B]]`: what changed between two releases, field by field; with one
 * version, that release against what the directory would deploy now; with none, the last release
 * against the directory.
 */
import { z } from 'zod';
import { diffSpecs, normaliseServiceSpec, type FieldChange } from '../../../agent/deploy/index.ts';
import { latestRelease, releaseByVersion } from '../../../sql/control/releases.ts';
import { NotFoundError } from '../../../sql/errors.ts';
import type { StackObject, StackSpec } from '../../../stack/types.ts';
import type { Context } from '../../context.ts';
import { environmentDir, environmentNameOf, loadEnvironment } from '../../environment.ts';
import { positiveInt } from '../../inputs.ts';
import { toJson } from '../../output.ts';

export const options = z.object({ env: z.string().min(1), from: positiveInt.optional(), to: positiveInt.optional() }).strict();
export type Options = z.output<typeof options>;

/** How two stacks differ: per service, added, removed or the changed fields; objects by content digest. */
export interface StackDiff {
  added: string[];
  removed: string[];
  changed: Record<string, FieldChange[]>;
  objects: string[];
}

type Dict = Record<string, unknown>;

function objectLines(kind: string, a: StackObject[], b: StackObject[]): string[] {
  const lines: string[] = [];
  const before = new Map(a.map((o) => [o.key, o]));
  const after = new Map(b.map((o) => [o.key, o]));
  for (const [key, o] of after) {
    const old = before.get(key);
    if (!old) lines.push(`+ ${kind} ${key}`);
    else if (old.digest !== o.digest || old.name !== o.name) lines.push(`~ ${kind} ${key}: ${old.name} -> ${o.name}${old.digest !== o.digest ? ' (content changed)' : ''}`);
  }
  for (const key of before.keys()) if (!after.has(key)) lines.push(`- ${kind} ${key}`);
  return lines;
}

/**
 * Pure: the difference from stack `a` to stack `b`.
 *
 * @example diffStacks(release3.spec, release4.spec).changed // { web: [{ path: 'TaskTemplate.ContainerSpec.Image', from: 'a:1', to: 'a:2' }] }
 */
export function diffStacks(a: StackSpec, b: StackSpec): StackDiff {
  const before = new Map(a.services.map((s) => [s.key, s]));
  const after = new Map(b.services.map((s) => [s.key, s]));
  const diff: StackDiff = { added: [], removed: [], changed: {}, objects: [...objectLines('secret', a.secrets, b.secrets), ...objectLines('config', a.configs, b.configs)] };
  for (const [key, s] of after) {
    const old = before.get(key);
    if (!old) {
      diff.added.push(key);
      continue;
    }
    const changes = diffSpecs(normaliseServiceSpec(old.spec, {}) as Dict, normaliseServiceSpec(s.spec, {}) as Dict);
    if (changes.length) diff.changed[key] = changes;
  }
  for (const key of before.keys()) if (!after.has(key)) diff.removed.push(key);
  return diff;
}

export async function run(ctx: Context, opts: Options): Promise<void> {
  const name = environmentNameOf(environmentDir(opts.env));
  const pool = ctx.db().pool;
  let fromLabel: string;
  let toLabel: string;
  let a: StackSpec;
  let b: StackSpec;
  if (opts.from !== undefined && opts.to !== undefined) {
    a = (await releaseByVersion(pool, name, opts.from)).spec;
    b = (await releaseByVersion(pool, name, opts.to)).spec;
    [fromLabel, toLabel] = [`release ${opts.from}`, `release ${opts.to}`];
  } else {
    const base = opts.from !== undefined ? await releaseByVersion(pool, name, opts.from) : await latestRelease(pool, name);
    if (!base) throw new NotFoundError('UNKNOWN_RELEASE', `environment ${name} has no releases yet`, `\`mp deploy --env ${opts.env}\` makes the first`);
    a = base.spec;
    b = loadEnvironment(opts.env).spec;
    [fromLabel, toLabel] = [`release ${base.version}`, `${opts.env} now`];
  }
  const diff = diffStacks(a, b);
  if (ctx.json) {
    ctx.stdout.write(`${toJson({ from: fromLabel, to: toLabel, ...diff })}\n`);
    return;
  }
  ctx.stdout.write(`${fromLabel} -> ${toLabel}\n`);
  const empty = !diff.added.length && !diff.removed.length && !Object.keys(diff.changed).length && !diff.objects.length;
  if (empty) ctx.stdout.write('no differences\n');
  for (const key of diff.added) ctx.stdout.write(`+ service ${key}\n`);
  for (const key of diff.removed) ctx.stdout.write(`- service ${key}\n`);
  for (const [key, changes] of Object.entries(diff.changed)) {
    ctx.stdout.write(`~ service ${key}\n`);
    for (const c of changes) ctx.stdout.write(`    ${c.path}: ${JSON.stringify(c.from) ?? 'unset'} -> ${JSON.stringify(c.to) ?? 'unset'}\n`);
  }
  for (const line of diff.objects) ctx.stdout.write(`${line}\n`);
}
