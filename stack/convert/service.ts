/**
 * One Compose service to the ServiceSpec `docker stack deploy` sends (docker/cli
 * `cli/compose/convert/service.go`), built from the per-concept converters beside this file.
 */
import type Dockerode from 'dockerode';
import type { PortEntry, VolumeEntry } from '../loader/normalize.ts';
import type { ComposeModel } from '../loader/index.ts';
import { convertEnvironment } from './environment.ts';
import { at, convertError } from './errors.ts';
import { convertHealthcheck } from './healthcheck.ts';
import { convertMounts } from './mounts.ts';
import { IMAGE_LABEL, scope, withStackLabel, type ConvertContext } from './namespace.ts';
import { convertServiceNetworks } from './networks.ts';
import { convertReferences } from './objects.ts';
import { convertMode, convertPlacement } from './placement.ts';
import { convertRestartPolicy, convertUpdateConfig, withSafeDefaults } from './policies.ts';
import { convertEndpoint, publishesHostPorts } from './ports.ts';
import { convertResources } from './resources.ts';
import { parseDuration } from './units.ts';

type Dict = Record<string, unknown>;

/** Options of the conversion. */
export interface ConvertOptions {
  /** Apply MiniPaaS's update/rollback defaults where the file sets none (see policies.ts). Default true. */
  safeDefaults?: boolean;
}

/** Swarm's rule for service names (a DNS label, `_` allowed inside), at most 63 characters. */
const SERVICE_NAME = /^[a-zA-Z0-9](?:[-_]*[A-Za-z0-9]+)*$/;

/** Capability names as docker/cli normalises them: upper case, `CAP_` prefix; ALL wins; add beats drop. */
export function effectiveCapabilities(add: unknown, drop: unknown): { add?: string[]; drop?: string[] } {
  const norm = (c: unknown): string => {
    const s = String(c).trim().toUpperCase();
    return s === 'ALL' || s === 'RESET' || s.startsWith('CAP_') ? s : `CAP_${s}`;
  };
  let adds = new Set(Array.isArray(add) ? add.map(norm) : []);
  let drops = new Set(Array.isArray(drop) ? drop.map(norm) : []);
  if (adds.has('ALL')) adds = new Set(['ALL']);
  if (drops.has('ALL')) drops = new Set(['ALL']);
  const outDrop = [...drops].filter((c) => !adds.has(c) && c !== 'RESET').sort();
  const outAdd = [...adds].filter((c) => c !== 'RESET').sort();
  return { add: outAdd.length ? outAdd : undefined, drop: outDrop.length ? outDrop : undefined };
}

function ulimits(value: unknown): Array<{ Name: string; Soft: number; Hard: number }> | undefined {
  if (!value || typeof value !== 'object') return undefined;
  const out = Object.entries(value as Dict).map(([Name, v]) => {
    if (typeof v === 'number') return { Name, Soft: v, Hard: v };
    const d = v as Dict;
    return { Name, Soft: Number(d.soft ?? 0), Hard: Number(d.hard ?? 0) };
  });
  return out.sort((a, b) => (a.Name < b.Name ? -1 : a.Name > b.Name ? 1 : 0));
}

/** `extra_hosts` (`host:ip`) in the engine's notation, `ip host`, order kept. */
function hosts(value: unknown): string[] {
  return (Array.isArray(value) ? value : []).flatMap((e) => {
    const s = String(e);
    const at = s.indexOf(':');
    return at < 0 ? [] : [`${s.slice(at + 1)} ${s.slice(0, at)}`];
  });
}

const strings = (v: unknown): string[] | undefined => (Array.isArray(v) ? v.map(String) : undefined);

/**
 * Converts service `key` of `model`. Throws `ConfigError` naming `services.<key>.<field>` for a
 * value Swarm cannot take.
 */
