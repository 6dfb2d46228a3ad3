/**
 * `secret.create`: a manager agent opens a sealed secret version stored by `mp secret create` and
 * creates its Swarm secret under the version's own name (`<stack>_<name>_<version>`: Swarm secrets are
 * immutable, so each version is its own object). The value exists in plaintext only in this agent's
 * memory for the one call, and in Swarm's encrypted Raft store after.
 *
 * Idempotent: a secret with that name already there (an earlier attempt, a second create of the same
 * value) is kept; a version deleted meanwhile is not created.
 *
 * `config.create` (config-create.ts) is the same with a config's plain content.
 */
import type pg from 'pg';
import { z } from 'zod';
import { readSealedSecret } from '../../sql/control/secrets.ts';
import { ConflictError, NotFoundError } from '../../sql/errors.ts';
import type { DockerEngine, SwarmObject } from '../docker/engine.ts';
import type { Executor, ExecutorContext } from './types.ts';

/** Labels on every managed secret and config: `docker secret ls --filter label=org.minipaas.managed`. */
export const MANAGED_LABEL = 'org.minipaas.managed';
export const ENVIRONMENT_LABEL = 'org.minipaas.environment';
export const NAME_LABEL = 'org.minipaas.name';
export const VERSION_LABEL = 'org.minipaas.version';

/** A Swarm object name: what the engine accepts (it refuses anything else with a 400). */
export const swarmObjectName = z
  .string()
  .max(64)
  .regex(/^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$/, 'use letters, digits, _ . - and start and end with a letter or digit');

export const payloadSchema = z.strictObject({
  secret: z.int().positive(),
  name: z.string().min(1),
  version: z.string().regex(/^[0-9a-f]{12}$/),
  swarmName: swarmObjectName,
});
export type SecretCreatePayload = z.infer<typeof payloadSchema>;

/** What the plan depends on: the stored version and the Swarm object of that name, if any. */
export interface ManagedState {
  /** The version's environment, or null when the row is gone. */
  environment: string | null;
  deleted: boolean;
  existing: SwarmObject | null;
}

export type ManagedCreateAction =
  | { type: 'create'; name: string; labels: Record<string, string> }
  | { type: 'keep'; name: string; id: string }
  | { type: 'skip-deleted'; name: string };

/** The pool the executor reads rows with; executors of managed objects cannot run without one. */
export function poolOf(ctx: Pick<ExecutorContext, 'pool'>, kind: string): pg.Pool {
  if (!ctx.pool) throw new ConflictError('NO_DATABASE', `${kind} reads its row from the database, and this context has none`, 'run it through an agent');
  return ctx.pool;
}

/** The object of exactly this name (the engine's name filter matches prefixes). */
export async function exactObject(docker: DockerEngine, kind: 'secret' | 'config', name: string): Promise<SwarmObject | null> {
  const list = kind === 'secret' ? await docker.listSecrets({ name: [name] }) : await docker.listConfigs({ name: [name] });
  return list.find((o) => o.name === name) ?? null;
}

/** Pure: keep an existing object, skip a deleted version, or create it with the managed labels. */
export function planManagedCreate(kind: 'secret' | 'config', p: { name: string; version: string; swarmName: string }, state: ManagedState): ManagedCreateAction[] {
  if (state.existing) return [{ type: 'keep', name: p.swarmName, id: state.existing.id }];
  if (state.deleted || state.environment === null) return [{ type: 'skip-deleted', name: p.swarmName }];
  return [
    {
      type: 'create',
      name: p.swarmName,
      labels: { [MANAGED_LABEL]: kind, [ENVIRONMENT_LABEL]: state.environment, [NAME_LABEL]: p.name, [VERSION_LABEL]: p.version },
    },
  ];
}

/** Creates, treating "already exists" as done: a second agent or a resumed attempt may have won. */
export async function createIdempotent(create: () => Promise<string>, find: () => Promise<SwarmObject | null>): Promise<{ id: string; created: boolean }> {
  try {
    return { id: await create(), created: true };
  } catch (err) {
    if (err instanceof ConflictError) {
      const found = await find();
      if (found) return { id: found.id, created: false };
    }
    throw err;
  }
}

async function observe(ctx: ExecutorContext, payload: SecretCreatePayload): Promise<ManagedState> {
  const row = await readSealedSecret(poolOf(ctx, 'secret.create'), String(payload.secret));
  return {
    environment: row?.environment ?? null,
    deleted: row?.deletedAt != null,
    existing: await exactObject(ctx.docker, 'secret', payload.swarmName),
  };
}

async function execute(ctx: ExecutorContext, payload: SecretCreatePayload): Promise<{ name: string; id: string | null; created: boolean }> {
  const state = await observe(ctx, payload);
  const action = plan(payload, state)[0]!;
  if (action.type === 'keep') {
    await ctx.step('done', `secret '${action.name}' already exists (version ${payload.version})`, { id: action.id });
    return { name: action.name, id: action.id, created: false };
  }
  if (action.type === 'skip-deleted') {
    await ctx.step('done', `secret ${payload.name} version ${payload.version} was deleted before it was created; nothing to do`);
    return { name: action.name, id: null, created: false };
  }
  if (!ctx.openSealed) {
    throw new ConflictError(
      'NO_CLUSTER_KEY',
      'this agent holds no cluster key, so it cannot open the secret',
      'start manager agents with MP_CLUSTER_KEY_FILE (`mp agent install` mounts it; `mp dev` passes its own)',
    );
  }
  const row = await readSealedSecret(poolOf(ctx, 'secret.create'), String(payload.secret));
  if (!row) throw new NotFoundError('MP009', `secret version ${payload.secret} no longer exists`);
  const value = await ctx.openSealed(row.sealed);
  await ctx.step('create', `creating secret '${action.name}'`, { version: payload.version });
  try {
    const { id, created } = await createIdempotent(
      () => ctx.docker.createSecretSpec({ Name: action.name, Labels: action.labels, Data: value.toString('base64') }),
      () => exactObject(ctx.docker, 'secret', action.name),
    );
    await ctx.step('done', `secret '${action.name}' ${created ? 'created' : 'already exists'}`, { id });
    return { name: action.name, id, created };
  } finally {
    value.fill(0);
  }
}

function plan(payload: SecretCreatePayload, state: ManagedState): ManagedCreateAction[] {
  return planManagedCreate('secret', payload, state);
}

export const secretCreate: Executor<SecretCreatePayload, ManagedState, ManagedCreateAction, { name: string; id: string | null; created: boolean }> = {
  kind: 'secret.create',
  description: 'open a sealed secret version and create its Swarm secret (<stack>_<name>_<version>); `mp secret create` submits it',
  example: { secret: 1, name: 'db_password', version: '3f2a9c1b7d4e', swarmName: 'shop_db_password_3f2a9c1b7d4e' },
  payloadSchema,
  target: 'manager',
  observe,
  plan,
  execute,
};
