/**
 * Planning a deploy: from the desired stack and what the engine has, the ordered actions that
 * converge one to the other. Pure; unit tests assert on plans and `mp deploy --dry-run` prints them.
 *
 * Order: networks, secrets, configs (a service can only reference what exists), services created
 * or updated by name, then services the stack no longer defines removed.
 *
 * Secrets and configs are immutable in Swarm. `docker stack deploy` tries to update one in place and
 * fails when its content changed. MiniPaaS keeps the name `<stack>_<key>` while the content is
 * the one that name holds, and gives new content a new object, `<stack>_<key>-<digest8>`, that the
 * services are moved to in the same deploy (a rolling update); the old object stays for the old
 * tasks and a rollback, until a prune removes it.
 */
import type Dockerode from 'dockerode';
import { ConfigError, NotFoundError } from '../../sql/errors.ts';
import type { StackObject, StackSpec } from '../../stack/types.ts';
import type { Json } from '../executors/types.ts';
import { diffSpecs, normaliseServiceSpec } from './compare.ts';
import { DIGEST_LABEL, type DeployAction, type ObservedObject, type ObservedStack, type StackPlan } from './types.ts';

/** The label `docker stack deploy` records the file's image reference in. */
const IMAGE_LABEL = 'com.docker.stack.image';

/** Local networks every node has: external references to them need no check. */
const BUILTIN_NETWORKS = new Set(['host', 'bridge', 'none']);

function checkExternals(desired: StackSpec, observed: ObservedStack): void {
  for (const n of desired.networks.filter((x) => x.external)) {
    if (BUILTIN_NETWORKS.has(n.name) || !(n.name in observed.external.networks)) continue;
    const found = observed.external.networks[n.name];
    if (!found) {
      throw new NotFoundError(
        'EXTERNAL_NOT_FOUND',
        `network '${n.name}' (networks.${n.key}) is declared as external, but does not exist`,
        `create it first: docker network create --driver overlay --attachable ${n.name}`,
      );
    }
    if (found.scope !== 'swarm') {
      throw new ConfigError(
        'EXTERNAL_SCOPE',
        `network '${n.name}' (networks.${n.key}) is declared as external but is a ${found.scope} network, not a swarm one`,
        'services can only join swarm-scoped (overlay) networks',
      );
    }
  }
  for (const [kind, list, known] of [
    ['secret', desired.secrets, observed.external.secrets],
    ['config', desired.configs, observed.external.configs],
  ] as const) {
    for (const o of list.filter((x) => x.external)) {
      if (o.name in known && known[o.name] === null) {
        throw new NotFoundError(
          'EXTERNAL_NOT_FOUND',
          `${kind} '${o.name}' (${kind}s.${o.key}) is declared as external, but does not exist`,
          `create it first: docker ${kind} create ${o.name} FILE`,
        );
      }
    }
  }
}

/**
 * The engine name for one secret or config: its own name while that holds the same content (or is
 * free), else the versioned name. Returns the name and whether it must be created.
 */
function placeObject(obj: StackObject, observed: ObservedObject[]): { name: string; create: boolean } {
  const byName = new Map(observed.map((o) => [o.name, o]));
  const current = byName.get(obj.name);
  if (!current) return { name: obj.name, create: true };
  if (current.digest === obj.digest) return { name: obj.name, create: false };
  const versioned = `${obj.name}-${(obj.digest ?? '').slice(0, 8)}`;
  const existing = byName.get(versioned);
  return { name: versioned, create: !existing || existing.digest !== obj.digest };
}

function planObjects(kind: 'secret' | 'config', objects: StackObject[], observed: ObservedObject[], renames: Map<string, string>, actions: DeployAction[], warnings: string[]): void {
  for (const obj of objects) {
    if (obj.external || !obj.spec) continue;
    const { name, create } = placeObject(obj, observed);
    if (name !== obj.name) {
      renames.set(obj.name, name);
      if (create) warnings.push(`${kind} '${obj.name}' has new content; it is created as '${name}' and the services using it move to it`);
    }
    if (!create) {
      actions.push({ type: 'unchanged', kind, name });
      continue;
    }
    const labels = kind === 'secret' ? { ...obj.spec.Labels, [DIGEST_LABEL]: obj.digest ?? '' } : obj.spec.Labels;
    const spec = { ...obj.spec, Name: name, Labels: labels } as unknown as Json;
    actions.push({ type: kind === 'secret' ? 'create-secret' : 'create-config', key: obj.key, name, digest: obj.digest ?? '', spec });
  }
}

