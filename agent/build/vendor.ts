/**
 * Puts the `minipaas` package (its `minipaas/queue`, `minipaas/stream`, `minipaas/migrate` and
 * `minipaas/errors` entry points) and `pg` into a build context, as `vendor/node_modules/`, so an app
 * image gets them with one `COPY` and no registry: the package is not published yet, and a build must
 * not depend on the network. The example app's Dockerfile copies that folder to `node_modules/`.
 *
 * Where it takes the package from: in a source checkout (this repository) it transpiles the current
 * `sql/` sources, so an example built here runs the code as it is now, whatever state `dist/` is in
 * (and without rebuilding `dist/` under processes that run it); in an installed package it copies
 * `dist/sql/`. `pg` and its dependencies are copied from the `node_modules` the package resolves
 * them from, as Node would find them.
 *
 * Usage from a shell (a checkout): `npx tsx agent/build/vendor.ts examples/hello/app`.
 */
import { existsSync } from 'node:fs';
import { cp, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../../sql/errors.ts';

/** The folder, inside a context, that `vendorMinipaas` fills. */
export const VENDOR_DIR = 'vendor/node_modules';

/** The `exports` entries of this package that an app may import; all of them live under `sql/`. */
const APP_EXPORTS = ['./queue', './stream', './migrate', './errors', './package.json'];

/** What `vendorMinipaas` put in place. */
export interface VendorResult {
  /** `vendor/node_modules` of the context, absolute. */
  dir: string;
  /** `name@version` of every package copied, `minipaas` first. */
  packages: string[];
  /** Where minipaas came from: transpiled sources, or the built `dist/`. */
  from: 'sources' | 'dist';
}

interface PackageJson {
  name: string;
  version: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  exports?: Record<string, unknown>;
}

async function readPackage(dir: string): Promise<PackageJson> {
  return JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as PackageJson;
}

/** The root of this package: the nearest folder upwards holding a package.json named minipaas. */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const file = join(dir, 'package.json');
    if (existsSync(file) && (createRequire(import.meta.url)(file) as PackageJson).name === 'minipaas') return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`no minipaas package.json above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

/** Node's lookup of a package from `from`: the first `node_modules/<name>` upwards. */
function findPackage(name: string, from: string): string | undefined {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', ...name.split('/'));
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    if (dirname(dir) === dir) return undefined;
  }
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await filesUnder(path)));
    else out.push(path);
  }
  return out;
}

/**
 * `sql/**` of a checkout as JavaScript under `out`: each `.ts` transpiled on its own (no type check;
 * the sources are checked by `tsc` in CI), relative `.ts` imports rewritten to `.js`; the `.sql`
 * migrations and other files copied beside them, where the migrator looks for them.
 */
async function transpileSql(root: string, out: string): Promise<void> {
  // typescript is a devDependency: loaded only here, in a checkout, where it is installed.
  const ts = createRequire(import.meta.url)('typescript') as typeof import('typescript');
  for (const file of await filesUnder(join(root, 'sql'))) {
    const rel = relative(root, file);
    if (rel.split(sep).includes('node_modules') || /\.(test|d)\.ts$/.test(rel) || rel.endsWith('.md')) continue;
    const target = join(out, rel);
    await mkdir(dirname(target), { recursive: true });
    if (!rel.endsWith('.ts')) {
      await cp(file, target);
      continue;
    }
    const { outputText } = ts.transpileModule(await readFile(file, 'utf8'), {
      fileName: file,
      compilerOptions: {
        module: ts.ModuleKind.ESNext,
        target: ts.ScriptTarget.ES2022,
        verbatimModuleSyntax: true,
        rewriteRelativeImportExtensions: true,
      },
    });
    await writeFile(target.replace(/\.ts$/, '.js'), outputText);
  }
}

/**
 * Copies `name` and what it depends on (dependencies, and optional ones that are installed) into
 * `dest`, flat, as npm would hoist them. A dependency found inside the package's own `node_modules`
 * travels with it. Returns `name@version` of each package copied.
 */
async function copyClosure(name: string, from: string, dest: string, copied: Map<string, string>): Promise<string[]> {
  const source = findPackage(name, from);
  if (!source) {
    throw new ConfigError('VENDOR_MISSING_PACKAGE', `package '${name}' is not installed where minipaas can find it (from ${from})`, 'run npm install in the minipaas package first');
  }
  const seen = copied.get(name);
  if (seen !== undefined) {
    if (seen !== source) {
      throw new ConfigError(
        'VENDOR_CONFLICT',
        `two versions of '${name}' are needed (${seen} and ${source}); the vendor folder holds one`,
        'dedupe the installation (npm dedupe), then vendor again',
      );
    }
    return [];
  }
  copied.set(name, source);
  const pkg = await readPackage(source);
  await cp(source, join(dest, ...name.split('/')), { recursive: true, dereference: true });
  const names = [`${pkg.name}@${pkg.version}`];
  const optional = Object.keys(pkg.optionalDependencies ?? {}).filter((dep) => findPackage(dep, source));
  for (const dep of [...Object.keys(pkg.dependencies ?? {}), ...optional]) {
    const at = findPackage(dep, source);
    // Nested under the package itself: already copied with it.
    if (at && !relative(source, at).startsWith('..')) continue;
    names.push(...(await copyClosure(dep, source, dest, copied)));
  }
  return names;
}

/**
 * Fills `<context>/vendor/node_modules` with `minipaas` (its app entry points) and `pg`, replacing
 * what an earlier call put there. Fast (about a second: transpiling is per file, copying is small)
 * and needs no network.
 *
 * @example
 *   await vendorMinipaas('examples/hello/app');   // then build the image: its Dockerfile COPYs vendor/node_modules
 */
export async function vendorMinipaas(context: string): Promise<VendorResult> {
  const root = packageRoot();
  const dir = resolve(context, VENDOR_DIR);
  if (!(await stat(context).catch(() => undefined))?.isDirectory()) {
    throw new ConfigError('VENDOR_NO_CONTEXT', `the build context ${resolve(context)} is not a directory`, 'pass the folder that holds the Dockerfile');
  }
  await rm(dir, { recursive: true, force: true });
  const self = join(dir, 'minipaas');
  await mkdir(self, { recursive: true });

  const own = await readPackage(root);
  const fromSources = existsSync(join(root, 'sql', 'queues', 'queue.ts'));
  if (fromSources) await transpileSql(root, join(self, 'dist'));
  else await cp(join(root, 'dist', 'sql'), join(self, 'dist', 'sql'), { recursive: true });

  // The package's own description, reduced to the entry points an app imports (all under dist/sql)
  // and the one runtime dependency they have.
  // No `types` conditions: the .d.ts files are not vendored, an image only runs the JavaScript.
  const exportsOf = Object.fromEntries(
    Object.entries(own.exports ?? {})
      .filter(([key]) => APP_EXPORTS.includes(key))
      .map(([key, target]) => [key, typeof target === 'object' && target !== null && 'default' in target ? (target as { default: unknown }).default : target]),
  );
  const manifest = {
    name: own.name,
    version: own.version,
    type: 'module',
    description: 'minipaas, vendored for a container image (queue, stream, migrate, errors)',
    exports: exportsOf,
    dependencies: { pg: own.dependencies?.pg ?? '*' },
  };
  await writeFile(join(self, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);

  const copied = new Map<string, string>();
  const packages = [`${own.name}@${own.version}`, ...(await copyClosure('pg', root, dir, copied))];
  return { dir, packages, from: fromSources ? 'sources' : 'dist' };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const context = process.argv[2];
  if (!context) {
    console.error('usage: npx tsx agent/build/vendor.ts CONTEXT_DIR');
    process.exitCode = 2;
  } else {
    const result = await vendorMinipaas(context);
    console.log(`vendored ${result.packages.join(', ')} (minipaas from ${result.from}) into ${result.dir}`);
  }
}
