// Compose files edited in place: comments and formatting survive byte for byte, a second run changes
// nothing, only the first file defining a service is touched, and a write is all files or none.
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, ConflictError } from '../../sql/errors.ts';
import { managedObjectEdits, planComposeEdits, readFilesForEdit, writeFilesAtomically, type ComposeText } from '../../stack/edit/index.ts';

const BASE = `# The shop: an API and a worker.
services:
    api:   # public
        image: "shop/api:1.4"   # pinned by the release
        command: ['node', 'server.js']
        secrets:
        - source: tls_cert
          mode: 0440

        environment:
            - PORT=8080
    worker:
        image: 'shop/worker:1.4'
        deploy: {replicas: 2}

# Secrets the shop uses.
secrets:
    tls_cert:
        file: ./tls.pem
`;

const BUILD = `services:
  api:
    build: ./api
  web:
    image: nginx
`;

/** Lines of `after` that are not in `before`, in order: what an edit added. */
function added(before: string, after: string): string[] {
  const old = before.split('\n');
  const out: string[] = [];
  let i = 0;
  for (const line of after.split('\n')) {
    if (i < old.length && old[i] === line) i++;
    else out.push(line);
  }
  expect(i).toBe(old.length); // every original line is still there, in order
  return out;
}

describe('planComposeEdits', () => {
  const files: ComposeText[] = [
    { path: 'compose.yaml', content: BASE },
    { path: 'compose.build.yaml', content: BUILD },
  ];

  it('--for api, worker: only adds lines, in the file style (4 spaces, unindented lists), keeping every byte of the rest', () => {
    const plan = planComposeEdits(files, managedObjectEdits('secret', 'db_password', ['api', 'worker'], files));
    expect(plan.changes.map((c) => c.path)).toEqual(['compose.yaml']);
    const after = plan.changes[0]!.after;
    expect(added(BASE, after)).toEqual([
      '        - db_password',
      '        secrets:',
      '        - db_password',
      '    db_password:',
      '        external: true',
      '        x-minipaas: managed',
    ]);
    expect(after).toContain('    api:   # public\n        image: "shop/api:1.4"   # pinned by the release\n');
    expect(after).toContain('          mode: 0440\n');
    expect(plan.notes).toContain('compose.yaml: services.api.secrets += "db_password"');
  });

  it('is idempotent: the same edits on the edited files change no byte', () => {
    const once = planComposeEdits(files, managedObjectEdits('secret', 'db_password', ['api', 'worker'], files));
    const edited = once.files.map((f) => ({ path: f.path, content: f.after }));
    const twice = planComposeEdits(edited, managedObjectEdits('secret', 'db_password', ['api', 'worker'], edited));
    expect(twice.changes).toEqual([]);
    expect(twice.files.map((f) => f.after)).toEqual(edited.map((f) => f.content));
    expect(twice.notes.every((n) => n.includes('already'))).toBe(true);
  });

  it('touches only the first file defining the service: web lives in the second file', () => {
    const plan = planComposeEdits(files, managedObjectEdits('config', 'app.json', ['web'], files));
    expect(plan.changes.map((c) => c.path)).toEqual(['compose.build.yaml']);
    expect(plan.changes[0]!.after).toBe(`${BUILD}    configs:\n      - app.json\n\nconfigs:\n  app.json:\n    external: true\n    x-minipaas: managed\n`);
  });

  it('long-syntax references count as present; flow lists grow in flow style', () => {
    const content = 'services:\n  api:\n    image: x\n    secrets: [a, {source: db_password}]\n    configs: [a]\n';
    const f = [{ path: 'c.yaml', content }];
    expect(planComposeEdits(f, [{ op: 'add-to-list', service: 'api', key: 'secrets', item: 'db_password', match: 'source' }]).changes).toEqual([]);
    const plan = planComposeEdits(f, [{ op: 'add-to-list', service: 'api', key: 'configs', item: 'b' }]);
    expect(plan.changes[0]!.after).toBe('services:\n  api:\n    image: x\n    secrets: [a, {source: db_password}]\n    configs: [a, b]\n');
  });

  it('general edits: set a nested key, replace a scalar keeping its comment, fill an empty value', () => {
    const content = 'services:\n  api:\n    image: x   # the image\n    labels:\n';
    const f = [{ path: 'c.yaml', content }];
    const plan = planComposeEdits(f, [
      { op: 'set', service: 'api', path: ['deploy', 'replicas'], value: 3 },
      { op: 'set', service: 'api', path: ['image'], value: 'y:2' },
      { op: 'add-to-list', service: 'api', key: 'labels', item: 'a=b' },
      { op: 'add-entry', section: 'networks', name: 'edge', value: { external: true }, file: 'c.yaml' },
    ]);
    expect(plan.changes[0]!.after).toBe(
      'services:\n  api:\n    image: y:2   # the image\n    labels:\n      - a=b\n    deploy:\n      replicas: 3\n\nnetworks:\n  edge:\n    external: true\n',
    );
    expect(planComposeEdits([{ path: 'c.yaml', content: plan.changes[0]!.after }], [{ op: 'set', service: 'api', path: ['deploy', 'replicas'], value: 3 }]).changes).toEqual([]);
  });

  it('a service no file defines names the files and the services that exist, with the near miss', () => {
    const err = (() => {
      try {
        planComposeEdits(files, managedObjectEdits('secret', 'x', ['wroker'], files));
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toBe("service 'wroker' is not defined in compose.yaml or compose.build.yaml; defined services: api, web, worker");
    expect((err as ConfigError).hint).toBe("did you mean 'worker'?");
  });

  it('refuses to shadow a file-based secret of the same name', () => {
    expect(() => managedObjectEdits('secret', 'tls_cert', ['api'], files)).toThrow(/already defines secrets\.tls_cert and it is not external/);
  });
});

describe('writeFilesAtomically', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mp-edit-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function twoFiles(): Promise<string[]> {
    const a = join(dir, `a-${Math.random().toString(36).slice(2)}.yaml`);
    const b = join(dir, `b-${Math.random().toString(36).slice(2)}.yaml`);
    await writeFile(a, 'services:\n  api:\n    image: x\n');
    await writeFile(b, 'services:\n  web:\n    image: y\n');
    return [a, b];
  }

  it('writes every changed file, keeping its mode', async () => {
    const [a, b] = await twoFiles();
    await chmod(a!, 0o640);
    const read = await readFilesForEdit([a!, b!]);
    const plan = planComposeEdits(read, managedObjectEdits('secret', 's', ['api', 'web'], read));
    await writeFilesAtomically(plan.changes.map((c) => ({ ...c, mtimeMs: read.find((r) => r.path === c.path)!.mtimeMs })));
    expect(await readFile(a!, 'utf8')).toContain('x-minipaas: managed');
    expect(await readFile(b!, 'utf8')).toContain('x-minipaas: managed');
    const { stat } = await import('node:fs/promises');
    expect((await stat(a!)).mode & 0o777).toBe(0o640);
  });

  it('a read-only file fails before anything is written: the other file is unchanged too', async () => {
    const [a, b] = await twoFiles();
    await chmod(b!, 0o444);
    const read = await readFilesForEdit([a!, b!]);
    const plan = planComposeEdits(read, managedObjectEdits('secret', 's', ['api', 'web'], read));
    const err = await writeFilesAtomically(plan.changes).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toBe(`${b} is read-only (mode 0444); nothing was written`);
    expect(await readFile(a!, 'utf8')).toBe('services:\n  api:\n    image: x\n');
    expect(await readFile(b!, 'utf8')).toBe('services:\n  web:\n    image: y\n');
  });

  it('a file changed on disk since it was read fails, and nothing is written', async () => {
    const [a, b] = await twoFiles();
    const read = await readFilesForEdit([a!, b!]);
    const plan = planComposeEdits(read, managedObjectEdits('secret', 's', ['api', 'web'], read));
    await writeFile(b!, 'services:\n  web:\n    image: z\n');
    const err = await writeFilesAtomically(plan.changes).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect((err as Error).message).toMatch(/changed on disk after it was read; nothing was written$/);
    expect(await readFile(a!, 'utf8')).toBe('services:\n  api:\n    image: x\n');
  });
});
