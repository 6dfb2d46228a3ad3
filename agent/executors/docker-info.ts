/**
 * `docker.info`: what the engine of the agent that runs it says about itself and its swarm. A
 * diagnostic anyone can run (`target: 'any'`); the report names the node id, so it says which engine
 * answered.
 */
import { z } from 'zod';
import type { EngineInfo, EngineVersion } from '../docker/engine.ts';
import type { Executor, ExecutorContext } from './types.ts';

export const payloadSchema = z.strictObject({});

export type DockerInfoPayload = z.infer<typeof payloadSchema>;

export interface DockerInfoState {
  info: EngineInfo;
  version: EngineVersion;
}

export type DockerInfoReport = {
  engine: { version: string; apiVersion: string; os: string; osType: string; architecture: string; kernel: string };
  swarm: {
    state: string;
    nodeId: string | null;
    manager: boolean;
    /** Counts only a manager knows; null elsewhere. */
    nodes: number | null;
    managers: number | null;
    clusterId: string | null;
  };
  containers: { running: number };
};

export type DockerInfoAction = { type: 'report'; report: DockerInfoReport };

/** Pure: the report, from what the engine said. */
export function plan(_payload: DockerInfoPayload, state: DockerInfoState): DockerInfoAction[] {
  const { info, version } = state;
  const active = info.swarm.state === 'active';
  const manager = active && info.swarm.controlAvailable;
  return [
    {
      type: 'report',
      report: {
        engine: {
          version: version.version || info.serverVersion,
          apiVersion: version.apiVersion,
          os: info.operatingSystem,
          osType: info.osType,
          architecture: info.architecture,
          kernel: info.kernelVersion,
        },
        swarm: {
          state: info.swarm.state,
          nodeId: info.swarm.nodeId || null,
          manager,
          nodes: manager ? (info.swarm.nodes ?? null) : null,
          managers: manager ? (info.swarm.managers ?? null) : null,
          clusterId: manager ? (info.swarm.clusterId ?? null) : null,
        },
        containers: { running: info.containersRunning },
      },
    },
  ];
}

export async function observe(ctx: Pick<ExecutorContext, 'docker'>): Promise<DockerInfoState> {
  const [info, version] = await Promise.all([ctx.docker.info(), ctx.docker.version()]);
  return { info, version };
}

async function execute(ctx: ExecutorContext, payload: DockerInfoPayload): Promise<DockerInfoReport> {
  const [action] = plan(payload, await observe(ctx));
  const report = (action as DockerInfoAction).report;
  const swarm = report.swarm.state === 'active' ? `swarm ${report.swarm.manager ? 'manager' : 'worker'}` : `swarm ${report.swarm.state}`;
  await ctx.step('info', `Docker ${report.engine.version} (API ${report.engine.apiVersion}) on ${report.engine.os}, ${swarm}`, {
    ...report,
  });
  return report;
}

export const dockerInfo: Executor<DockerInfoPayload, DockerInfoState, DockerInfoAction, DockerInfoReport> = {
  kind: 'docker.info',
  description: "report the engine's version, OS, swarm state and running containers",
  example: {},
  payloadSchema,
  target: 'any',
  observe,
  plan,
  execute,
};
