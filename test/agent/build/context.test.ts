import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { listContext, packContext, readDockerignore } from '../../../agent/build/context.ts';
import { ConfigError } from '../../../sql/errors.ts';

const work = mkdtempSync(join(tmpdir(), 'mp-context-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A context folder from a map of path to content (`null`: a directory). */
function folder(name: string, files: Record<string, string | null>): string {
  const root = join(work, name);
  for (const [path, content] of Object.entries(files)) {
    const full = join(root, path);
    if (content === null) {
      mkdirSync(full, { recursive: true });
    } else {
      mkdirSync(dirname(full), { recursive: true });
      writeFileSync(full, content);
    }
  }
  return root;
}

/** The tar's entries, as tar-stream reads them back: name, type, and content of files. */
async function untar(stream: NodeJS.ReadableStream): Promise<Record<string, string>> {
  interface Header {
    name: string;
    type: string;
    linkname?: string;
    uid: number;
  }
  interface Extract extends NodeJS.WritableStream {
    on(event: 'entry', fn: (h: Header, s: NodeJS.ReadableStream, next: () => void) => void): this;
    on(event: 'finish' | 'error', fn: (err?: Error) => void): this;
  }
  const tar = createRequire(import.meta.url)('tar-stream') as { extract(): Extract };
  const extract = tar.extract();
  const out: Record<string, string> = {};
  return await new Promise((resolve, reject) => {
    extract.on('entry', (header, body, next) => {
      let text = '';
      body.on('data', (c: Buffer) => (text += c.toString()));
      body.on('end', () => {
        out[header.name] = header.type === 'file' ? text : header.type === 'symlink' ? `-> ${header.linkname}` : `<${header.type} uid ${header.uid}>`;
        next();
      });
      body.resume();
    });
    extract.on('finish', () => resolve(out));
    extract.on('error', reject);
    stream.pipe(extract);
  });
}

describe('the build context', () => {
  const root = folder('app', {
    Dockerfile: 'FROM scratch\n',
    '.dockerignore': [
      '# comments and blank lines are not patterns',
      '',
      'node_modules',
      '/*.log',
      '!keep.log',
      './secret/',
      '**/*.tmp',
      'docs',
      '!docs/README.md',
      'Dockerfile',
      '.dockerignore',
    ].join('\n'),
    'package.json': '{}',
    'src/server.mjs': 'export {}',
    'src/nested/deep.tmp': 'x',
    'src/old.log': 'nested logs are not matched by /*.log',
    'app.log': 'x',
    'keep.log': 'kept by the exception',
    'secret/key': 'x',
    'docs/guide.md': 'x',
    'docs/README.md': 'brought back',
    'node_modules/pg/index.js': 'x',
    'vendor/node_modules/pg/index.js': 'only the top-level node_modules is excluded',
    empty: null,
  });
  symlinkSync('src/server.mjs', join(root, 'link.mjs'));

  it('lists what .dockerignore keeps, sorted, parents before children', async () => {
    const entries = await listContext(root);
    expect(entries.map((e) => e.path)).toEqual([
      '.dockerignore',
      'Dockerfile',
      'docs/README.md',
      'empty',
      'keep.log',
      'link.mjs',
      'package.json',
      'src',
      'src/nested',
      'src/old.log',
      'src/server.mjs',
      'vendor',
      'vendor/node_modules',
      'vendor/node_modules/pg',
      'vendor/node_modules/pg/index.js',
    ]);
    expect(entries.find((e) => e.path === 'link.mjs')).toMatchObject({ type: 'symlink', linkTarget: 'src/server.mjs' });
    expect(entries.find((e) => e.path === 'package.json')).toMatchObject({ type: 'file', size: 2 });
  });

  it('reads .dockerignore as Docker cleans it', async () => {
    expect(await readDockerignore(root)).toEqual(['node_modules', '*.log', '!keep.log', 'secret', '**/*.tmp', 'docs', '!docs/README.md', 'Dockerfile', '.dockerignore']);
    expect(await readDockerignore(folder('no-ignore', { Dockerfile: 'FROM scratch' }))).toEqual([]);
  });

  it('excludes a folder and everything under it', async () => {
    const big = folder('big', { Dockerfile: 'FROM scratch', '.dockerignore': 'node_modules\n', 'node_modules/a/b.js': 'x', 'node_modules/c/d/e.js': 'x' });
    expect((await listContext(big)).map((e) => e.path)).toEqual(['.dockerignore', 'Dockerfile']);
  });

  it('packs the entries as a tar with root as owner', async () => {
    const entries = await listContext(root);
    const files = await untar(packContext(root, entries));
    expect(Object.keys(files)).toEqual(entries.map((e) => e.path));
    expect(files['docs/README.md']).toBe('brought back');
    expect(files['link.mjs']).toBe('-> src/server.mjs');
    expect(files.src).toBe('<directory uid 0>');
  });

  it('names a missing Dockerfile or context', async () => {
    await expect(listContext(root, { dockerfile: 'Dockerfile.prod' })).rejects.toThrow(ConfigError);
    await expect(listContext(root, { dockerfile: 'Dockerfile.prod' })).rejects.toThrow(`no Dockerfile 'Dockerfile.prod' in the build context ${root}`);
    await expect(listContext(join(work, 'nowhere'))).rejects.toMatchObject({ code: 'BUILD_CONTEXT_MISSING' });
    await expect(listContext(root, { dockerfile: '../Dockerfile' })).rejects.toMatchObject({ code: 'BUILD_DOCKERFILE_OUTSIDE' });
  });
});
