/**
 * What the agent fixtures that run as their own process share (test/agent/fixtures/agent-process.ts,
 * test/cron/fixtures/cron-agent.ts, test/resilience/fixtures/agent.ts): warnings and errors on stderr
 * for the test to read, `ready` on stdout once registered, and a clean stop on SIGTERM.
 *
 * @example
 *   const agent = await startAgent({ pool, docker, name, log: childLogger() });
 *   announceReady(agent, pool);
 */
import type { RunningAgent } from '../../agent/agent.ts';
import type { Logger } from '../../agent/executors/types.ts';

/** Warnings and errors to stderr as `warn: message {data}`; info to stdout only when asked. */
export function childLogger(opts: { info?: boolean } = {}): Logger {
  const line = (level: string, message: string, data?: unknown): string => `${level}: ${message} ${JSON.stringify(data ?? {})}\n`;
  return {
    debug() {},
    info: opts.info ? (message) => void process.stdout.write(`info: ${message}\n`) : () => {},
    warn: (message, data) => void process.stderr.write(line('warn', message, data)),
    error: (message, data) => void process.stderr.write(line('error', message, data)),
  };
}

/** Prints `ready` (what the spawning test waits for) and stops the agent, then its pool, on SIGTERM. */
export function announceReady(agent: RunningAgent, pool: { end(): Promise<void> }): void {
  process.stdout.write('ready\n');
  process.once('SIGTERM', () => {
    void agent
      .stop()
      .then(() => pool.end())
      .then(() => process.exit(0));
  });
}
