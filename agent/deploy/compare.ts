/**
 * Comparing service specs the way Swarm stores them. The engine fills in defaults when it stores a
 * spec (`Isolation: "default"`, `EndpointSpec.Mode: "vip"`, `Protocol: "tcp"`, network ids for
 * names, secret ids), so a spec read back never equals the one sent byte for byte; both sides are
 * normalised here before they are compared, and an unchanged stack plans as unchanged.
 */
import type Dockerode from 'dockerode';
import type { Json } from '../executors/types.ts';
import type { FieldChange } from './types.ts';

type Dict = Record<string, unknown>;

const isDict = (v: unknown): v is Dict => !!v && typeof v === 'object' && !Array.isArray(v);

/**
 * Drops what carries no meaning: null, '', false, 0, empty lists and objects (Go's omitempty zeroes);
 * sorts keys, since the engine returns fields in its own order.
 */
function prune(value: unknown): unknown {
  if (Array.isArray(value)) return value.length ? value.map((v) => prune(v) ?? null) : undefined;
  if (isDict(value)) {
    const out: Dict = {};
    for (const [k, v] of Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      const p = prune(v);
      if (p === undefined) continue;
      out[k] = p;
    }
    return Object.keys(out).length ? out : undefined;
  }
  if (value === null || value === '' || value === false || value === 0 || value === undefined) return undefined;
  return value;
}

/** The mode with the engine's defaults filled in: 1 replica, a job's concurrency of 1. */
function normalMode(mode: unknown): Dict {
  const m = (isDict(mode) ? mode : {}) as Dict;
  if (isDict(m.Global)) return { Global: {} };
  if (isDict(m.GlobalJob)) return { GlobalJob: {} };
  if (isDict(m.ReplicatedJob)) {
    const j = m.ReplicatedJob as Dict;
    const max = typeof j.MaxConcurrent === 'number' ? j.MaxConcurrent : 1;
    return { ReplicatedJob: { MaxConcurrent: max, TotalCompletions: typeof j.TotalCompletions === 'number' ? j.TotalCompletions : max } };
  }
  const r = isDict(m.Replicated) ? (m.Replicated as Dict) : {};
  return { Replicated: { Replicas: typeof r.Replicas === 'number' ? r.Replicas : 1 } };
}

/**
 * A service spec in comparable form: engine defaults made explicit or dropped, network targets as
 * names, secret and config references by name only, `ForceUpdate` ignored (a stack deploy keeps it).
 */
export function normaliseServiceSpec(spec: Dockerode.ServiceSpec, networkNames: Record<string, string>): Dict {
  const s = structuredClone(spec) as Dict;
  const task = (isDict(s.TaskTemplate) ? s.TaskTemplate : {}) as Dict;
  delete task.ForceUpdate;
  if (task.Runtime === 'container') delete task.Runtime;
  const c = (isDict(task.ContainerSpec) ? task.ContainerSpec : {}) as Dict;
  if (c.Isolation === 'default') delete c.Isolation;
  for (const key of ['Secrets', 'Configs'] as const) {
    if (Array.isArray(c[key])) for (const ref of c[key] as Dict[]) delete ref[key === 'Secrets' ? 'SecretID' : 'ConfigID'];
  }
  if (Array.isArray(task.Networks)) {
    task.Networks = (task.Networks as Dict[]).map((n) => ({ ...n, Target: networkNames[String(n.Target)] ?? n.Target }));
  }
  const ep = (isDict(s.EndpointSpec) ? s.EndpointSpec : {}) as Dict;
  if (ep.Mode === 'vip') delete ep.Mode;
  if (Array.isArray(ep.Ports)) {
    ep.Ports = (ep.Ports as Dict[]).map((p) => ({
      ...p,
      Protocol: p.Protocol || 'tcp',
      PublishMode: p.PublishMode || 'ingress',
    }));
  }
  // Swarm stores an update policy's unset failure action and order as its defaults.
  for (const key of ['UpdateConfig', 'RollbackConfig'] as const) {
    const u = s[key];
    if (isDict(u)) {
      if (!u.FailureAction) u.FailureAction = 'pause';
      if (!u.Order) u.Order = 'stop-first';
    }
  }
  const mode = normalMode(s.Mode);
  delete s.Mode;
  const out = (prune(s) ?? {}) as Dict;
  // The mode is kept whole: pruning would make 0 replicas look like a global service.
  out.Mode = mode;
  return out;
}

function equal(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * The fields that differ between two normalised specs, as dotted paths; lists are compared whole
 * (`TaskTemplate.ContainerSpec.Env`), so a change reads as the old and the new list.
 */
export function diffSpecs(from: Dict, to: Dict, path: string[] = []): FieldChange[] {
  const changes: FieldChange[] = [];
  const keys = [...new Set([...Object.keys(from), ...Object.keys(to)])].sort();
  for (const k of keys) {
    const a = from[k];
    const b = to[k];
    if (equal(a, b)) continue;
    if (isDict(a) && isDict(b)) {
      changes.push(...diffSpecs(a, b, [...path, k]));
      continue;
    }
    const change: FieldChange = { path: [...path, k].join('.') };
    if (a !== undefined) change.from = a as Json;
    if (b !== undefined) change.to = b as Json;
    changes.push(change);
  }
  return changes;
}
