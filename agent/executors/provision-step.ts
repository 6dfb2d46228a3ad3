/**
 * `provision.step`: one step of a host's provisioning, run alone. `provision.host` records each of its
 * steps as an operation of this kind (run inline, not queued); `mp ops retry <step id>` queues one
 * again, and a provisioner agent runs just that step.
 */
import { z } from 'zod';
import { hostPayloadSchema, provisionHost, type HostPayload } from '../provision/run.ts';
import { STEP_NAMES, type StepName } from '../provision/steps.ts';
import { agentsDatabaseUrl, summarise } from './provision-host.ts';
import type { Executor, ExecutorContext } from './types.ts';

const stepPayloadSchema = z.union([
  // As recorded by provision.host: the host's name and the step; the rest comes from the parent.
  z.object({ host: z.string(), step: z.enum(STEP_NAMES) }).strict(),
  hostPayloadSchema.extend({ step: z.enum(STEP_NAMES) }),
]);
type StepPayload = z.output<typeof stepPayloadSchema>;

async function parentPayload(ctx: ExecutorContext, payload: StepPayload): Promise<HostPayload & { step: StepName }> {
  if (typeof payload.host !== 'string') return payload as HostPayload & { step: StepName };
  if (!ctx.pool) throw new Error('provision.step needs the database to read its host operation');
  const rows = await ctx.pool.query<{ payload: unknown }>(
    `select p.payload from mp.operations s join mp.operations p on p.id = s.parent_id where s.id = $1`,
    [ctx.operationId],
  );
  if (!rows.rows[0]) throw new Error(`operation ${ctx.operationId} is not a step of a provision.host operation`);
  return { ...hostPayloadSchema.parse(rows.rows[0].payload), step: payload.step };
}

export const provisionStepExecutor: Executor<StepPayload, StepName[], StepName> = {
  kind: 'provision.step',
  description: "one step of a host's provisioning, run alone (retry of a failed step)",
  example: { host: 'mgr-1', step: 'firewall' },
  payloadSchema: stepPayloadSchema,
  target: 'provisioner',
  async observe(_ctx, payload) {
    return [payload.step];
  },
  plan(_payload, steps) {
    return steps;
  },
  async execute(ctx, payload) {
    const full = await parentPayload(ctx, payload);
    const outcomes = await provisionHost({ ...ctx, agentsDatabaseUrl: agentsDatabaseUrl(), recordSteps: false }, { ...full, steps: [full.step] });
    return summarise(full.host.name, outcomes);
  },
};
