/** `deploy.mode`/`replicas` to the ServiceMode, and `deploy.placement` to the task's Placement. */
import { convertError } from './errors.ts';

type Dict = Record<string, unknown>;

/** The Engine API ServiceMode: exactly one key set. */
export type ServiceMode =
  | { Replicated: { Replicas?: number } }
  | { Global: Record<string, never> }
  | { ReplicatedJob: { MaxConcurrent?: number; TotalCompletions?: number } }
  | { GlobalJob: Record<string, never> };

/**
 * Converts the mode. `replicas` goes with replicated modes only; for a replicated job it is both the
 * number of tasks to complete and how many run at once, as docker/cli sets it.
 */
export function convertMode(mode: unknown, replicas: unknown, where: string): ServiceMode {
  const n = replicas === undefined || replicas === null ? undefined : Number(replicas);
  switch (mode ?? 'replicated') {
    case 'replicated':
    case '':
      return { Replicated: n === undefined ? {} : { Replicas: n } };
    case 'replicated-job':
      return { ReplicatedJob: n === undefined ? {} : { MaxConcurrent: n, TotalCompletions: n } };
    case 'global':
    case 'global-job':
      if (n !== undefined) throw convertError(`${where}.replicas`, 'replicas can only be used with replicated or replicated-job mode');
      return mode === 'global' ? { Global: {} } : { GlobalJob: {} };
    default:
      throw convertError(`${where}.mode`, `unknown mode '${String(mode)}'`, 'use replicated, global, replicated-job or global-job');
  }
}

/** The Engine API Placement (always present, preferences always a list, as docker/cli sends them). */
export interface Placement {
  Constraints?: string[];
  Preferences: Array<{ Spread: { SpreadDescriptor: string } }>;
  MaxReplicas?: number;
}

/** Converts constraints, spread preferences and max_replicas_per_node. */
export function convertPlacement(placement: Dict | undefined): Placement {
  const out: Placement = { Preferences: [] };
  if (!placement) return out;
  if (Array.isArray(placement.constraints)) out.Constraints = placement.constraints.map(String);
  if (Array.isArray(placement.preferences)) {
    out.Preferences = (placement.preferences as Dict[]).map((p) => ({ Spread: { SpreadDescriptor: String(p.spread ?? '') } }));
  }
  if (placement.max_replicas_per_node !== undefined) out.MaxReplicas = Number(placement.max_replicas_per_node);
  return out;
}
