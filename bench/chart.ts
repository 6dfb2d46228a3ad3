/**
 * The results as one SVG: throughput per workload (median bar, min-max whisker) above latency
 * percentiles per workload (median of each percentile). Built as a vega-lite spec, compiled to vega
 * and rendered headless, so no browser or canvas is needed.
 */
import { writeFile } from 'node:fs/promises';
import * as vega from 'vega';
import * as vl from 'vega-lite';
import type { TopLevelSpec } from 'vega-lite';
import type { ResultRow } from './runner.ts';

const THROUGHPUT_METRICS = ['jobsPerSec', 'eventsPerSec'];
const PERCENTILES = ['p50', 'p95', 'p99'];

interface ThroughputDatum {
  workload: string;
  subject: string;
  median: number;
  min: number;
  max: number;
}

interface LatencyDatum {
  workload: string;
  subject: string;
  percentile: string;
  ms: number;
}

/** Chart rows: throughput of every throughput workload (bloat's incidental rate left out). */
export function chartData(rows: ResultRow[]): { throughput: ThroughputDatum[]; latency: LatencyDatum[] } {
  const throughput: ThroughputDatum[] = [];
  const latency: LatencyDatum[] = [];
  for (const row of rows) {
    if (row.workload === 'bloat') continue;
    const metric = THROUGHPUT_METRICS.find((m) => row.metrics[m]);
    if (metric) {
      const s = row.metrics[metric]!;
      throughput.push({ workload: row.title, subject: row.subject, median: s.median, min: s.min, max: s.max });
    }
    for (const p of PERCENTILES) {
      const s = row.metrics[p];
      if (s) latency.push({ workload: row.title, subject: row.subject, percentile: p, ms: s.median });
    }
  }
  return { throughput, latency };
}

/** The vega-lite spec for `rows` (exported for tests and for tweaking in the vega editor). */
export function chartSpec(rows: ResultRow[], title: string): TopLevelSpec {
  const { throughput, latency } = chartData(rows);
  const subjectAxis = { field: 'subject', type: 'nominal', title: null, axis: { labelAngle: -35 } } as const;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    config: { font: 'sans-serif', view: { stroke: null } },
    // The throughput bars are coloured by contender (no legend), the latency bars by percentile.
    resolve: { scale: { color: 'independent' }, legend: { color: 'independent' } },
    vconcat: [
      throughputSection(throughput, subjectAxis),
      latencySection(latency, subjectAxis),
    ].filter((section) => section !== null),
  } as TopLevelSpec;
}

type SubjectAxis = { field: 'subject'; type: 'nominal'; title: null; axis: { labelAngle: number } };

/** Bars per contender with min-max whiskers, one panel per workload; null when there is no throughput. */
function throughputSection(throughput: ReturnType<typeof chartData>['throughput'], subjectAxis: SubjectAxis): object | null {
  if (throughput.length === 0) return null;
  return {
    title: 'Throughput (median, whisker = min-max; higher is better)',
    data: { values: throughput },
    facet: { column: { field: 'workload', type: 'nominal', title: null } },
    spec: {
      width: 140,
      height: 180,
      layer: [
        {
          mark: 'bar',
          encoding: {
            x: subjectAxis,
            y: { field: 'median', type: 'quantitative', title: 'per second' },
            color: { field: 'subject', type: 'nominal', legend: null },
          },
        },
        {
          mark: { type: 'rule', color: 'black' },
          encoding: { x: subjectAxis, y: { field: 'min', type: 'quantitative' }, y2: { field: 'max' } },
        },
      ],
    },
    resolve: { scale: { x: 'independent', y: 'independent' } },
  };
}

/** p50/p95/p99 bars per contender, one panel per workload; null when there is no latency. */
function latencySection(latency: ReturnType<typeof chartData>['latency'], subjectAxis: SubjectAxis): object | null {
  if (latency.length === 0) return null;
  return {
    title: 'Latency percentiles (median over repetitions; lower is better)',
    data: { values: latency },
    facet: { column: { field: 'workload', type: 'nominal', title: null } },
    spec: {
      width: 140,
      height: 180,
      mark: 'bar',
      encoding: {
        x: subjectAxis,
        xOffset: { field: 'percentile', type: 'nominal' },
        y: { field: 'ms', type: 'quantitative', title: 'ms' },
        color: {
          field: 'percentile',
          type: 'nominal',
          scale: { scheme: 'blues' },
          legend: { orient: 'top', direction: 'horizontal', title: null },
        },
      },
    },
    resolve: { scale: { x: 'independent', xOffset: 'independent', y: 'independent' } },
  };
}

/** The chart's title: what ran, how often, how big. */
export function chartTitle(serverVersion: string, reps: number, n: number): string {
  return `MiniPaaS queue benchmark (${serverVersion}, ${reps} reps, N=${n})`;
}

/** Renders the chart to an SVG string. */
export async function renderChart(rows: ResultRow[], title: string): Promise<string> {
  const compiled = vl.compile(chartSpec(rows, title)).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' }).logLevel(vega.Error);
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Writes the chart to `path`. */
export async function writeChart(path: string, rows: ResultRow[], title: string): Promise<void> {
  await writeFile(path, await renderChart(rows, title));
}
