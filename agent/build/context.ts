/**
 * The build context: the files of a directory, less what its `.dockerignore` excludes, as the tar the
 * engine's `POST /build` reads. What `docker build DIR` sends, so an image built by MiniPaaS and one
 * built by the docker CLI from the same folder see the same files.
 *
 * Terminology: the *context* is the directory a build may `COPY` from; an *entry* is one file,
 * directory or symbolic link of it, named by its path relative to the context with `/` separators.
 */
import { createReadStream, type Stats } from 'node:fs';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join, posix, resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import type { Ignore } from '@balena/dockerignore';
import { ConfigError } from '../../sql/errors.ts';

/** One entry of a context, in the order the tar carries it (sorted by path, parents first). */
export interface ContextEntry {
  /** Relative to the context, `/`-separated, no leading `./`. */
  path: string;
  type: 'file' | 'directory' | 'symlink';
  /** Bytes, for files. */
  size: number;
  /** Permission bits, as on disk. */
  mode: number;
  mtime: Date;
  /** Where a symbolic link points (sent as a link, not followed, as the docker CLI does). */
  linkTarget?: string;
}

/** Options of `listContext` and `buildContext`. */
export interface ContextOptions {
  /**
   * The Dockerfile, relative to the context (default `Dockerfile`). It and `.dockerignore` are sent
   * even when `.dockerignore` excludes them: the engine needs the one, and the docker CLI sends both.
   */
  dockerfile?: string;
}

// Transitive dependencies of dockerode (docker-modem reads .dockerignore with the first, tar-fs
// writes with the second), loaded with require: both are CommonJS, and tar-stream ships no types.
const require = createRequire(import.meta.url);

/** The part of tar-stream 2.x's pack API this module uses. */
interface TarPack extends NodeJS.ReadableStream {
  entry(
    header: { name: string; type: 'file' | 'directory' | 'symlink'; size?: number; mode: number; mtime: Date; uid: number; gid: number; linkname?: string },
    callback?: (err?: Error | null) => void,
  ): NodeJS.WritableStream;
  finalize(): void;
  destroy(err?: Error): void;
}

function dockerignore(): Ignore {
  const create = require('@balena/dockerignore') as (options?: { ignorecase?: boolean }) => Ignore;
  // Docker matches patterns case-sensitively on Linux.
  return create({ ignorecase: false });
}

/**
 * The patterns of `DIR/.dockerignore`, comments and blank lines dropped (none when there is no file).
 * Docker cleans each pattern as a path: a leading `/` or `./` and a trailing `/` mean nothing.
 */
export async function readDockerignore(dir: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(join(dir, '.dockerignore'), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const negated = line.startsWith('!');
      const cleaned = posix.normalize(line.slice(negated ? 1 : 0).trim()).replace(/^(\.\/|\/)+/, '').replace(/\/+$/, '');
      return (negated ? '!' : '') + cleaned;
    })
    .filter((line) => line !== '' && line !== '!' && line !== '.');
}

function toEntry(path: string, st: Stats): ContextEntry {
  const type = st.isDirectory() ? 'directory' : st.isSymbolicLink() ? 'symlink' : 'file';
  return { path, type, size: type === 'file' ? st.size : 0, mode: st.mode & 0o7777, mtime: st.mtime };
}

/**
 * The entries `docker build DIR` would send: every file, directory and symbolic link under `dir`
 * that `.dockerignore` does not exclude, sorted. Throws `ConfigError` when the directory or the
 * Dockerfile is missing, naming it.
 *
 * An excluded directory is not walked unless an exception pattern (`!...`) could bring something
 * under it back: a context that ignores `node_modules` costs nothing for its size.
 *
 * @example
 *   const entries = await listContext('examples/hello/app');
 *   entries.map((e) => e.path) // ['.dockerignore', 'Dockerfile', 'package.json', 'src', 'src/server.mjs', ...]
 */
