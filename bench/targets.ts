/** Issue 3's targets, checked against one run's medians (ratios within the same run). */
import type { ResultRow } from './runner.ts';

export interface TargetCheck {
  target: string;
  measured: string;
  met: boolean;
}

/** The MiniPaaS variant the targets are judged on: the client when it ran, else the raw SQL loop. */
const MINIPAAS = ['minipaas', 'minipaas-sql'];

function median(rows: ResultRow[], workload: string, subject: string, metric: string): number | undefined {
  return rows.find((r) => r.workload === workload && r.subject === subject)?.metrics[metric]?.median;
}

/** Every target whose inputs are in `rows`; missing inputs mean the target is left out, not failed. */
export function evaluateTargets(rows: ResultRow[]): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const mp = MINIPAAS.find((name) => rows.some((r) => r.subject === name && r.workload === 'drain'));
  const x = (v: number): string => `${v.toFixed(2)}x`;
  const ratioTarget = (target: string, workload: string, metric: string, ref: string, min: number): void => {
    if (!mp) return;
    const a = median(rows, workload, mp, metric);
    const b = median(rows, workload, ref, metric);
    if (a === undefined || b === undefined) return;
    checks.push({ target: `${target} (${mp})`, measured: x(a / b), met: a / b >= min });
  };
  ratioTarget('drain >= 2x graphile-worker', 'drain', 'jobsPerSec', 'graphile-worker', 2);
  ratioTarget('drain >= original', 'drain', 'jobsPerSec', 'original', 1);
  ratioTarget('single enqueue >= 2x graphile-worker', 'single-enqueue', 'jobsPerSec', 'graphile-worker', 2);
  for (const p of ['p50', 'p99']) {
    if (!mp) break;
    const a = median(rows, 'latency', mp, p);
    const b = median(rows, 'latency', 'graphile-worker', p);
    if (a !== undefined && b !== undefined) {
      checks.push({ target: `latency ${p} <= graphile-worker (${mp})`, measured: `${a.toFixed(2)} vs ${b.toFixed(2)} ms`, met: a <= b });
    }
  }
  const claimSubject = MINIPAAS.find((name) => median(rows, 'claim-big', name, 'p50') !== undefined);
  if (claimSubject) {
    const big = median(rows, 'claim-big', claimSubject, 'p50')!;
    const small = median(rows, 'claim-small', claimSubject, 'p50');
    if (small !== undefined) {
      checks.push({ target: 'claim p50, big backlog <= 1.5x small', measured: x(big / small), met: big / small <= 1.5 });
    }
  }
  const bloatSubject = MINIPAAS.find((name) => median(rows, 'bloat', name, 'vacuumedVsEmpty') !== undefined);
  if (bloatSubject) {
    // Plain VACUUM never shrinks a B-tree; `mp queue compact` (the agents run it every 10 minutes) does.
    const compacted = median(rows, 'bloat', bloatSubject, 'compactedVsEmpty');
    const v = compacted ?? median(rows, 'bloat', bloatSubject, 'vacuumedVsEmpty')!;
    const after = compacted === undefined ? 'VACUUM' : 'VACUUM and `mp queue compact`';
    checks.push({ target: `hot table + indexes after ${after} <= 2x empty (${bloatSubject})`, measured: x(v), met: v <= 2 });
  }
  const read = median(rows, 'stream-read', 'minipaas', 'eventsPerSec');
  if (read !== undefined) {
    checks.push({ target: 'stream read, one consumer >= 50,000 events/s', measured: Math.round(read).toLocaleString('en-US'), met: read >= 50_000 });
  }
  const lat = median(rows, 'stream-latency', 'minipaas', 'p50');
  if (lat !== undefined) {
    checks.push({ target: 'stream publish-to-consumer p50 < 5 ms', measured: `${lat.toFixed(2)} ms`, met: lat < 5 });
  }
  return checks;
}
