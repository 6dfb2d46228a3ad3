/**
 * What the `mp secret` and `mp config` verbs share: the environment directory they act on, the name
 * checks Swarm would make later, the `--for` edits of the Compose files (planned and checked before
 * anything is written), and following the operation they submit.
 *
 * Terminology (docs/secrets.md): a *managed* secret or config is one these commands hold, by name, in
 * versions; a Compose file refers to it as an external secret/config of that name, which
 * `mp deploy` pins to the current version.
 */
import { resolve } from 'node:path';
import { z } from 'zod';
import type { Context } from '../../context.ts';
import { positiveInt } from '../../inputs.ts';
import { printResult, printRows, type Column } from '../../output.ts';
import { environmentDir, environmentNameOf, readSettings } from '../../environment.ts';
import { control, followOperation, reportOutcome, requireAgent, requireEnvironment } from '../../operations.ts';
import { deleteManaged, listManaged, MANAGED_NAME, pruneCandidates, type ManagedKind, type ManagedVersion } from '../../../sql/control/secrets.ts';
import { listNames, nearMiss } from '../../../agent/executors/near-miss.ts';
import { ConfigError, NotFoundError } from '../../../sql/errors.ts';
import { checkChanges, managedObjectEdits, planComposeEdits, readFilesForEdit, type FileChange } from '../../../stack/edit/index.ts';

/** An environment directory as these commands need it. */
export interface ManagedEnvironment {
  /** The database name of the environment. */
  name: string;
  dir: string;
  stack: string;
  /** The Compose files, absolute, in `project.files` order. */
  files: string[];
}

/** Reads `--env DIR`: its minipaas.yaml, stack name and Compose files. */
export function managedEnvironment(env: string): ManagedEnvironment {
  const dir = environmentDir(env);
  const settings = readSettings(dir);
  const stack = settings.stack ?? dir.split('/').filter(Boolean).at(-1)!;
  return { name: environmentNameOf(dir), dir, stack, files: settings.project.files.map((f) => resolve(dir, f)) };
}

/** Version suffix of a Swarm name: `_` and 12 hex characters. */
const VERSION_SUFFIX = 13;
/** Swarm's limit on object names. */
const SWARM_NAME_MAX = 64;

/**
 * Refuses a name Swarm would refuse for `<stack>_<name>_<version>`: its characters, and its length
 * once the stack and the version are around it. `ConfigError` naming the rule and a fixed name.
 */
export function checkManagedName(kind: ManagedKind, name: string, stack: string): void {
  const max = Math.min(50, SWARM_NAME_MAX - VERSION_SUFFIX - stack.length - 1);
  if (MANAGED_NAME.test(name) && name.length <= max) return;
  const fixed = name.replace(/[^A-Za-z0-9_.-]+/g, '_').replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '').slice(0, max);
  const why = MANAGED_NAME.test(name)
    ? `is ${name.length} characters; with the stack '${stack}' and the version its Swarm name '${stack}_${name}_<version>' would pass Swarm's ${SWARM_NAME_MAX}, so at most ${max}`
    : "is not a name Swarm accepts: letters, digits, '_', '.' and '-', starting and ending with a letter or digit";
  throw new ConfigError('INVALID_NAME', `${kind} name '${name}' ${why}`, fixed ? `use e.g. --name ${fixed}` : 'pick a name of letters and digits');
}

/**
 * The `--for` edits, planned against the files as they are now and checked writable and unchanged;
 * nothing is written. `ConfigError` for a service no file defines (listing those that do) and for a
 * read-only file.
 */
export async function planFor(kind: ManagedKind, name: string, services: string[], env: ManagedEnvironment): Promise<{ changes: FileChange[]; notes: string[] }> {
  if (services.length === 0) return { changes: [], notes: [] };
  const read = await readFilesForEdit(env.files);
  const plan = planComposeEdits(read, managedObjectEdits(kind, name, services, read));
  const changes = plan.changes.map((c) => ({ ...c, mtimeMs: read.find((r) => r.path === c.path)!.mtimeMs }));
  await checkChanges(changes);
  return { changes, notes: plan.notes };
}

/** Refuses an unknown environment (near miss) and, unless detached, the absence of a manager agent. */
export async function checkCanSubmit(ctx: Context, env: ManagedEnvironment, detach: boolean): Promise<void> {
  await requireEnvironment(ctx, env.name);
  if (!detach) await requireAgent(ctx, 'manager');
}

/** Follows the operation to its end (exit 8 when it failed), or prints its id with `--detach`. */
export async function follow(ctx: Context, operationId: string, detach: boolean): Promise<void> {
  if (detach) return;
  reportOutcome(ctx, await followOperation(ctx, operationId));
}

export { control };

/* ---------------------------------------------------------------- ls, delete, prune (secrets and configs alike) */

/** Options of `ls`. */
export const lsOptions = z.object({ env: z.string().min(1, 'name the environment directory, e.g. --env prod'), all: z.boolean().default(false) }).strict();

