/** `deploy.resources` to the task's ResourceRequirements. */
import { at } from './errors.ts';
import { parseBytes, parseCpus } from './units.ts';

type Dict = Record<string, unknown>;

/** The Engine API ResourceRequirements (always present, as docker/cli sends an empty one). */
export interface ResourceRequirements {
  Limits?: { NanoCPUs: number; MemoryBytes: number; Pids?: number };
  Reservations?: {
    NanoCPUs: number;
    MemoryBytes: number;
    GenericResources?: Array<{ DiscreteResourceSpec?: { Kind: string; Value: number } }>;
  };
}

/** Converts limits (cpus, memory, pids) and reservations (cpus, memory, generic_resources). */
export function convertResources(resources: Dict | undefined, where: string): ResourceRequirements {
  const out: ResourceRequirements = {};
  const limits = resources?.limits as Dict | undefined;
  const reservations = resources?.reservations as Dict | undefined;
  const cpus = (d: Dict, w: string): number => (d.cpus === undefined ? 0 : at(`${w}.cpus`, () => parseCpus(d.cpus)));
  const mem = (d: Dict, w: string): number => (d.memory === undefined ? 0 : at(`${w}.memory`, () => parseBytes(d.memory)));
  if (limits) {
    out.Limits = { NanoCPUs: cpus(limits, `${where}.limits`), MemoryBytes: mem(limits, `${where}.limits`) };
    if (limits.pids !== undefined) out.Limits.Pids = Number(limits.pids);
  }
  if (reservations) {
    out.Reservations = {
      NanoCPUs: cpus(reservations, `${where}.reservations`),
      MemoryBytes: mem(reservations, `${where}.reservations`),
    };
    const generic = reservations.generic_resources as Dict[] | undefined;
    if (generic && generic.length > 0) {
      out.Reservations.GenericResources = generic.map((g) => {
        const d = g.discrete_resource_spec as Dict | undefined;
        return d ? { DiscreteResourceSpec: { Kind: String(d.kind), Value: Number(d.value) } } : {};
      });
    }
  }
  return out;
}
