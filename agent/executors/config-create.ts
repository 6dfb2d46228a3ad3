/**
 * `config.create`: a manager agent creates the Swarm config of a version stored by `mp config create`
 * under the version's own name (`<stack>_<name>_<version>`; Swarm configs are immutable). Configs are
 * not secret: the content is stored as it is. Idempotent as `secret.create`.
 */
import { z } from 'zod';
import { readConfig } from '../../sql/control/secrets.ts';
import { NotFoundError } from '../../sql/errors.ts';
import {
  createIdempotent,
  exactObject,
  planManagedCreate,
  poolOf,
  swarmObjectName,
  type ManagedCreateAction,
  type ManagedState,
} from './secret-create.ts';
import type { Executor, ExecutorContext } from './types.ts';

export const payloadSchema = z.strictObject({
  config: z.int().positive(),
  name: z.string().min(1),
  version: z.string().regex(/^[0-9a-f]{12}$/),
  swarmName: swarmObjectName,
});
export type ConfigCreatePayload = z.infer<typeof payloadSchema>;

type Result = { name: string; id: string | null; created: boolean };

async function observe(ctx: ExecutorContext, payload: ConfigCreatePayload): Promise<ManagedState> {
  const pool = poolOf(ctx, 'config.create');
  const { rows } = await pool.query<{ environment: string; deleted: boolean }>(
    `select environment, deleted_at is not null as deleted from mp.configs where id = $1`,
    [payload.config],
  );
  return {
    environment: rows[0]?.environment ?? null,
    deleted: rows[0]?.deleted ?? false,
    existing: await exactObject(ctx.docker, 'config', payload.swarmName),
  };
}

function plan(payload: ConfigCreatePayload, state: ManagedState): ManagedCreateAction[] {
  return planManagedCreate('config', payload, state);
}

async function execute(ctx: ExecutorContext, payload: ConfigCreatePayload): Promise<Result> {
  const action = plan(payload, await observe(ctx, payload))[0]!;
  if (action.type === 'keep') {
    await ctx.step('done', `config '${action.name}' already exists (version ${payload.version})`, { id: action.id });
    return { name: action.name, id: action.id, created: false };
  }
  if (action.type === 'skip-deleted') {
    await ctx.step('done', `config ${payload.name} version ${payload.version} was deleted before it was created; nothing to do`);
    return { name: action.name, id: null, created: false };
  }
  const row = await readConfig(poolOf(ctx, 'config.create'), String(payload.config));
  if (!row) throw new NotFoundError('MP009', `config version ${payload.config} no longer exists`);
  await ctx.step('create', `creating config '${action.name}' (${row.data.length} bytes)`, { version: payload.version });
  const { id, created } = await createIdempotent(
    () => ctx.docker.createConfig({ Name: action.name, Labels: action.labels, Data: row.data.toString('base64') }),
    () => exactObject(ctx.docker, 'config', action.name),
  );
  await ctx.step('done', `config '${action.name}' ${created ? 'created' : 'already exists'}`, { id });
  return { name: action.name, id, created };
}

export const configCreate: Executor<ConfigCreatePayload, ManagedState, ManagedCreateAction, Result> = {
  kind: 'config.create',
  description: 'create the Swarm config of a stored config version (<stack>_<name>_<version>); `mp config create` submits it',
  example: { config: 1, name: 'app.json', version: '44136fa355b3', swarmName: 'shop_app.json_44136fa355b3' },
  payloadSchema,
  target: 'manager',
  observe,
  plan,
  execute,
};