export async function listContext(dir: string, opts: ContextOptions = {}): Promise<ContextEntry[]> {
  const root = resolve(dir);
  const rootStat = await lstat(root).catch(() => undefined);
  if (!rootStat?.isDirectory()) {
    throw new ConfigError('BUILD_CONTEXT_MISSING', `the build context ${root} is not a directory`, 'check `build.context` in the Compose file (relative to the project directory)');
  }
  const dockerfile = posix.normalize((opts.dockerfile ?? 'Dockerfile').split(sep).join('/'));
  if (dockerfile.startsWith('../') || posix.isAbsolute(dockerfile)) {
    throw new ConfigError('BUILD_DOCKERFILE_OUTSIDE', `the Dockerfile '${dockerfile}' is outside the build context ${root}`, 'name a Dockerfile inside the context');
  }
  const dockerfileStat = await lstat(join(root, dockerfile)).catch(() => undefined);
  if (!dockerfileStat?.isFile()) {
    throw new ConfigError(
      'BUILD_DOCKERFILE_MISSING',
      `no Dockerfile '${dockerfile}' in the build context ${root}`,
      'add it, or set `build.dockerfile` to its path relative to the context',
    );
  }

  const patterns = await readDockerignore(root);
  const ignore = dockerignore().add(patterns);
  const hasExceptions = patterns.some((p) => p.startsWith('!'));
  const always = new Set([dockerfile, '.dockerignore']);
  const kept: ContextEntry[] = [];

  const walk = async (rel: string): Promise<void> => {
    const names = (await readdir(join(root, rel))).sort();
    for (const name of names) {
      const path = rel ? `${rel}/${name}` : name;
      const st = await lstat(join(root, path));
      const excluded = ignore.ignores(path) && !always.has(path);
      if (!excluded) kept.push(toEntry(path, st));
      if (st.isDirectory() && (!excluded || hasExceptions)) await walk(path);
    }
  };
  await walk('');

  for (const entry of kept) {
    if (entry.type === 'symlink') entry.linkTarget = await readlink(join(root, entry.path));
  }
  return kept;
}

/**
 * Streams `entries` of the context `dir` as an uncompressed tar, files read one at a time (a context
 * of any size costs one file's buffer). Owners are root, as the docker CLI sends them, so `COPY`
 * gives root-owned files whoever ran the build. An error reading a file ends the stream with it.
 */
export function packContext(dir: string, entries: readonly ContextEntry[]): Readable {
  const tar = require('tar-stream') as { pack(): TarPack };
  const pack = tar.pack();
  const root = resolve(dir);
  const add = async (): Promise<void> => {
    for (const entry of entries) {
      const header = { name: entry.path, type: entry.type, mode: entry.mode, mtime: entry.mtime, uid: 0, gid: 0 };
      if (entry.type === 'directory') {
        await new Promise<void>((ok, fail) => pack.entry(header, (err) => (err ? fail(err) : ok())));
      } else if (entry.type === 'symlink') {
        await new Promise<void>((ok, fail) => pack.entry({ ...header, linkname: entry.linkTarget ?? '' }, (err) => (err ? fail(err) : ok())));
      } else {
        await new Promise<void>((ok, fail) => {
          const sink = pack.entry({ ...header, size: entry.size }, (err) => (err ? fail(err) : ok()));
          const source = createReadStream(join(root, entry.path));
          source.on('error', fail);
          source.pipe(sink);
        });
      }
    }
    pack.finalize();
  };
  add().catch((err: unknown) => pack.destroy(err instanceof Error ? err : new Error(String(err))));
  // tar-stream 2 is a streams2 Readable of its own readable-stream copy; wrap() gives a core stream.
  return new Readable().wrap(pack);
}

/**
 * The context of a build as a tar stream, with its entries (for logs and tests): `listContext` then
 * `packContext`.
 *
 * @example
 *   const { tar, entries } = await buildContext('examples/hello/app', { dockerfile: 'Dockerfile' });
 *   await docker.buildImage(tar, { tags: ['hello-api:1'] }, onMessage);
 */
export async function buildContext(dir: string, opts: ContextOptions = {}): Promise<{ tar: Readable; entries: ContextEntry[] }> {
  const entries = await listContext(dir, opts);
  return { tar: packContext(dir, entries), entries };
}

