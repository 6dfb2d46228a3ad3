/**
 * Running `mp` in tests: commands in-process through `run(ctx, opts)` with captured output, and the real
 * binary (`node bin/mp.mjs`) for exit codes and stderr.
 */
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createContext, type Clock, type OwnedContext } from '../../cli/context.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** A context writing into strings. Close it (ends its pool) in the test or an afterAll. */
export interface CapturedContext extends OwnedContext {
  out(): string;
  err(): string;
}

/** A context on `databaseUrl` whose stdout/stderr are captured. */
export function captured(
  databaseUrl: string | undefined,
  opts: { json?: boolean; signal?: AbortSignal; clock?: Clock } = {},
): CapturedContext {
  let out = '';
  let err = '';
  const ctx = createContext({
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
    databaseUrl,
    ...opts,
  });
  return Object.assign(ctx, { out: () => out, err: () => err });
}

/** What a finished `mp` process left behind. */
export interface BinaryResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `node bin/mp.mjs ...args` with `DATABASE_URL` set to `databaseUrl` (unset when undefined, whatever
 * the test runner's own environment says).
 */
export async function mp(args: string[], databaseUrl?: string): Promise<BinaryResult> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.DATABASE_URL;
  if (databaseUrl) env.DATABASE_URL = databaseUrl;
  return await new Promise((resolve) => {
    execFile(
      process.execPath,
      [join(ROOT, 'bin', 'mp.mjs'), ...args],
      { env, cwd: ROOT, timeout: 30_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** Lines of `text` (without the trailing empty one). */
export function lines(text: string): string[] {
  return text.split('\n').filter((l, i, all) => l !== '' || i < all.length - 1);
}
