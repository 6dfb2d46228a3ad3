/**
 * Runs workloads against subjects: for each workload, each repetition measures every subject once,
 * in an order rotated per repetition (A B C, B C A, C A B, ...) so no contender always runs first or
 * last; every measurement gets a fresh database and a fresh instance, dropped afterwards.
 */
import type { Factory, Subject } from './contenders/contender.ts';
import type { DatabaseFactory } from './server.ts';
import { summarize, type Summary } from './stats.ts';
import type { MetricInfo, Workload, WorkloadOptions } from './workloads/workload.ts';

/** Workloads and the subjects they measure (queue contenders, or stream implementations). */
export interface Suite<S extends Subject> {
  workloads: Workload<S>[];
  subjects: Factory<S>[];
}

/** One workload's results for one subject, across repetitions. */
export interface ResultRow {
  workload: string;
  title: string;
  subject: string;
  settings: string;
  metricInfo: MetricInfo[];
  metrics: Record<string, Summary>;
  /** Why repetitions failed (an empty list in a sound run). */
  errors: string[];
  /** Seconds the measurements took, setup excluded. */
  seconds: number;
}

/** A suite with its subject type closed over, so suites of different types can share one list. */
export interface RunnableSuite {
  run(plan: RunPlan): Promise<ResultRow[]>;
}

/** Wraps a typed suite for `RunPlan.suites`. */
export function suite<S extends Subject>(s: Suite<S>): RunnableSuite {
  return { run: (plan) => runSuite(s, plan) };
}

export interface RunPlan {
  /** Run one after another: queue workloads, then stream workloads. */
  suites: RunnableSuite[];
  reps: number;
  options: WorkloadOptions;
  newDatabase: DatabaseFactory;
  log: (line: string) => void;
}

function rotate<T>(items: readonly T[], by: number): T[] {
  if (items.length === 0) return [];
  const k = by % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

/** Runs every suite; returns one row per (workload, subject) that applies. */
export async function runBenchmark(plan: RunPlan): Promise<ResultRow[]> {
  const rows: ResultRow[] = [];
  for (const s of plan.suites) rows.push(...(await s.run(plan)));
  return rows;
}

async function runSuite<S extends Subject>(suite: Suite<S>, plan: RunPlan): Promise<ResultRow[]> {
  const subjects: Factory<S>[] = [];
  for (const f of suite.subjects) {
    if (f.available && !(await f.available())) plan.log(`skip ${f.name}: its SQL is not in this checkout yet`);
    else subjects.push(f);
  }
  const rows: ResultRow[] = [];
  for (const w of suite.workloads) {
    const byName = new Map<string, { settings: string; samples: Record<string, number[]>; errors: string[]; ms: number }>();
    for (let rep = 0; rep < plan.reps; rep++) {
      for (const factory of rotate(subjects, rep)) {
        const subject = factory.create();
        if (!w.applies(subject)) continue;
        const entry = byName.get(factory.name) ?? { settings: subject.settings, samples: {}, errors: [], ms: 0 };
        byName.set(factory.name, entry);
        const db = await plan.newDatabase(`${w.id}_${factory.name}`);
        try {
          await subject.setup(db.url);
          const t0 = performance.now();
          const metrics = await w.run(subject, db.url, plan.options);
          entry.ms += performance.now() - t0;
          for (const [k, v] of Object.entries(metrics)) (entry.samples[k] ??= []).push(v);
          plan.log(`${w.id} rep ${rep + 1}/${plan.reps} ${factory.name}: ${formatMetrics(metrics)}`);
        } catch (err) {
          const message = err instanceof Error ? err.message : String(err);
          entry.errors.push(`rep ${rep + 1}: ${message}`);
          plan.log(`${w.id} rep ${rep + 1}/${plan.reps} ${factory.name}: FAILED ${message}`);
        } finally {
          await subject.close().catch(() => {});
          await db.drop().catch((e: unknown) => plan.log(`could not drop database: ${String(e)}`));
        }
      }
    }
    for (const [name, e] of byName) {
      rows.push({
        workload: w.id,
        title: w.title,
        subject: name,
        settings: e.settings,
        metricInfo: w.metrics,
        metrics: Object.fromEntries(Object.entries(e.samples).map(([k, v]) => [k, summarize(v)])),
        errors: e.errors,
        seconds: e.ms / 1000,
      });
    }
  }
  return rows;
}

function formatMetrics(m: Record<string, number>): string {
  return Object.entries(m)
    .map(([k, v]) => `${k}=${v >= 100 ? Math.round(v) : v.toFixed(2)}`)
    .join(' ');
}
