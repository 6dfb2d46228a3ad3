/**
 * `secrets.rotate_key` (`mp secret rotate-key`): a manager agent makes a new cluster key pair, writes it
 * into its key file beside the old one, makes its public key the active one (the CLI seals to it from
 * then on), re-seals every stored secret to it, and finally rewrites the key file with the new pair
 * only: the old private key is destroyed. Swarm secrets are untouched (their values do not change, nor
 * do their versions, which do not depend on the key).
 *
 * Resumable: each step is recognised from the state. A pair in the key file that the database does
 * not know is a new key an earlier attempt generated (it is activated, not generated again); secrets
 * still sealed to an old key are re-sealed; the old pairs are dropped only when nothing is sealed to
 * them any more.
 *
 * Limits: the key file must be writable, so this runs where the key is a file (`mp dev`, or an agent
 * given MP_CLUSTER_KEY_FILE on a writable path). An agent whose key is a Docker secret (read-only)
 * refuses with a hint, and every other manager agent must be given the new key file. Releases holding
 * file-based secrets sealed to the old key (their rows are immutable) cannot be re-sealed: a rollback
 * to one of them needs its secrets created again.
 */
import { access, constants } from 'node:fs/promises';
import { z } from 'zod';
import { generateKeyPair, openValue, sealValue, writeClusterKeys, type ClusterKeyPair, type ClusterKeys } from '../../sql/control/sealing.ts';
import { clusterKeyRows, resealSecret, rotateClusterKey, secretsNotSealedTo } from '../../sql/control/secrets.ts';
import { registryAuthsNotSealedTo, resealRegistryAuth } from '../../sql/control/registry-auth.ts';
import { ConflictError } from '../../sql/errors.ts';
import { poolOf } from './secret-create.ts';
import type { Executor, ExecutorContext } from './types.ts';

export const payloadSchema = z.strictObject({});
export type RotatePayload = z.infer<typeof payloadSchema>;

/** The keys the database and this agent's key file hold, and how many secrets each key sealed. */
export interface RotateState {
  active: { id: string; publicKey: string };
  known: string[];
  /** Public keys of the key file's pairs, oldest first. */
  held: string[];
  writable: boolean;
  path: string | null;
  /** Secrets not sealed to the active key. */
  toReseal: number;
}

export type RotateAction =
  | { type: 'generate-key' }
  | { type: 'activate-key'; publicKey: string }
  | { type: 'reseal'; count: number | 'all' }
  | { type: 'destroy-old-keys'; count: number };

/** Pure: generate (unless an earlier attempt did), activate, re-seal, destroy the old pairs. */
export function plan(_payload: RotatePayload, state: RotateState): RotateAction[] {
  if (!state.path || !state.writable) {
    throw new ConflictError(
      'KEY_FILE_READ_ONLY',
      `this agent's cluster key ${state.path ? `file ${state.path} is read-only` : 'was not read from a file'}, so it cannot rotate the key`,
      'run the rotation on an agent whose MP_CLUSTER_KEY_FILE is writable (`mp dev` is one); a key mounted as a Docker secret cannot be rewritten',
    );
  }
  const pending = state.held.find((k) => !state.known.includes(k));
  const newest = state.held.at(-1);
  const actions: RotateAction[] = [];
  if (pending) actions.push({ type: 'activate-key', publicKey: pending }, { type: 'reseal', count: 'all' });
  else if (newest === state.active.publicKey && state.held.length > 1) actions.push({ type: 'reseal', count: state.toReseal });
  else actions.push({ type: 'generate-key' }, { type: 'reseal', count: 'all' });
  actions.push({ type: 'destroy-old-keys', count: Math.max(state.held.length - 1, pending ? state.held.length - 1 : state.held.length) });
  return actions;
}

function keysOf(ctx: ExecutorContext): ClusterKeys {
  if (!ctx.clusterKeys) throw new ConflictError('NO_CLUSTER_KEY', 'this agent holds no cluster key', 'start manager agents with MP_CLUSTER_KEY_FILE');
  return ctx.clusterKeys;
}

