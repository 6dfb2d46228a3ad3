/** Waiting for a condition with a deadline: tests never sleep blindly. */

/**
 * Polls `check` until it returns a truthy value and returns it; throws naming `what` after `timeoutMs`.
 *
 * @example
 *   const row = await waitFor('job 7 acked', async () => (await count()) === 0, { timeoutMs: 5000 });
 */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T> | T,
  opts: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  for (;;) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 20));
  }
}
