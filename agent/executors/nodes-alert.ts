/**
 * `alert.post`: posts one incident (a node down, a metric over its threshold; `mp.monitor_tick`,
 * sql/control/0008) to the monitoring webhook as JSON `{"text": ..., ...webhook_fields}` (a Telegram
 * bot's sendMessage URL with `chat_id` in webhook_fields is one such webhook). Queued once when an
 * incident opens and once when it clears; the URL is read from mp.monitoring, never from the payload,
 * because it can carry a token.
 */
import { z } from 'zod';
import { NotFoundError } from '../../sql/errors.ts';
import type { Executor, ExecutorContext } from './types.ts';

const payloadSchema = z.strictObject({ incident: z.union([z.number(), z.string()]).transform(String), state: z.enum(['opened', 'closed']) });
type AlertPayload = z.output<typeof payloadSchema>;

interface AlertState {
  node: string;
  condition: string;
  message: string;
  webhook: string | null;
  fields: Record<string, unknown>;
}
type AlertAction = { type: 'post'; text: string };

/** Pure: the text of the post. */
export function alertText(payload: AlertPayload, state: AlertState): string {
  return payload.state === 'opened' ? `MiniPaaS alert: ${state.message}` : `MiniPaaS: resolved: ${state.message}`;
}

async function observe(ctx: ExecutorContext, payload: AlertPayload): Promise<AlertState> {
  if (!ctx.pool) throw new Error('alert.post needs the database');
  const rows = await ctx.pool.query<{ node: string; condition: string; message: string; webhook: string | null; webhook_fields: Record<string, unknown> }>(
    `select * from mp.alert_details($1)`,
    [payload.incident],
  );
  const r = rows.rows[0];
  if (!r) throw new NotFoundError('UNKNOWN_INCIDENT', `incident ${payload.incident} does not exist`, 'see mp.incidents');
  return { node: r.node, condition: r.condition, message: r.message, webhook: r.webhook, fields: r.webhook_fields ?? {} };
}

export const alertPost: Executor<AlertPayload, AlertState, AlertAction> = {
  kind: 'alert.post',
  description: 'post a monitoring incident (node down, threshold crossed) to the webhook of minipaas.yaml monitoring:',
  example: { incident: '1', state: 'opened' },
  payloadSchema,
  target: 'any',
  observe,
  plan: (payload, state) => (state.webhook ? [{ type: 'post', text: alertText(payload, state) }] : []),
  async execute(ctx, payload) {
    const state = await observe(ctx, payload);
    const [action] = alertPost.plan(payload, state);
    if (!action || !state.webhook) {
      await ctx.step('skip', 'no webhook configured');
      return { posted: false };
    }
    const res = await fetch(state.webhook, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...state.fields, text: action.text, node: state.node, condition: state.condition, state: payload.state }),
      signal: AbortSignal.any([ctx.signal, AbortSignal.timeout(10_000)]),
    });
    if (!res.ok) throw new Error(`the webhook answered ${res.status} ${res.statusText}`);
    await ctx.step('posted', `posted: ${action.text}`);
    return { posted: true, status: res.status };
  },
};
