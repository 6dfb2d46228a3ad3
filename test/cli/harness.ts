/**
 * Running `mp` in tests: commands in-process through `run(ctx, opts)` with captured output, and the real
 * binary (`node bin/mp.mjs`) for exit codes and stderr.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
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

/** A running `mp` process: its output so far, and its exit. */
export interface RunningMp {
  child: ChildProcess;
  out(): string;
  err(): string;
  /** Exit code (or the signal's name when killed by one). */
  exited: Promise<number | string>;
}

/**
 * Starts `node bin/mp.mjs ...args` without waiting for it (`mp agent`, `mp dev`, a tail to interrupt).
 * `env` replaces DATABASE_URL handling: pass it explicitly (undefined values are removed).
 */
export function spawnMp(args: string[], opts: { env?: Record<string, string | undefined>; cwd?: string } = {}): RunningMp {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.DATABASE_URL;
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'mp.mjs'), ...args], {
    env,
    cwd: opts.cwd ?? ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  return { child, out: () => out, err: () => err, exited };
}
