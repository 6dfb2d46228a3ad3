#!/usr/bin/env node
// Builds the package: TypeScript sources to dist/ (JavaScript, .d.ts, source maps) with tsc, then the
// files the code reads at run time (the SQL migrations, vendored JSON schemas, their licences) copied
// beside the JavaScript that reads them, so `import.meta.url` finds them in dist/ as in the sources.
// Run by `npm run build` and by `prepare` (npm install of a clone, npm pack). Ends with dist/.built,
// the stamp bin/mp.mjs compares with the sources to notice a stale build.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist');
/** The folders the build compiles (tsconfig.build.json says the same). */
export const SOURCE_DIRS = ['sql', 'stack', 'agent', 'cli', 'dev'];

rmSync(out, { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const result = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
if (result.status !== 0) {
  console.error('error: tsc failed; the package was not built');
  process.exit(result.status ?? 1);
}
// Everything that is not TypeScript or documentation travels with the code.
const asset = (path) => !/\.(ts|md)$/.test(path) || path.endsWith('.d.ts');
for (const dir of SOURCE_DIRS) {
  cpSync(join(root, dir), join(out, dir), {
    recursive: true,
    filter: (src) => !src.includes('node_modules') && (!/\.[a-z]+$/i.test(src) || asset(src)),
  });
}
// The Compose schema compiled ahead of time: ajv takes 0.3 s or more per `mp deploy` to compile it.
const { standaloneComposeValidator, STANDALONE_FILE } = await import(join(out, 'stack', 'schema', 'compile.js'));
writeFileSync(join(out, 'stack', 'schema', STANDALONE_FILE), standaloneComposeValidator());
mkdirSync(out, { recursive: true });
writeFileSync(join(out, '.built'), `${new Date().toISOString()}\n`);
