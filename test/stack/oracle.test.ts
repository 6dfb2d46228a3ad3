/**
 * The oracle: every Compose file of `corpus/` deployed once with `docker stack deploy` (the docker 28
 * CLI, the reference) and once with MiniPaaS (`loadStack` with safe defaults off, then
 * `observeStack`/`planStack`/`applyStack`), under different stack names. The service, network, secret
 * and config specs read back from the engine must be equal field by field once the stack name is
 * replaced, except for the differences in `ALLOWED` (each with its reason; docs/compose.md lists them).
 *
 * Each case also plans MiniPaaS's stack again after deploying it: everything must be unchanged, which
 * checks that plans compare specs as Swarm stores them.
 *
 * The two stacks of a case are deployed one after the other (published ports are cluster-wide), with
 * replicas 0 wherever the case allows, and nothing waits for tasks to run.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { connectDocker, STACK_NAMESPACE_LABEL } from '../../agent/docker/engine.ts';
import { stackRemove } from '../../agent/executors/stack-remove.ts';
import { applyStack, observeStack, planStack } from '../../agent/deploy/index.ts';
import { loadStack } from '../../stack/index.ts';
import type { StackSpec } from '../../stack/types.ts';
import { NotFoundError } from '../../sql/errors.ts';
import { describeSwarm } from '../support/docker.ts';
import { recordingContext } from '../agent/executors/recording-context.ts';

const run = promisify(execFile);
const CORPUS = fileURLToPath(new URL('./corpus/', import.meta.url));
const DOCKER_CLI = '/usr/local/bin/docker';
const EXT_NETWORK = 'mp-oracle-ext';
const EXT_SECRET = 'mp-oracle-ext-secret';

/**
 * Differences that must stay, by field path (after the stack name is replaced). Each one says why;
 * docs/compose.md has the same table.
 */
const ALLOWED: Array<{ path: RegExp; reason: string }> = [
  {
    path: /^secrets\.[^.]+\.Labels\.org\.minipaas\.digest$/,
    reason: 'MiniPaaS labels the secrets it creates with the sha256 of their content: the engine never returns a secret, and a plan must see a changed file',
  },
  {
    path: /^networks\.[^.]+\.IPAM\.Config$/,
    reason: 'the engine assigns each network a free subnet and gateway; the two stacks exist side by side in time, so they get different ones (compared when the file sets a subnet)',
  },
  {
    path: /^networks\.[^.]+\.Options\.com\.docker\.network\.driver\.overlay\.vxlanid_list$/,
    reason: 'the engine assigns each overlay network its own VXLAN id',
  },
];

type Dict = Record<string, unknown>;

const isDict = (v: unknown): v is Dict => !!v && typeof v === 'object' && !Array.isArray(v);

/** Field-by-field differences between two JSON trees, as `path: a != b` lines with dotted paths. */
function differences(a: unknown, b: unknown, path: string[] = []): Array<{ path: string; ref: unknown; mp: unknown }> {
  if (JSON.stringify(a) === JSON.stringify(b)) return [];
  if (isDict(a) && isDict(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    return keys.flatMap((k) => differences(a[k], b[k], [...path, k]));
  }
  if (Array.isArray(a) && Array.isArray(b) && a.length === b.length) {
    return a.flatMap((v, i) => differences(v, b[i], [...path, `[${i}]`]));
  }
  return [{ path: path.join('.').replace(/\.\[/g, '['), ref: a, mp: b }];
}

interface ReadBack {
  services: Record<string, unknown>;
  networks: Record<string, unknown>;
  secrets: Record<string, unknown>;
  configs: Record<string, unknown>;
}

const docker = connectDocker();

/** The stack's objects as the engine stores them, keyed by name, ids replaced by names. */
async function readBack(stack: string, fileSetsSubnet: (net: string) => boolean): Promise<ReadBack> {
  const filters = JSON.stringify({ label: [`${STACK_NAMESPACE_LABEL}=${stack}`] });
  const api = docker.api;
  const allNetworks = (await api.listNetworks()) as Array<{ Id: string; Name: string }>;
  const netName = new Map(allNetworks.map((n) => [n.Id, n.Name]));
  const secretsAll = (await api.listSecrets()) as Array<{ ID: string; Spec: { Name: string } }>;
  const configsAll = (await api.listConfigs()) as Array<{ ID: string; Spec: { Name: string } }>;
  const objName = new Map([...secretsAll, ...configsAll].map((o) => [o.ID, o.Spec.Name]));
  const services: Dict = {};
  for (const s of await api.listServices({ filters })) {
    const spec = structuredClone(s.Spec) as Dict;
    const task = spec.TaskTemplate as Dict;
    const c = task.ContainerSpec as Dict;
    for (const n of (task.Networks as Dict[] | undefined) ?? []) n.Target = netName.get(String(n.Target)) ?? n.Target;
    // ids differ between any two deploys; the name a reference points to is what must match
    for (const r of (c.Secrets as Dict[] | undefined) ?? []) r.SecretID = `<id of ${objName.get(String(r.SecretID)) ?? '?'}>`;
    for (const r of (c.Configs as Dict[] | undefined) ?? []) r.ConfigID = `<id of ${objName.get(String(r.ConfigID)) ?? '?'}>`;
    services[String(spec.Name)] = spec;
  }
  const networks: Dict = {};
  for (const n of (await api.listNetworks({ filters })) as unknown as Dict[]) {
    const { Id: _id, Created: _created, Containers: _c, ...rest } = n;
    if (!fileSetsSubnet(String(n.Name))) delete (rest.IPAM as Dict | undefined)?.Config;
    networks[String(n.Name)] = rest;
  }
  const secrets: Dict = {};
  for (const s of (await api.listSecrets({ filters })) as unknown as Array<{ Spec: Dict }>) secrets[String(s.Spec.Name)] = s.Spec;
  const configs: Dict = {};
  for (const s of (await api.listConfigs({ filters })) as unknown as Array<{ Spec: Dict }>) configs[String(s.Spec.Name)] = s.Spec;
  return { services, networks, secrets, configs };
}

/** Removes everything labelled with the stack (the same executor `mp` uses), waiting for tasks to go. */
async function removeStack(stack: string): Promise<void> {
  await stackRemove.execute(recordingContext(docker), { stack, timeoutSeconds: 60 });
  // Objects the file names itself (`name:`) carry the label too; nothing else is left behind.
}

function envFor(stack: string): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: '/root',
    ORACLE_NAME: 'oracle',
    ORACLE_STACK: stack,
    FROM_SHELL: 'shell-value',
    EMPTY: 'filled-from-shell',
  };
}

