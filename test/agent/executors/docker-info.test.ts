import { describe, expect, it } from 'vitest';
import type { EngineInfo } from '../../../agent/docker/engine.ts';
import { dockerInfo, plan } from '../../../agent/executors/docker-info.ts';
import { parsePayload } from '../../../agent/executors/index.ts';
import { ConfigError } from '../../../sql/errors.ts';
import { describeDocker, describeSwarm } from '../../support/docker.ts';
import { connectDocker } from '../../../agent/docker/engine.ts';
import { recordingContext } from './recording-context.ts';

const info = (swarm: Partial<EngineInfo['swarm']>): EngineInfo => ({
  serverVersion: '20.10.24',
  operatingSystem: 'Debian GNU/Linux 12 (bookworm)',
  osType: 'linux',
  architecture: 'x86_64',
  kernelVersion: '6.1.0',
  containersRunning: 4,
  swarm: { state: 'inactive', nodeId: '', controlAvailable: false, ...swarm },
});
const version = { version: '20.10.24+dfsg1', apiVersion: '1.41', minApiVersion: '1.12' };

describe('docker.info', () => {
  it('takes an empty payload and nothing else', () => {
    expect(parsePayload(dockerInfo, {})).toEqual({});
    expect(() => parsePayload(dockerInfo, { verbose: true })).toThrow(ConfigError);
  });

  it('reports a manager with its node counts', () => {
    const [action] = plan(
      {},
      { info: info({ state: 'active', nodeId: 'n1', controlAvailable: true, nodes: 3, managers: 1, clusterId: 'c1' }), version },
    );
    expect(action).toEqual({
      type: 'report',
      report: {
        engine: {
          version: '20.10.24+dfsg1',
          apiVersion: '1.41',
          os: 'Debian GNU/Linux 12 (bookworm)',
          osType: 'linux',
          architecture: 'x86_64',
          kernel: '6.1.0',
        },
        swarm: { state: 'active', nodeId: 'n1', manager: true, nodes: 3, managers: 1, clusterId: 'c1' },
        containers: { running: 4 },
      },
    });
  });

  it('reports a worker without counts, and an engine outside any swarm', () => {
    const worker = plan({}, { info: info({ state: 'active', nodeId: 'n2', nodes: 3 }), version })[0]?.report.swarm;
    expect(worker).toEqual({ state: 'active', nodeId: 'n2', manager: false, nodes: null, managers: null, clusterId: null });
    const alone = plan({}, { info: info({}), version })[0]?.report.swarm;
    expect(alone).toEqual({ state: 'inactive', nodeId: null, manager: false, nodes: null, managers: null, clusterId: null });
  });
});

describeDocker('docker.info against the lab engine', () => {
  it('reports the engine and reports one step', async () => {
    const ctx = recordingContext(connectDocker());
    const report = await dockerInfo.execute(ctx, {});
    expect(report.engine.apiVersion).toMatch(/^1\.\d+$/);
    expect(report.engine.osType).toBe('linux');
    expect(report.containers.running).toBeGreaterThanOrEqual(0);
    expect(ctx.steps).toHaveLength(1);
    expect(ctx.steps[0]?.message).toMatch(/^Docker \S+ \(API 1\.\d+\) on /);
  });
});

describeSwarm('docker.info on the lab Swarm', () => {
  it('says the swarm is active and this node is a manager', async () => {
    const report = await dockerInfo.execute(recordingContext(connectDocker()), {});
    expect(report.swarm.state).toBe('active');
    expect(report.swarm.manager).toBe(true);
    expect(report.swarm.nodeId).toMatch(/^\w+$/);
    expect(report.swarm.nodes).toBeGreaterThanOrEqual(1);
    expect(report.swarm.managers).toBeGreaterThanOrEqual(1);
  });
});
