/**
 * The package as a user gets it: `npm pack`, the tarball installed into a new app folder, then against
 * the test PostgreSQL: `mp migrate` from the installed binary, an ESM app and a CommonJS app that
 * enqueue and work a job and publish and read an event, and a TypeScript app type-checked against the
 * shipped `.d.ts` files. A file missing from the package fails here, not in a user's first `mp migrate`.
 *
 * Slow by nature (the pack runs the build; the install copies the dependencies from npm's cache, and
 * fetches what the cache lacks), so it runs once per test run, in one file.
 */
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEmptyDatabase } from '../support/database.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const APP_SOURCES = join(dirname(fileURLToPath(import.meta.url)), 'app');
const run = promisify(execFile);
/** What `npm pack` reads from a checkout: the build's inputs and the package's files. */
const PACKAGE_INPUTS = ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'README.md', 'scripts', 'bin', 'docs', 'sql', 'stack', 'agent', 'cli', 'dev'];

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end; a non-zero exit is returned, not thrown. */
async function sh(file: string, args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv; timeout?: number }): Promise<Ran> {
  try {
    const { stdout, stderr } = await run(file, args, { cwd: opts.cwd, env: opts.env ?? process.env, timeout: opts.timeout ?? 120_000, maxBuffer: 64 << 20 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? String(err) };
  }
}

function expectOk(r: Ran, what: string): void {
  if (r.code !== 0) throw new Error(`${what} exited ${r.code}\n${r.stderr}\n${r.stdout}`);
}

describe('the npm package', () => {
  const work = mkdtempSync(join(tmpdir(), 'mp-pack-'));
  const app = join(work, 'app');
  let packed: { filename: string; files: { path: string }[] };
  let database: Awaited<ReturnType<typeof createEmptyDatabase>>;
  let appEnv: NodeJS.ProcessEnv;

  beforeAll(async () => {
    database = await createEmptyDatabase('pack');
    // Packed from a copy of the checkout: the pack's build must not replace this checkout's dist/ while
    // other test files run its binary.
    const source = join(work, 'source');
    for (const entry of PACKAGE_INPUTS) cpSync(join(ROOT, entry), join(source, entry), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules'), join(source, 'node_modules'));
    const pack = await sh('npm', ['pack', '--json', '--pack-destination', work], { cwd: source, timeout: 180_000 });
    expectOk(pack, 'npm pack');
    packed = (JSON.parse(pack.stdout.slice(pack.stdout.indexOf('['))) as (typeof packed)[])[0]!;

    cpSync(APP_SOURCES, app, { recursive: true });
    const install = await sh(
      'npm',
      ['install', '--prefer-offline', '--no-audit', '--no-fund', join(work, packed.filename), 'pg', 'zod', '@types/pg', '@types/node@20'],
      { cwd: app, timeout: 240_000 },
    );
    expectOk(install, 'npm install of the tarball');
    appEnv = { ...process.env, DATABASE_URL: database.url, MP_FROM_SOURCE: undefined };
  }, 420_000);

  afterAll(async () => {
    rmSync(work, { recursive: true, force: true });
    await database?.drop();
  });

  it('ships the built JavaScript, its types, the SQL migrations and the binary, and no TypeScript source', () => {
    const files = packed.files.map((f) => f.path);
    expect(files).toContain('bin/mp.mjs');
    expect(files).toContain('dist/sql/queues/queue.js');
    expect(files).toContain('dist/sql/queues/queue.d.ts');
    expect(files).toContain('dist/cli/main.js');
    const sqlInRepo = ['queues', 'streams', 'compat', 'control'].flatMap((set) =>
      readdirSync(join(ROOT, 'sql', set))
        .filter((n) => n.endsWith('.sql'))
        .map((n) => `dist/sql/${set}/${n}`),
    );
    for (const sql of sqlInRepo) expect(files).toContain(sql);
    expect(files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);
  });

  it('migrates an empty database with the installed mp, which needs no TypeScript loader', async () => {
    const mp = join(app, 'node_modules', '.bin', 'mp');
    expect(existsSync(join(app, 'node_modules', 'tsx'))).toBe(false);
    const version = await sh(mp, ['--version'], { cwd: app, env: appEnv });
    expectOk(version, 'mp --version');
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
    const migrate = await sh(mp, ['migrate'], { cwd: app, env: appEnv });
    expectOk(migrate, 'mp migrate');
    expect(migrate.stdout).toMatch(/applied queues\/0001_queues\.sql/);
    expect(migrate.stdout).toMatch(/applied control\/0001_control\.sql/);
  });

  it('runs the README example in a plain ESM app: a job worked, an event read', async () => {
    const r = await sh(process.execPath, ['app.mjs'], { cwd: app, env: appEnv, timeout: 30_000 });
    expectOk(r, 'node app.mjs');
    expect(JSON.parse(r.stdout)).toEqual({ handled: 'a@example.com', events: [{ id: 7, total: 12.5 }] });
  });

  it('runs in a CommonJS app through require', async () => {
    const r = await sh(process.execPath, ['app.cjs'], { cwd: app, env: appEnv, timeout: 30_000 });
    expectOk(r, 'node app.cjs');
    expect(JSON.parse(r.stdout)).toEqual({ handled: 'b@example.com', events: [{ id: 8 }] });
  });

  it('type-checks a TypeScript app against the shipped types', async () => {
    const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const r = await sh(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: app });
    expectOk(r, 'tsc --noEmit');
  });

  it('refuses a path the package does not export, naming the export map', async () => {
    const r = await sh(process.execPath, ['--input-type=module', '-e', "await import('minipaas/sql/queues/queue.js')"], { cwd: app });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/ERR_PACKAGE_PATH_NOT_EXPORTED/);
  });
});
