/**
 * Docker suites: run against the real engine and Swarm of the lab (`.ci/lab.sh`), skip where there is
 * none, except under `MP_REQUIRE_DOCKER=1` (CI), where a missing engine fails the run with the reason.
 *
 * @example
 *   describeSwarm('service.scale', () => {
 *     const lab = useDockerScope();                     // cleans up after each test
 *     it('scales', async () => {
 *       const stack = lab.stack('scale');               // unique, removed after the test
 *       const id = await lab.createSleeper(stack, 'sleeper', 1);
 *     });
 *   });
 */
import { randomBytes } from 'node:crypto';
import type Dockerode from 'dockerode';
import { afterEach, describe, it } from 'vitest';
import { connectDocker, STACK_NAMESPACE_LABEL, type DockerEngine } from '../../agent/docker/engine.ts';
import { NotFoundError } from '../../sql/errors.ts';
import { waitFor } from './wait.ts';

/** The 2 MB busybox image `.ci/lab.sh` builds (`images/busybox/build.sh`). */
export const LAB_BUSYBOX_IMAGE = process.env.MP_LAB_BUSYBOX_IMAGE ?? 'mp-lab/busybox:latest';

/** Label on everything tests create: `docker service rm $(docker service ls -q -f label=org.minipaas.test)`. */
export const TEST_LABEL = 'org.minipaas.test';

export interface DockerAvailability {
  /** The engine answered a ping. */
  engine: boolean;
  /** It is an active Swarm manager. */
  swarmManager: boolean;
  endpoint: string;
  /** Why not, when not. */
  reason?: string;
}

let probe: Promise<DockerAvailability> | undefined;

/** Whether a Docker engine (and a Swarm manager) answers; probed once per test file. */
export function dockerAvailable(): Promise<DockerAvailability> {
  probe ??= (async () => {
    const docker = connectDocker();
    const endpoint = docker.endpoint;
    try {
      await docker.ping(2000);
    } catch (err) {
      return { engine: false, swarmManager: false, endpoint, reason: (err as Error).message };
    }
    const info = await docker.info();
    const swarmManager = info.swarm.state === 'active' && info.swarm.controlAvailable;
    return {
      engine: true,
      swarmManager,
      endpoint,
      reason: swarmManager ? undefined : `the engine at ${endpoint} is not a Swarm manager (swarm ${info.swarm.state})`,
    };
  })();
  return probe;
}

const availability = await dockerAvailable();

/** Whether CI asked for Docker suites to fail rather than skip. */
export const dockerRequired = process.env.MP_REQUIRE_DOCKER === '1';

function describeNeeding(what: 'engine' | 'swarm', name: string, fn: () => void): void {
  const ok = what === 'engine' ? availability.engine : availability.swarmManager;
  if (ok) {
    describe(name, fn);
  } else if (dockerRequired) {
    describe(name, () => {
      it(`needs a Docker ${what === 'engine' ? 'engine' : 'Swarm manager'}`, () => {
        throw new Error(
          `MP_REQUIRE_DOCKER=1 but ${availability.reason ?? 'Docker is not available'}; ` +
            'run .ci/lab.sh as root to set up the lab, or unset MP_REQUIRE_DOCKER to skip Docker suites',
        );
      });
    });
  } else {
    describe.skip(`${name} (skipped: ${availability.reason ?? 'no Docker'})`, fn);
  }
}

/** `describe` for suites that need a Docker engine. */
export function describeDocker(name: string, fn: () => void): void {
  describeNeeding('engine', name, fn);
}

/** `describe` for suites that need an active Swarm manager (the lab's single-node Swarm). */
export function describeSwarm(name: string, fn: () => void): void {
  describeNeeding('swarm', name, fn);
}

/** A unique lowercase name, safe as a service, stack or network name: `mpt-<prefix>-<8 hex>`. */
export function uniqueName(prefix: string): string {
  return `mpt-${prefix.toLowerCase().replace(/[^a-z0-9-]/g, '-')}-${randomBytes(4).toString('hex')}`;
}

