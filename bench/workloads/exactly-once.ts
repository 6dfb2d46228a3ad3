/** Counts handler runs per job index and reports any job that ran zero or several times. */
export class RunLedger {
  private readonly runs: Uint16Array;
  handled = 0;
  /** Moment of the first run (`now()`), so throughput can exclude worker start-up. */
  firstAt = Number.NaN;

  constructor(readonly n: number) {
    this.runs = new Uint16Array(n);
  }

  record(i: number, at: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.n) throw new Error(`job index ${i} out of range 0..${this.n - 1}`);
    if (this.handled === 0) this.firstAt = at;
    this.runs[i]!++;
    this.handled++;
  }

  /** Throws naming the first offending jobs unless every job ran exactly once. */
  assertExactlyOnce(contender: string): void {
    const missing: number[] = [];
    const repeated: number[] = [];
    this.runs.forEach((count, i) => {
      if (count === 0) missing.push(i);
      else if (count > 1) repeated.push(i);
    });
    if (missing.length || repeated.length) {
      throw new Error(
        `${contender}: exactly-once violated: ${missing.length} jobs never ran (e.g. ${missing.slice(0, 5).join(', ')}), ` +
          `${repeated.length} ran more than once (e.g. ${repeated.slice(0, 5).join(', ')})`,
      );
    }
  }
}
