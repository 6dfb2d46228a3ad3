/** Summaries of repeated measurements: median and range across repetitions, percentiles within one. */

/** The p-th percentile (0-100) of `values`, linearly interpolated between closest ranks. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (rank - lo);
}

export const median = (values: readonly number[]): number => percentile(values, 50);

/** Median and range of one metric's samples, one sample per repetition. */
export interface Summary {
  median: number;
  min: number;
  max: number;
  samples: number[];
}

export function summarize(samples: readonly number[]): Summary {
  return {
    median: median(samples),
    min: Math.min(...samples),
    max: Math.max(...samples),
    samples: [...samples],
  };
}

/** p50, p95 and p99 of one run's latencies, in the unit given (milliseconds throughout the benchmark). */
export function latencyPercentiles(latencies: readonly number[]): { p50: number; p95: number; p99: number } {
  return { p50: percentile(latencies, 50), p95: percentile(latencies, 95), p99: percentile(latencies, 99) };
}