export function convertService(key: string, model: ComposeModel, ctx: ConvertContext, opts: ConvertOptions = {}): Dockerode.ServiceSpec {
  const svc = model.services[key]!;
  const where = `services.${key}`;
  const name = scope(ctx.stack, key);
  if (name.length > 63 || !SERVICE_NAME.test(name)) {
    throw convertError(where, `the service name '${name}' is not valid in Swarm (letters, digits, '-' and '_' inside, at most 63 characters)`, 'rename the service or choose a shorter stack name');
  }
  const image = svc.image;
  if (typeof image !== 'string' || image === '') {
    throw convertError(where, 'no image specified', 'Swarm runs images: set `image:` (a `build:` section is not used by Swarm)');
  }
  const deploy = (svc.deploy as Dict | undefined) ?? {};
  const ports = svc.ports as PortEntry[] | undefined;
  const mode = convertMode(deploy.mode, deploy.replicas, `${where}.deploy`);
  const isJob = 'ReplicatedJob' in mode || 'GlobalJob' in mode;
  const caps = effectiveCapabilities(svc.cap_add, svc.cap_drop);

  const container: Dict = {
    Image: image,
    Labels: withStackLabel(ctx.stack, svc.labels as Record<string, string> | undefined),
    Privileges: {},
  };
  const set = (k: string, v: unknown): void => {
    if (v !== undefined) container[k] = v;
  };
  set('Command', strings(svc.entrypoint));
  set('Args', strings(svc.command));
  set('Hostname', svc.hostname);
  const h = hosts(svc.extra_hosts);
  if (h.length) container.Hosts = h;
  if (svc.dns !== undefined || svc.dns_search !== undefined) {
    container.DNSConfig = { Nameservers: strings(svc.dns), Search: strings(svc.dns_search) };
  }
  set('Healthcheck', convertHealthcheck(svc.healthcheck as Dict | undefined, `${where}.healthcheck`));
  const env = convertEnvironment(svc, ctx, where);
  if (env.length) container.Env = env;
  set('Dir', svc.working_dir);
  set('User', svc.user);
  const mounts = convertMounts(svc.volumes as VolumeEntry[] | undefined, model.volumes, ctx, where);
  if (mounts.length) container.Mounts = mounts;
  if (svc.stop_grace_period !== undefined) {
    container.StopGracePeriod = at(`${where}.stop_grace_period`, () => parseDuration(svc.stop_grace_period));
  }
  set('StopSignal', svc.stop_signal);
  if (svc.tty === true) container.TTY = true;
  if (svc.stdin_open === true) container.OpenStdin = true;
  const secrets = convertReferences('secret', svc.secrets as Dict[] | undefined, model.secrets, ctx.stack, where);
  if (secrets.length) container.Secrets = secrets;
  const configs = convertReferences('config', svc.configs as Dict[] | undefined, model.configs, ctx.stack, where);
  if (configs.length) container.Configs = configs;
  if (svc.read_only === true) container.ReadOnly = true;
  set('Isolation', svc.isolation);
  set('Init', typeof svc.init === 'boolean' ? svc.init : undefined);
  if (svc.sysctls && Object.keys(svc.sysctls).length) container.Sysctls = svc.sysctls;
  set('CapabilityAdd', caps.add);
  set('CapabilityDrop', caps.drop);
  const ul = ulimits(svc.ulimits);
  if (ul?.length) container.Ulimits = ul;
  if (svc.oom_score_adj !== undefined) container.OomScoreAdj = Number(svc.oom_score_adj);

  const task: Dict = {
    ContainerSpec: container,
    Resources: convertResources(deploy.resources as Dict | undefined, `${where}.deploy.resources`),
    Placement: convertPlacement(deploy.placement as Dict | undefined),
    Networks: convertServiceNetworks(key, svc, model.networks, ctx.stack, where),
  };
  const restart = convertRestartPolicy(deploy.restart_policy as Dict | undefined, svc.restart, `${where}.deploy`);
  if (restart) task.RestartPolicy = restart;
  const logging = svc.logging as Dict | undefined;
  if (logging) {
    task.LogDriver = {
      Name: String(logging.driver ?? ''),
      ...(logging.options ? { Options: Object.fromEntries(Object.entries(logging.options as Dict).map(([k, v]) => [k, String(v)])) } : {}),
    };
  }

  const spec: Dict = {
    Name: name,
    Labels: { ...withStackLabel(ctx.stack, deploy.labels as Record<string, string> | undefined), [IMAGE_LABEL]: image },
    TaskTemplate: task,
    Mode: mode,
    EndpointSpec: convertEndpoint(ports, deploy.endpoint_mode),
  };
  const updateGiven = deploy.update_config as Dict | undefined;
  const rollbackGiven = deploy.rollback_config as Dict | undefined;
  let update = convertUpdateConfig(updateGiven, `${where}.deploy.update_config`);
  let rollback = convertUpdateConfig(rollbackGiven, `${where}.deploy.rollback_config`);
  if ((opts.safeDefaults ?? true) && !isJob) {
    const hostPorts = publishesHostPorts(ports);
    update = withSafeDefaults(update, updateGiven, { failureAction: 'rollback', hostPorts });
    rollback = withSafeDefaults(rollback, rollbackGiven, { failureAction: 'pause', hostPorts });
  }
  if (update) spec.UpdateConfig = update;
  if (rollback) spec.RollbackConfig = rollback;
  return spec as Dockerode.ServiceSpec;
}
