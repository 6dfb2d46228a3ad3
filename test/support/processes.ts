/**
 * Real child Node processes for tests that kill, restart or wait for them: a TypeScript script run with
 * `node --import tsx` from the sources (no build), its output kept for assertions and failure messages.
 *
 * @example
 *   const w = spawnScript('worker-1', 'test/resilience/fixtures/queue-worker.ts', { DATABASE_URL: url });
 *   await w.waitForOutput('ready');
 *   expect(await w.terminate()).toEqual({ code: 0, signal: null });
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from './wait.ts';

/** The repository root: scripts are given relative to it. */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** How a process ended. */
export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A running (or ended) child process. */
export interface ScriptProcess {
  readonly name: string;
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Its exit, once it has exited. */
  exit(): Exit | undefined;
  /** Waits until stdout contains `text`; fails at once, with its stderr, if the process exits first. */
  waitForOutput(text: string, timeoutMs?: number): Promise<void>;
  /** SIGKILL, and waits for the exit. */
  kill(): Promise<Exit>;
  /** SIGTERM, and waits up to `timeoutMs` for the exit (then SIGKILLs it and fails). */
  terminate(timeoutMs?: number): Promise<Exit>;
}

/** Starts `script` (relative to the repository root) with `env` added to this process's environment. */
export function spawnScript(name: string, script: string, env: Record<string, string>): ScriptProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, script)], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  let exit: Exit | undefined;
  const exited = new Promise<Exit>((resolve) =>
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      resolve(exit);
    }),
  );
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  return {
    name,
    child,
    stdout: () => out,
    stderr: () => err,
    exit: () => exit,
    async waitForOutput(text, timeoutMs = 20_000) {
      await waitFor(
        `${name} to print ${JSON.stringify(text)}`,
        () => {
          if (exit) throw new Error(`${name} exited (${JSON.stringify(exit)}) before printing ${JSON.stringify(text)}: ${err}`);
          return out.includes(text);
        },
        { timeoutMs, intervalMs: 25 },
      );
    },
    async kill() {
      if (!exit) child.kill('SIGKILL');
      return await exited;
    },
    async terminate(timeoutMs = 20_000) {
      if (exit) return exit;
      child.kill('SIGTERM');
      const timer = new Promise<undefined>((resolve) => void setTimeout(() => resolve(undefined), timeoutMs).unref());
      const result = await Promise.race([exited, timer]);
      if (result) return result;
      child.kill('SIGKILL');
      await exited;
      throw new Error(`${name} did not exit within ${timeoutMs} ms of SIGTERM; stderr: ${err}`);
    },
  };
}
