/**
 * Results as files: `<name>.json` (everything, including every repetition's sample) and `<name>.md`
 * (one table per workload, median and range, with ratios against the reference contenders).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ResultRow } from './runner.ts';
import type { ServerInfo } from './server.ts';
import type { Summary } from './stats.ts';
import type { WorkloadOptions } from './workloads/workload.ts';
import { evaluateTargets } from './targets.ts';

/** Everything one run produced. */
export interface BenchResults {
  name: string;
  startedAt: string;
  command: string;
  /** `loadAverage`: 1-minute load at start and end; other work on the machine skews every number. */
  machine: { node: string; cpus: number; cpuModel: string; memoryGiB: number; loadAverage: { start: number; end: number } };
  server: ServerInfo;
  reps: number;
  options: WorkloadOptions;
  rows: ResultRow[];
}

/** Ratios in the tables are against these contenders, when they ran. */
const REFERENCES = ['graphile-worker', 'original'];

export function formatNumber(v: number, unit: string): string {
  if (!Number.isFinite(v)) return 'n/a';
  if (unit === 'ms' || unit === 'x') return v.toFixed(2);
  return Math.round(v).toLocaleString('en-US');
}

function cell(s: Summary | undefined, unit: string): string {
  if (!s) return '';
  if (s.samples.length === 1) return formatNumber(s.median, unit);
  return `${formatNumber(s.median, unit)} (${formatNumber(s.min, unit)}-${formatNumber(s.max, unit)})`;
}

function ratio(row: ResultRow, ref: ResultRow | undefined, metric: string): string {
  const a = row.metrics[metric]?.median;
  const b = ref?.metrics[metric]?.median;
  if (a === undefined || b === undefined || !b) return '';
  return `${(a / b).toFixed(2)}x`;
}

/** The markdown report: run facts, then one table per workload. */
export function renderMarkdown(r: BenchResults): string {
  const out: string[] = [];
  out.push(`# Benchmark results: ${r.name}`, '');
  out.push(`Command: \`${r.command}\`  `);
  out.push(`Started ${r.startedAt}; ${r.reps} repetition(s) per measurement, contenders alternating; median (min-max).  `);
  out.push(
    `Machine: ${r.machine.cpus} x ${r.machine.cpuModel}, ${r.machine.memoryGiB} GiB, Node ${r.machine.node}; ` +
      `1-minute load average ${r.machine.loadAverage.start.toFixed(1)} at start, ${r.machine.loadAverage.end.toFixed(1)} at end.  `,
  );
  const settings = Object.entries(r.server.settings)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
  out.push(`PostgreSQL ${r.server.version} (${r.server.origin}): ${settings}.`, '');
  const o = r.options;
  out.push(
    `Sizes: N=${o.n.toLocaleString('en-US')} jobs (${o.singleN.toLocaleString('en-US')} for one-per-call enqueue and publish), batch API ${o.bulkBatch} jobs per call, ${o.clients} single-enqueue clients, ` +
      `latency ${o.latencyCount} timed jobs at ${o.latencyRate}/s (after ${o.latencyWarmup} warm-up), ` +
      `claim backlogs ${o.claimSmallBacklog.toLocaleString('en-US')} / ${o.claimBigBacklog.toLocaleString('en-US')} (${o.claimSamples} claims), ` +
      `bloat ${o.bloatJobs.toLocaleString('en-US')} jobs, streams ${o.streamEvents.toLocaleString('en-US')} events, ${o.groupMembers} group members.`,
    '',
  );

  const targets = evaluateTargets(r.rows);
  if (targets.length) {
    out.push('## Targets (issue 3)', '', '| target | measured | met |', '| --- | --- | --- |');
    for (const t of targets) out.push(`| ${t.target} | ${t.measured} | ${t.met ? 'yes' : '**no**'} |`);
    out.push('');
  }

  const workloads = [...new Set(r.rows.map((row) => row.workload))];
  for (const w of workloads) {
    const rows = r.rows.filter((row) => row.workload === w);
    const first = rows[0]!;
    const metrics = first.metricInfo.filter((m) => rows.some((row) => row.metrics[m.name]));
    const primary = (metrics.find((m) => m.compared) ?? metrics[0])?.name ?? '';
    const refs = REFERENCES.filter((name) => rows.some((row) => row.subject === name));
    out.push(`## ${first.title} (\`${w}\`)`, '');
    const head = ['contender', ...metrics.map((m) => `${m.name} (${m.unit})`), ...refs.map((ref) => `${primary} vs ${ref}`)];
    out.push(`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`);
    for (const row of rows) {
      const cells = [
        row.subject,
        ...metrics.map((m) => cell(row.metrics[m.name], m.unit)),
        ...refs.map((ref) => ratio(row, rows.find((x) => x.subject === ref), primary)),
      ];
      out.push(`| ${cells.join(' | ')} |`);
    }
    out.push('');
    for (const row of rows) {
      for (const e of row.errors) out.push(`- **${row.subject} failed** ${e}`);
    }
    if (rows.some((row) => row.errors.length)) out.push('');
  }

  out.push('## Contender settings', '');
  const seen = new Set<string>();
  for (const row of r.rows) {
    if (seen.has(row.subject)) continue;
    seen.add(row.subject);
    out.push(`- **${row.subject}**: ${row.settings}`);
  }
  out.push('');
  return out.join('\n');
}

/** Writes `<dir>/<name>.json` and `<dir>/<name>.md`; returns their paths. */
export async function writeReport(dir: string, r: BenchResults): Promise<{ json: string; markdown: string }> {
  await mkdir(dir, { recursive: true });
  const json = join(dir, `${r.name}.json`);
  const markdown = join(dir, `${r.name}.md`);
  await writeFile(json, `${JSON.stringify(r, null, 2)}\n`);
  await writeFile(markdown, renderMarkdown(r));
  return { json, markdown };
}
