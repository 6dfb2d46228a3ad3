// node.availability and node.remove: plans as data, and on the lab's Swarm the checks that change
// nothing (the lab has one node: draining it would stop every other suite's services).
import { describe, expect, it } from 'vitest';
import { connectDocker, type SwarmNode } from '../../../agent/docker/engine.ts';
import { nodeAvailability } from '../../../agent/executors/node-availability.ts';
import { nodeRemove } from '../../../agent/executors/node-remove.ts';
import { ConflictError, NotFoundError } from '../../../sql/errors.ts';
import { describeSwarm } from '../../support/docker.ts';
import { recordingContext } from './recording-context.ts';

const node = (over: Partial<SwarmNode> = {}): SwarmNode => ({ id: 'n1', hostname: 'worker-1', role: 'worker', availability: 'active', state: 'ready', version: 7, spec: {}, ...over });

describe('node plans', () => {
  it('drain sets the availability, then waits; again (already drained) it only waits', () => {
    const payload = { node: 'worker-1', availability: 'drain' as const, timeoutSeconds: 30 };
    expect(nodeAvailability.plan(payload, { node: node() })).toEqual([
      { type: 'set-availability', node: 'worker-1', nodeId: 'n1', from: 'active', to: 'drain' },
      { type: 'wait-drained', node: 'worker-1', nodeId: 'n1', timeoutMs: 30_000 },
    ]);
    expect(nodeAvailability.plan(payload, { node: node({ availability: 'drain' }) })).toEqual([{ type: 'wait-drained', node: 'worker-1', nodeId: 'n1', timeoutMs: 30_000 }]);
  });

  it('activate on an active node does nothing', () => {
    expect(nodeAvailability.plan({ node: 'worker-1', availability: 'active', timeoutSeconds: 30 }, { node: node() })).toEqual([]);
  });

  it('rm refuses a node that is up and not drained, unless forced; a down node goes', () => {
    expect(() => nodeRemove.plan({ node: 'worker-1', force: false }, { node: node() })).toThrow(ConflictError);
    expect(() => nodeRemove.plan({ node: 'worker-1', force: false }, { node: node() })).toThrow(/removing it would cut its tasks off/);
    expect(nodeRemove.plan({ node: 'worker-1', force: false }, { node: node({ state: 'down' }) })).toEqual([{ type: 'remove-node', node: 'worker-1', nodeId: 'n1', force: false }]);
    expect(nodeRemove.plan({ node: 'worker-1', force: true }, { node: node() })).toEqual([{ type: 'remove-node', node: 'worker-1', nodeId: 'n1', force: true }]);
  });
});

describeSwarm('node operations on the lab swarm', () => {
  const docker = connectDocker();

  it('an unknown node is one error listing the nodes', async () => {
    const ctx = recordingContext(docker);
    const err = await nodeAvailability.execute(ctx, { node: 'no-such-node', availability: 'drain', timeoutSeconds: 5 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    const [self] = await docker.listNodes();
    expect((err as Error).message).toContain(`node 'no-such-node' is not in the swarm; nodes: ${self!.hostname}`);
  });

  it('activating the active manager changes nothing; removing it without --force is refused', async () => {
    const [self] = await docker.listNodes();
    const ctx = recordingContext(docker);
    expect(await nodeAvailability.execute(ctx, { node: self!.hostname, availability: 'active', timeoutSeconds: 5 })).toEqual({ node: self!.hostname, availability: 'active', changed: false });
    await expect(nodeRemove.execute(recordingContext(docker), { node: self!.hostname, force: false })).rejects.toThrow(/removing it would cut its tasks off/);
    expect((await docker.listNodes()).map((n) => n.availability)).toEqual(['active']);
  });
});