const cases = readdirSync(CORPUS)
  .filter((d) => existsSync(join(CORPUS, d, 'compose.yaml')))
  .sort();

describeSwarm('the Compose oracle: MiniPaaS deploys what docker stack deploy deploys', () => {
  beforeAll(async () => {
    const nets = await docker.listNetworks({ name: [EXT_NETWORK] });
    if (!nets.some((n) => n.name === EXT_NETWORK)) {
      await docker.createNetwork({ Name: EXT_NETWORK, Driver: 'overlay', Attachable: true, Labels: { 'org.minipaas.test': '1' } });
    }
    const secrets = await docker.listSecrets({ name: [EXT_SECRET] });
    if (!secrets.some((s) => s.name === EXT_SECRET)) {
      await docker.createSecret({ name: EXT_SECRET, data: 'external', labels: { 'org.minipaas.test': '1' } });
    }
  });

  afterAll(async () => {
    const gone = async (fn: () => Promise<void>): Promise<void> => {
      try {
        await fn();
      } catch (err) {
        if (!(err instanceof NotFoundError)) throw err;
      }
    };
    for (const n of await docker.listNetworks({ name: [EXT_NETWORK] })) if (n.name === EXT_NETWORK) await gone(() => docker.removeNetwork(n));
    for (const s of await docker.listSecrets({ name: [EXT_SECRET] })) if (s.name === EXT_SECRET) await gone(() => docker.removeSecret(s));
  });

  it('has at least 15 cases', () => {
    expect(cases.length).toBeGreaterThanOrEqual(15);
  });

  for (const dir of cases) {
    const nn = dir.slice(0, 2);
    it(`${dir}: same specs as docker stack deploy`, { timeout: 120_000 }, async () => {
      const workingDir = join(CORPUS, dir);
      const file = join(workingDir, 'compose.yaml');
      const ref = `ref${nn}`;
      const mp = `mp${nn}`;
      await removeStack(ref);
      await removeStack(mp);

      // The reference.
      const { stderr } = await run(DOCKER_CLI, ['stack', 'deploy', '--detach=true', '-c', file, ref], {
        cwd: workingDir,
        env: envFor(ref),
      });
      const desired: StackSpec = loadStack({
        name: mp,
        files: [{ path: file, content: readFileSync(file, 'utf8') }],
        env: envFor(mp),
        workingDir,
        readFile: (p) => readFileSync(p),
        safeDefaults: false,
      });
      // Subnets are compared only where the file sets them (see ALLOWED).
      const subnetSet = (net: string): boolean =>
        desired.networks.some((n) => n.name.replace(/^mp\d\d_/, '') === net.replace(/^(ref|mp)\d\d_/, '') && !!n.spec?.IPAM);
      let refState: ReadBack;
      try {
        refState = await readBack(ref, subnetSet);
      } finally {
        await removeStack(ref);
      }

      // MiniPaaS.
      let mpState: ReadBack;
      try {
        const plan = planStack(desired, await observeStack(docker, mp, desired));
        await applyStack(docker, plan, { desired, step: () => {} });
        mpState = await readBack(mp, subnetSet);
        const again = planStack(desired, await observeStack(docker, mp, desired));
        expect(
          again.actions.filter((a) => a.type !== 'unchanged'),
          'a second plan right after the deploy changes nothing',
        ).toEqual([]);
      } finally {
        await removeStack(mp);
      }

      const renamed = JSON.parse(JSON.stringify(refState).replaceAll(ref, mp)) as ReadBack;
      const diffs = differences(renamed, mpState).filter((d) => !ALLOWED.some((a) => a.path.test(d.path)));
      expect(diffs.map((d) => `${d.path}: docker ${JSON.stringify(d.ref)} != minipaas ${JSON.stringify(d.mp)}`)).toEqual([]);

      // Every option docker reports as ignored, MiniPaaS reports too.
      const ignored = /Ignoring unsupported options: (.*)/.exec(stderr)?.[1]?.split(', ').map((s) => s.trim()) ?? [];
      for (const key of ignored) expect(desired.warnings.some((w) => w.includes(`'${key}'`)), `warning for ${key}`).toBe(true);
    });
  }
});
