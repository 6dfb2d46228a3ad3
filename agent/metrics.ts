/**
 * Host metrics an agent sends with its heartbeat (`mp.node_heartbeat(name, metrics)`): CPU (busy share
 * since the previous sample), memory, disk of `/`, load, and the Docker and Swarm state. Read from the
 * kernel through Node's `os` and `fs.statfs`; in a container these are the host's CPU, memory and load
 * (the kernel's) and the container's root filesystem.
 */
import { statfs } from 'node:fs/promises';
import { cpus, freemem, loadavg, totalmem } from 'node:os';
import type { DockerEngine } from './docker/engine.ts';

/** One sample. Percentages are 0-100, rounded to one decimal. */
export interface HostMetrics {
  cpu_percent: number;
  memory_percent: number;
  disk_percent: number;
  load1: number;
  load5: number;
  cpus: number;
  /** `running` or `unreachable`. */
  docker: string;
  /** Swarm state of the engine (`active`, `inactive`, ...) and role, e.g. `active manager`. */
  swarm: string;
  containers_running?: number;
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}

/** CPU times summed over all cores. */
function cpuTimes(): { busy: number; total: number } {
  let busy = 0;
  let total = 0;
  for (const c of cpus()) {
    const t = c.times;
    busy += t.user + t.nice + t.sys + t.irq;
    total += t.user + t.nice + t.sys + t.irq + t.idle;
  }
  return { busy, total };
}

/**
 * A sampler: each `sample()` measures CPU use since the previous one (the first, since boot).
 *
 * @example
 *   const metrics = metricsSampler(docker);
 *   await calls.heartbeat(name, await metrics.sample());
 */
export function metricsSampler(docker: DockerEngine | null): { sample(): Promise<HostMetrics> } {
  let last = { busy: 0, total: 0 };
  return {
    async sample() {
      const now = cpuTimes();
      const dt = now.total - last.total;
      const cpu = dt > 0 ? ((now.busy - last.busy) / dt) * 100 : 0;
      last = now;
      let disk = 0;
      try {
        const s = await statfs('/');
        disk = s.blocks > 0 ? ((s.blocks - s.bavail) / s.blocks) * 100 : 0;
      } catch {
        disk = 0;
      }
      const [load1, load5] = loadavg();
      const out: HostMetrics = {
        cpu_percent: round(cpu),
        memory_percent: round(((totalmem() - freemem()) / totalmem()) * 100),
        disk_percent: round(disk),
        load1: round(load1 ?? 0),
        load5: round(load5 ?? 0),
        cpus: cpus().length,
        docker: 'none',
        swarm: 'none',
      };
      if (docker) {
        try {
          const info = await docker.info();
          out.docker = 'running';
          out.swarm = info.swarm.state === 'active' ? `active ${info.swarm.controlAvailable ? 'manager' : 'worker'}` : info.swarm.state;
          out.containers_running = info.containersRunning;
        } catch {
          out.docker = 'unreachable';
        }
      }
      return out;
    },
  };
}
