/**
 * Networks: the ones a stack creates (only those some service uses, `<stack>_default` for services
 * that name none, overlay unless a driver is given), external ones it only checks, and each service's
 * attachments with their aliases.
 */
import type { StackNetwork } from '../types.ts';
import { convertError } from './errors.ts';
import { scope, withStackLabel, type ConvertContext } from './namespace.ts';

type Dict = Record<string, unknown>;

/** The network Compose gives services that name none. */
export const DEFAULT_NETWORK = 'default';

/** One network attachment of a service. */
export interface NetworkAttachment {
  Target: string;
  Aliases?: string[];
  DriverOpts?: Record<string, string>;
}

const isExternal = (def: Dict | undefined): boolean => def?.external === true || (typeof def?.external === 'object' && def.external !== null);

/** The engine name of network `key`: its `name:`, an external network's own key, or `<stack>_<key>`. */
function networkName(key: string, def: Dict | undefined, stack: string): string {
  if (typeof def?.name === 'string') return def.name;
  const ext = def?.external as Dict | undefined;
  if (ext && typeof ext === 'object' && typeof ext.name === 'string') return ext.name;
  return isExternal(def) ? key : scope(stack, key);
}

/** Networks the engine has on every node: they take no aliases. */
const BUILTIN = new Set(['bridge', 'host', 'none', 'default']);

/** The keys of the networks a service attaches to: its own, or `default`. */
export function serviceNetworkKeys(svc: Dict): string[] {
  const nets = svc.networks as Dict | undefined;
  const keys = nets ? Object.keys(nets) : [];
  return keys.length > 0 ? keys : [DEFAULT_NETWORK];
}

/**
 * A service's attachments, sorted by target as docker/cli sorts them; every user-defined network
 * also gets the service's key as an alias, so `web` resolves on each network it joins.
 */
export function convertServiceNetworks(key: string, svc: Dict, networks: Record<string, Dict>, stack: string, where: string): NetworkAttachment[] {
  const nets = (svc.networks as Record<string, Dict | null> | undefined) ?? {};
  const out = serviceNetworkKeys(svc).map((net) => {
    const def = networks[net];
    if (!def && net !== DEFAULT_NETWORK) {
      throw convertError(`${where}.networks`, `network '${net}' is not defined under top-level networks`, `defined networks: ${Object.keys(networks).join(', ') || 'none'}`);
    }
    const cfg = nets[net] ?? undefined;
    const target = networkName(net, def, stack);
    const att: NetworkAttachment = { Target: target };
    const aliases = Array.isArray(cfg?.aliases) ? cfg.aliases.map(String) : [];
    if (!BUILTIN.has(target) && !target.startsWith('container:')) aliases.push(key);
    if (aliases.length > 0) att.Aliases = aliases;
    if (cfg?.driver_opts) att.DriverOpts = Object.fromEntries(Object.entries(cfg.driver_opts as Dict).map(([k, v]) => [k, String(v)]));
    return att;
  });
  return out.sort((a, b) => (a.Target < b.Target ? -1 : a.Target > b.Target ? 1 : 0));
}

/** The networks the stack's services use: create bodies for the stack's own, names for external ones. */
export function convertNetworks(services: Record<string, Dict>, networks: Record<string, Dict>, ctx: ConvertContext): StackNetwork[] {
  const used = new Set<string>();
  for (const svc of Object.values(services)) for (const k of serviceNetworkKeys(svc)) used.add(k);
  const out: StackNetwork[] = [];
  for (const key of [...used].sort()) {
    const def = networks[key];
    const name = networkName(key, def, ctx.stack);
    if (isExternal(def)) {
      out.push({ key, name, external: true });
      continue;
    }
    const spec: Record<string, unknown> = {
      Name: name,
      // docker stack deploy fills in overlay when the file names no driver.
      Driver: typeof def?.driver === 'string' ? def.driver : 'overlay',
      Labels: withStackLabel(ctx.stack, def?.labels as Record<string, string> | undefined),
    };
    if (def?.driver_opts) spec.Options = Object.fromEntries(Object.entries(def.driver_opts as Dict).map(([k, v]) => [k, String(v)]));
    if (def?.internal === true) spec.Internal = true;
    if (def?.attachable === true) spec.Attachable = true;
    const ipam = def?.ipam as Dict | undefined;
    if (ipam && (ipam.driver !== undefined || (Array.isArray(ipam.config) && ipam.config.length > 0))) {
      const ipamSpec: Record<string, unknown> = {};
      if (typeof ipam.driver === 'string') ipamSpec.Driver = ipam.driver;
      if (Array.isArray(ipam.config)) ipamSpec.Config = (ipam.config as Dict[]).map((c) => ({ Subnet: String(c.subnet ?? '') }));
      spec.IPAM = ipamSpec;
    }
    out.push({ key, name, external: false, spec: spec as unknown as StackNetwork['spec'] });
  }
  return out;
}