/** The desired spec with secret/config references moved to their placed names. */
function withPlacedNames(spec: Dockerode.ServiceSpec, renames: Map<string, string>): Dockerode.ServiceSpec {
  const s = structuredClone(spec);
  const c = s.TaskTemplate && 'ContainerSpec' in s.TaskTemplate ? s.TaskTemplate.ContainerSpec : undefined;
  for (const ref of c?.Secrets ?? []) if (ref.SecretName && renames.has(ref.SecretName)) ref.SecretName = renames.get(ref.SecretName);
  for (const ref of c?.Configs ?? []) if (ref.ConfigName && renames.has(ref.ConfigName)) ref.ConfigName = renames.get(ref.ConfigName);
  return s;
}

/**
 * Keeps the image the engine runs when the file names the same reference as last time: a registry
 * lookup may have pinned it to a digest (`img:1@sha256:...`), and `docker stack deploy` keeps that
 * pin rather than restart every task.
 */
function keepPinnedImage(spec: Dockerode.ServiceSpec, current: Dockerode.ServiceSpec): void {
  const c = spec.TaskTemplate && 'ContainerSpec' in spec.TaskTemplate ? spec.TaskTemplate.ContainerSpec : undefined;
  const cur = current.TaskTemplate && 'ContainerSpec' in current.TaskTemplate ? current.TaskTemplate.ContainerSpec : undefined;
  if (!c?.Image || !cur?.Image) return;
  if (current.Labels?.[IMAGE_LABEL] === c.Image && cur.Image.startsWith(`${c.Image}@`)) c.Image = cur.Image;
}

/**
 * Plans the deploy of `desired` over `observed`. Throws `NotFoundError` when an external network,
 * secret or config the stack names does not exist, `ConfigError` for a non-swarm external network.
 *
 * @example
 *   const plan = planStack(desired, await observeStack(docker, desired.name, desired));
 *   plan.actions // [{ type: 'unchanged', kind: 'network', name: 'shop_default' }, { type: 'update-service', ... }]
 */
export function planStack(desired: StackSpec, observed: ObservedStack): StackPlan {
  checkExternals(desired, observed);
  const actions: DeployAction[] = [];
  const warnings = [...desired.warnings];

  const networkNames = new Set(observed.networks.map((n) => n.name));
  for (const n of desired.networks) {
    if (n.external || !n.spec) continue;
    if (networkNames.has(n.name)) actions.push({ type: 'unchanged', kind: 'network', name: n.name });
    else actions.push({ type: 'create-network', key: n.key, name: n.name, spec: n.spec });
  }

  const renames = new Map<string, string>();
  planObjects('secret', desired.secrets, observed.secrets, renames, actions, warnings);
  planObjects('config', desired.configs, observed.configs, renames, actions, warnings);

  // Networks a deploy creates get ids only when created; until then their names stand for them.
  const ids = { ...observed.networkNames };
  const current = new Map(observed.services.map((s) => [s.name, s]));
  for (const svc of [...desired.services].sort((a, b) => a.name.localeCompare(b.name))) {
    const spec = withPlacedNames(svc.spec, renames);
    const existing = current.get(svc.name);
    if (!existing) {
      actions.push({ type: 'create-service', key: svc.key, name: svc.name, spec });
      continue;
    }
    keepPinnedImage(spec, existing.spec);
    const changes = diffSpecs(normaliseServiceSpec(existing.spec, ids), normaliseServiceSpec(spec, ids));
    if (changes.length === 0) {
      actions.push({ type: 'unchanged', kind: 'service', name: svc.name });
      continue;
    }
    actions.push({ type: 'update-service', key: svc.key, name: svc.name, id: existing.id, version: existing.version, changes, spec });
  }

  const wanted = new Set(desired.services.map((s) => s.name));
  for (const s of observed.services) {
    if (!wanted.has(s.name)) actions.push({ type: 'remove-service', name: s.name, id: s.id });
  }
  return { stack: desired.name, actions, changed: actions.some((a) => a.type !== 'unchanged'), warnings };
}