export interface DockerTestScope {
  docker: DockerEngine;
  /** A unique stack name; everything labelled with it is removed after the test. */
  stack(prefix: string): string;
  /** Tracks a service (by id or name) to remove after the test. */
  track(service: string): void;
  /**
   * Creates a replicated service `<stack>_<name>` from the lab busybox running `sleep 3600`, labelled
   * as part of `stack` (as `docker stack deploy` would); returns its id.
   */
  createSleeper(stack: string, name: string, replicas: number): Promise<string>;
  /** Removes what the test created; registered with `afterEach` by `useDockerScope`. */
  cleanup(): Promise<void>;
}

/** Spec of a `sleep 3600` service (or another `command`) in `stack`. */
export function sleeperSpec(
  stack: string,
  name: string,
  replicas: number,
  command: string[] = ['sleep', '3600'],
): Dockerode.ServiceSpec {
  const labels = { [STACK_NAMESPACE_LABEL]: stack, [TEST_LABEL]: '1' };
  return {
    Name: `${stack}_${name}`,
    Labels: labels,
    TaskTemplate: {
      ContainerSpec: {
        Image: LAB_BUSYBOX_IMAGE,
        Command: command,
        Labels: labels,
        // sleep as PID 1 ignores SIGTERM; without this every scale-down and removal waits the
        // default 10 s for SIGKILL.
        StopGracePeriod: 1_000_000_000,
      },
    },
    Mode: { Replicated: { Replicas: replicas } },
  };
}

/**
 * A scope for one test's Docker objects, cleaned up after each test (in the calling `describe`).
 * Cleanup waits until the removed services' tasks are gone, so no test sees another's containers.
 */
export function useDockerScope(): DockerTestScope {
  const docker = connectDocker();
  const stacks = new Set<string>();
  const services = new Set<string>();

  const removeQuietly = async (remove: () => Promise<void>): Promise<void> => {
    try {
      await remove();
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
  };

  const scope: DockerTestScope = {
    docker,
    stack(prefix) {
      const name = uniqueName(prefix);
      stacks.add(name);
      return name;
    },
    track(service) {
      services.add(service);
    },
    async createSleeper(stack, name, replicas) {
      try {
        await docker.api.getImage(LAB_BUSYBOX_IMAGE).inspect();
      } catch {
        throw new Error(`image ${LAB_BUSYBOX_IMAGE} is missing; run .ci/lab.sh to build the lab images`);
      }
      stacks.add(stack);
      const id = await docker.createService(sleeperSpec(stack, name, replicas));
      services.add(id);
      return id;
    },
    async cleanup() {
      const ids = new Set<string>();
      for (const stack of stacks) {
        for (const svc of await docker.listServices({ label: [`${STACK_NAMESPACE_LABEL}=${stack}`] })) ids.add(svc.id);
      }
      for (const s of services) {
        await removeQuietly(async () => void ids.add((await docker.inspectService(s)).id));
      }
      for (const id of ids) await removeQuietly(() => docker.removeService({ id, name: id }));
      if (ids.size > 0) {
        await waitFor(
          `tasks of ${ids.size} test services to be gone`,
          async () => (await docker.listTasks({ serviceIds: [...ids] })).length === 0,
          { timeoutMs: 30_000, intervalMs: 250 },
        );
      }
      for (const stack of stacks) {
        const label = [`${STACK_NAMESPACE_LABEL}=${stack}`];
        for (const o of await docker.listSecrets({ label })) await removeQuietly(() => docker.removeSecret(o));
        for (const o of await docker.listConfigs({ label })) await removeQuietly(() => docker.removeConfig(o));
        for (const o of await docker.listNetworks({ label })) await removeQuietly(() => docker.removeNetwork(o));
      }
      stacks.clear();
      services.clear();
    },
  };
  afterEach(() => scope.cleanup());
  return scope;
}
