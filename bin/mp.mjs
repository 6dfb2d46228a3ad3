#!/usr/bin/env node
// The `mp` binary. It runs the built JavaScript in dist/ (what an installed package has). In a source
// checkout, where the TypeScript sources sit beside it, it runs the sources through tsx instead when
// MP_FROM_SOURCE=1 or when dist/ is missing or older than a source file, so a stale build never runs
// silently. Checking costs a few milliseconds of stat calls; the CLI's start-up budget is 150 ms.
import { existsSync, readdirSync, statSync } from 'node:fs';

const root = new URL('../', import.meta.url);
const built = new URL('dist/.built', root);
const sources = new URL('cli/main.ts', root);

/** The newest modification time under a folder, in ms (0 when it does not exist). */
function newest(dir) {
  let max = 0;
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const entry of entries) {
    if (entry.name === 'node_modules') continue;
    const path = new URL(entry.name + (entry.isDirectory() ? '/' : ''), dir);
    max = Math.max(max, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs);
  }
  return max;
}

function useSources() {
  if (!existsSync(sources)) return false;
  if (process.env.MP_FROM_SOURCE === '1' || !existsSync(built)) return true;
  const stamp = statSync(built).mtimeMs;
  return ['sql/', 'stack/', 'agent/', 'cli/', 'dev/'].some((dir) => newest(new URL(dir, root)) > stamp);
}

let main;
if (useSources()) {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import('../cli/main.ts'));
} else {
  ({ main } = await import('../dist/cli/main.js'));
}
process.exitCode = await main(process.argv);