async function observe(ctx: ExecutorContext, _payload: RotatePayload): Promise<RotateState> {
  const keys = keysOf(ctx);
  const pool = poolOf(ctx, 'secrets.rotate_key');
  const rows = await clusterKeyRows(pool);
  const active = rows.find((r) => r.retiredAt === null);
  if (!active) throw new ConflictError('NO_CLUSTER_KEY', 'the cluster has no active key to rotate');
  const writable = keys.path ? await access(keys.path, constants.W_OK).then(() => true, () => false) : false;
  return {
    active: { id: active.id, publicKey: active.publicKey },
    known: rows.map((r) => r.publicKey),
    held: keys.keys.map((k) => k.publicKey),
    writable,
    path: keys.path ?? null,
    toReseal: (await secretsNotSealedTo(pool, active.id)).length,
  };
}

async function execute(ctx: ExecutorContext, payload: RotatePayload): Promise<{ keyId: string; resealed: number; destroyed: number }> {
  const keys = keysOf(ctx);
  const pool = poolOf(ctx, 'secrets.rotate_key');
  const actions = plan(payload, await observe(ctx, payload));
  let keyId = '';
  let resealed = 0;
  let destroyed = 0;
  for (const action of actions) {
    ctx.signal.throwIfAborted();
    if (action.type === 'generate-key' || action.type === 'activate-key') {
      let pair: ClusterKeyPair;
      if (action.type === 'generate-key') {
        pair = await generateKeyPair();
        // On disk before the database knows it: a crash now leaves a pending pair the next attempt activates.
        keys.keys.push(pair);
        await writeClusterKeys(keys.path!, keys);
        await ctx.step('generate', 'new cluster key pair written to the key file beside the old one');
      } else {
        pair = keys.keys.find((k) => k.publicKey === action.publicKey)!;
      }
      keyId = await rotateClusterKey(pool, pair.publicKey);
      await ctx.step('activate', `key ${keyId} is the cluster key now; new secrets are sealed to it`, { key: keyId });
    } else if (action.type === 'reseal') {
      const active = (await clusterKeyRows(pool)).find((r) => r.retiredAt === null)!;
      keyId = active.id;
      for (const row of await secretsNotSealedTo(pool, active.id)) {
        ctx.signal.throwIfAborted();
        const value = await openValue(keys, row.sealed);
        try {
          if (await resealSecret(pool, { id: row.id, fromKey: row.keyId, sealed: await sealValue(active.publicKey, value), toKey: active.id })) resealed++;
        } finally {
          value.fill(0);
        }
      }
      // Registry passwords (`mp registry login`) are sealed to the same key.
      let registries = 0;
      for (const row of await registryAuthsNotSealedTo(pool, active.id)) {
        ctx.signal.throwIfAborted();
        const value = await openValue(keys, row.sealed);
        try {
          if (await resealRegistryAuth(pool, { id: row.id, fromKey: row.keyId, sealed: await sealValue(active.publicKey, value), toKey: active.id })) registries++;
        } finally {
          value.fill(0);
        }
      }
      await ctx.step(
        'reseal',
        `${resealed} stored secret${resealed === 1 ? '' : 's'}${registries ? ` and ${registries} registry password${registries === 1 ? '' : 's'}` : ''} re-sealed to key ${active.id}`,
        { resealed, registries },
      );
    } else {
      const active = (await clusterKeyRows(pool)).find((r) => r.retiredAt === null)!;
      const left = [...(await secretsNotSealedTo(pool, active.id)), ...(await registryAuthsNotSealedTo(pool, active.id))];
      if (left.length > 0) throw new ConflictError('RESEAL_INCOMPLETE', `${left.length} secrets are still sealed to an old key; the old key is kept`, 'retry the operation');
      const before = keys.keys.length;
      keys.keys.splice(0, keys.keys.length, ...keys.keys.filter((k) => k.publicKey === active.publicKey));
      destroyed = before - keys.keys.length;
      await writeClusterKeys(keys.path!, keys);
      await ctx.step('destroy', `${destroyed} old private key${destroyed === 1 ? '' : 's'} removed from ${keys.path}`, { destroyed });
    }
  }
  return { keyId, resealed, destroyed };
}

export const secretsRotateKey: Executor<RotatePayload, RotateState, RotateAction, { keyId: string; resealed: number; destroyed: number }> = {
  kind: 'secrets.rotate_key',
  description: 'make a new cluster key, re-seal every stored secret to it, destroy the old private key; `mp secret rotate-key` submits it',
  example: {},
  payloadSchema,
  target: 'manager',
  observe,
  plan,
  execute,
};
