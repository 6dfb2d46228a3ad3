/** `ports:` and `deploy.endpoint_mode` to the service's EndpointSpec. */
import type { PortEntry } from '../loader/normalize.ts';

/** One published port as the Engine API takes it. */
export interface PortConfig {
  Protocol: string;
  TargetPort: number;
  PublishedPort: number;
  PublishMode: string;
}

/** The Engine API EndpointSpec. */
export interface EndpointSpec {
  Mode: string;
  Ports: PortConfig[];
}

/**
 * Converts ports (already long syntax, see the loader) in order of published port, as docker/cli
 * sorts them; a long port without `mode`/`protocol` leaves them to the engine (ingress, tcp).
 */
export function convertEndpoint(ports: PortEntry[] | undefined, endpointMode: unknown): EndpointSpec {
  const configs = (ports ?? []).map((p) => ({
    Protocol: p.protocol ?? '',
    TargetPort: p.target,
    PublishedPort: p.published ?? 0,
    PublishMode: p.mode ?? '',
  }));
  // Array.prototype.sort is stable, like Go's sort for the short lists ports are.
  configs.sort((a, b) => a.PublishedPort - b.PublishedPort);
  return { Mode: typeof endpointMode === 'string' ? endpointMode.toLowerCase() : '', Ports: configs };
}

/** Whether a service publishes a port in host mode (two tasks on one node cannot both bind it). */
export function publishesHostPorts(ports: PortEntry[] | undefined): boolean {
  return (ports ?? []).some((p) => p.mode === 'host' && (p.published ?? 0) > 0);
}
