/**
 * Wake-ups for benchmark loops that sleep on LISTEN: every NOTIFY (or `wakeAll`) bumps a generation
 * and releases the sleepers. A loop notes the generation before it claims and sleeps only if it has not
 * changed, so a wake-up that arrives mid-claim is never slept through.
 */
export class Wakeups {
  private generation = 0;
  private sleepers: Array<() => void> = [];

  /** The current generation; pass it to `sleep` after the claim. */
  get seen(): number {
    return this.generation;
  }

  /** Releases every sleeper (a NOTIFY arrived, or the loops are stopping). */
  wakeAll = (): void => {
    this.generation++;
    const sleepers = this.sleepers;
    this.sleepers = [];
    sleepers.forEach((wake) => wake());
  };

  /** Sleeps up to `ms`, unless a wake-up came since generation `seen`. */
  async sleep(seen: number, ms: number): Promise<void> {
    if (seen !== this.generation) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.sleepers.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