/** Lists versions: current and older live ones (with `--all`, deleted ones too); never a value. */
export async function runLs(ctx: Context, kind: ManagedKind, opts: z.output<typeof lsOptions>): Promise<void> {
  const env = managedEnvironment(opts.env);
  await requireEnvironment(ctx, env.name);
  const rows = (await listManaged(control(ctx), kind, env.name)).filter((v) => opts.all || v.deletedAt === null);
  const columns: Column<ManagedVersion>[] = [
    { key: 'name', heading: kind.toUpperCase() },
    { key: 'version' },
    { key: 'current' },
    { key: 'swarmName', heading: 'SWARM NAME' },
    ...(kind === 'config' ? [{ key: 'bytes' as const, right: true }] : []),
    { key: 'createdAt', heading: 'CREATED' },
    { key: 'createdBy', heading: 'BY' },
    { key: 'operationStatus', heading: 'OPERATION' },
    ...(opts.all ? [{ key: 'deletedAt' as const, heading: 'DELETED' }] : []),
  ];
  printRows(ctx, rows, columns, `no ${kind}s in ${env.name}: create one with \`mp ${kind} create --env ${opts.env} --name NAME\``);
}

/** Options of `delete`. */
export const deleteOptions = z
  .object({
    env: z.string().min(1, 'name the environment directory, e.g. --env prod'),
    name: z.string().min(1),
    version: z.array(z.string().regex(/^[0-9a-f]{12}$/, 'a version is 12 hex characters (`ls` shows them)')).optional(),
    detach: z.boolean().default(false),
  })
  .strict();

/**
 * Refuses, before anything is written, a name with no live version (suggesting the near miss) and a
 * `--version` the name does not have (listing those it has).
 */
async function checkDeletable(ctx: Context, kind: ManagedKind, env: ManagedEnvironment, opts: z.output<typeof deleteOptions>): Promise<void> {
  const live = (await listManaged(control(ctx), kind, env.name)).filter((v) => v.deletedAt === null);
  const names = [...new Set(live.map((v) => v.name))];
  if (!names.includes(opts.name)) {
    const guess = nearMiss(opts.name, names);
    throw new NotFoundError(
      'MP009',
      `${kind} '${opts.name}' of environment ${env.name} has no live version to delete${guess ? ` (did you mean '${guess}'?)` : ''}; ${kind}s: ${listNames(names)}`,
      guess ? `\`mp ${kind} delete --env ${opts.env} --name ${guess}\`` : `\`mp ${kind} ls --env ${opts.env}\` lists them`,
    );
  }
  const versions = live.filter((v) => v.name === opts.name).map((v) => v.version);
  const unknown = (opts.version ?? []).filter((v) => !versions.includes(v));
  if (unknown.length > 0) {
    throw new NotFoundError(
      'MP009',
      `${kind} '${opts.name}' has no live version ${unknown.join(', ')}; its versions: ${listNames(versions)}`,
      `\`mp ${kind} ls --env ${opts.env} --all\` shows every version, deleted ones too`,
    );
  }
}

/** Marks the versions deleted and follows the operation removing their Swarm objects. */
export async function runDelete(ctx: Context, kind: ManagedKind, opts: z.output<typeof deleteOptions>): Promise<void> {
  const env = managedEnvironment(opts.env);
  await checkCanSubmit(ctx, env, opts.detach);
  await checkDeletable(ctx, kind, env, opts);
  const id = await deleteManaged(control(ctx), { kind, environment: env.name, name: opts.name, versions: opts.version });
  printResult(ctx, `${kind} ${opts.name}${opts.version ? ` version ${opts.version.join(', ')}` : ' (every version)'} deleted; operation ${id} removes it from Swarm`, { operation: Number(id) });
  await follow(ctx, id, opts.detach);
}

/** Options of `prune`. */
export const pruneOptions = z
  .object({
    env: z.string().min(1, 'name the environment directory, e.g. --env prod'),
    keep: positiveInt.default(5),
    delete: z.boolean().default(false),
    detach: z.boolean().default(false),
  })
  .strict();

/**
 * Lists the versions neither current nor used by the last `--keep` releases; with `--delete`, deletes
 * them (one operation per name). Versions a recent release uses stay, so `mp rollback` can bring them back.
 */
export async function runPrune(ctx: Context, kind: ManagedKind, opts: z.output<typeof pruneOptions>): Promise<void> {
  const env = managedEnvironment(opts.env);
  if (opts.delete) await checkCanSubmit(ctx, env, opts.detach);
  else await requireEnvironment(ctx, env.name);
  const candidates = await pruneCandidates(control(ctx), { kind, environment: env.name, keepReleases: opts.keep });
  if (!opts.delete) {
    printRows(ctx, candidates, [{ key: 'name', heading: kind.toUpperCase() }, { key: 'version' }, { key: 'swarmName', heading: 'SWARM NAME' }, { key: 'createdAt', heading: 'CREATED' }],
      `nothing to prune: every ${kind} version of ${env.name} is current or used by the last ${opts.keep} releases`);
    if (candidates.length > 0 && !ctx.json) ctx.stdout.write(`\`mp ${kind} prune --env ${opts.env} --delete\` deletes them\n`);
    return;
  }
  const byName = new Map<string, string[]>();
  for (const c of candidates) byName.set(c.name, [...(byName.get(c.name) ?? []), c.version]);
  if (byName.size === 0) {
    printResult(ctx, `nothing to prune in ${env.name}`, { operations: [] });
    return;
  }
  const ids: string[] = [];
  for (const [name, versions] of byName) ids.push(await deleteManaged(control(ctx), { kind, environment: env.name, name, versions }));
  printResult(ctx, `pruned ${candidates.length} ${kind} version${candidates.length === 1 ? '' : 's'}; operation${ids.length === 1 ? '' : 's'} ${ids.join(', ')}`, { operations: ids.map(Number) });
  for (const id of ids) await follow(ctx, id, opts.detach);
}
