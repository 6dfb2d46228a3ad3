/**
 * `provision.host`: prepares one host over SSH (agent/provision/run.ts): OS check, Docker from the
 * distribution, daemon.json, nftables, optional fail2ban and syslog, the swarm, node labels, the agent
 * image and the global agent service. Each step is a child operation (`provision.step`) that says
 * `changed` or `unchanged`. Claimed by provisioner agents (`mp agent --provisioner`).
 */
import type { Executor, ExecutorContext } from './types.ts';
import { hostPayloadSchema, provisionHost, type HostPayload, type StepOutcome } from '../provision/run.ts';
import { stepsFor, type StepName } from '../provision/steps.ts';

type Result = { host: string; changed: boolean; steps: { step: StepName; changed: boolean; summary: string }[] };

/** The provisioner's database URL for the agents it installs. */
export function agentsDatabaseUrl(): string | undefined {
  return process.env.MP_AGENTS_DATABASE_URL || process.env.DATABASE_URL || undefined;
}

/** What a run returns: per step, changed or not. */
export function summarise(host: string, outcomes: StepOutcome[]): Result {
  return { host, changed: outcomes.some((o) => o.changed), steps: outcomes.map((o) => ({ step: o.step, changed: o.changed, summary: o.summary })) };
}

async function execute(ctx: ExecutorContext, payload: HostPayload): Promise<Result> {
  const outcomes = await provisionHost({ ...ctx, agentsDatabaseUrl: agentsDatabaseUrl(), recordSteps: true }, payload);
  const result = summarise(payload.host.name, outcomes);
  await ctx.step('done', `${payload.host.name}: ${result.changed ? `changed (${outcomes.filter((o) => o.changed).map((o) => o.step).join(', ')})` : 'every step unchanged'}`);
  return result;
}

export const provisionHostExecutor: Executor<HostPayload, StepName[], StepName, Result> = {
  kind: 'provision.host',
  description: 'provision one host over SSH into the swarm: Docker, daemon.json, firewall, swarm, labels, agent (one child operation per step)',
  example: {
    host: { name: 'mgr-1', address: '10.0.0.2', role: 'manager', user: 'root', port: 22, labels: {} },
    first_manager: { name: 'mgr-1', address: '10.0.0.2', role: 'manager', user: 'root', port: 22, labels: {} },
    cluster: ['10.0.0.2'],
    settings: { ports: [], api_allow: [], fail2ban: false, daemon: {}, certs: '.certs', agent_image: 'mp/agent:latest' },
    accept_new_host_keys: false,
  },
  payloadSchema: hostPayloadSchema,
  target: 'provisioner',
  async observe(_ctx, payload) {
    return payload.steps ?? stepsFor(payload.settings, payload.host.role);
  },
  plan(_payload, steps) {
    return steps;
  },
  execute,
};
