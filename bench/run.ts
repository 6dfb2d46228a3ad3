/**
 * `npm run bench`: starts (or uses `DATABASE_URL` for) one PostgreSQL, runs the selected workloads
 * against the selected contenders, prints the markdown table and writes bench/results/<name>.{json,md,svg}.
 *
 *   npm run bench                                   # every normal workload, N=50,000, 3 repetitions
 *   npm run bench -- --big                          # also the 1,000,000-job workloads (claim-big, bloat)
 *   npm run bench -- --workloads drain,latency --contenders minipaas,graphile-worker
 *   npm run bench -- --smoke                        # tiny sizes, 1 repetition: checks the harness works
 */
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { CONTENDERS, QUEUE_WORKLOADS, STREAM_SUBJECTS, STREAM_WORKLOADS } from './catalog.ts';
import { chartTitle, writeChart } from './chart.ts';
import { renderMarkdown, writeReport, type BenchResults } from './report.ts';
import { runBenchmark, suite, type RunnableSuite } from './runner.ts';
import { databaseFactory, describeServer, startBenchServer, type DatabaseFactory } from './server.ts';
import type { WorkloadOptions } from './workloads/workload.ts';

const HERE = dirname(fileURLToPath(import.meta.url));

/** Sizes of a full run (issue 3). */
export const FULL_OPTIONS: WorkloadOptions = {
  n: 50_000,
  singleN: 10_000,
  bulkBatch: 1000,
  clients: 4,
  latencyRate: 200,
  latencyCount: 2000,
  latencyWarmup: 100,
  claimSmallBacklog: 1000,
  claimBigBacklog: 1_000_000,
  claimSamples: 500,
  bloatJobs: 1_000_000,
  streamEvents: 50_000,
  groupMembers: 4,
  timeoutMs: 300_000,
};

/** Sizes of `--smoke`: every workload, seconds in total; the numbers mean nothing. */
export const SMOKE_OPTIONS: WorkloadOptions = {
  n: 200,
  singleN: 100,
  bulkBatch: 50,
  clients: 4,
  latencyRate: 200,
  latencyCount: 40,
  latencyWarmup: 5,
  claimSmallBacklog: 50,
  claimBigBacklog: 300,
  claimSamples: 20,
  bloatJobs: 500,
  streamEvents: 300,
  groupMembers: 4,
  timeoutMs: 30_000,
};

export interface BenchOptions {
  name: string;
  reps: number;
  workloads: string[];
  contenders: string[];
  big: boolean;
  options: WorkloadOptions;
  outDir: string;
  command: string;
}

const USAGE = `usage: npm run bench -- [options]
  --n N                jobs/events per throughput measurement (default 50000)
  --reps R             repetitions per measurement (default 3)
  --workloads a,b      workloads to run (default: all but the big ones); known: ${[...QUEUE_WORKLOADS, ...STREAM_WORKLOADS].map((w) => w.id).join(', ')}
  --contenders a,b     queue contenders (default all); known: ${CONTENDERS.map((c) => c.name).join(', ')}
  --single-n N         jobs/events of the one-per-call enqueue and publish workloads (default 10000)
  --big                also run the 1,000,000-job workloads (claim-big, bloat)
  --big-n N            size of the big workloads (default 1000000)
  --latency-count N    timed jobs per latency run (default 2000, at 200/s)
  --smoke              tiny sizes and 1 repetition
  --name NAME          results file name (default: latest, or smoke)
  --out DIR            results folder (default bench/results)`;

/** Parses the command line into options; throws with the usage text on a mistake. */
export function parseBenchArgs(argv: string[]): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      n: { type: 'string' },
      reps: { type: 'string' },
      workloads: { type: 'string' },
      contenders: { type: 'string' },
      big: { type: 'boolean', default: false },
      'big-n': { type: 'string' },
      'latency-count': { type: 'string' },
      'single-n': { type: 'string' },
      smoke: { type: 'boolean', default: false },
      name: { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) throw new Error(USAGE);
  const int = (v: string | undefined, what: string): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v.replace(/_/g, ''));
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${what} must be a positive integer, got "${v}"\n${USAGE}`);
    return n;
  };
  const list = (v: string | undefined): string[] => (v ? v.split(',').map((s) => s.trim()).filter(Boolean) : []);
  const options = { ...(values.smoke ? SMOKE_OPTIONS : FULL_OPTIONS) };
  const n = int(values.n, 'n');
  if (n) options.n = options.streamEvents = n;
  const bigN = int(values['big-n'], 'big-n');
  if (bigN) options.claimBigBacklog = options.bloatJobs = bigN;
  const singleN = int(values['single-n'], 'single-n');
  if (singleN) options.singleN = singleN;
  const latencyCount = int(values['latency-count'], 'latency-count');
  if (latencyCount) options.latencyCount = latencyCount;

  const workloads = list(values.workloads);
  const knownWorkloads = [...QUEUE_WORKLOADS, ...STREAM_WORKLOADS].map((w) => w.id);
  for (const w of workloads) {
    if (!knownWorkloads.includes(w)) throw new Error(`unknown workload "${w}"; known: ${knownWorkloads.join(', ')}`);
  }
  const contenders = list(values.contenders);
  for (const c of contenders) {
    if (!CONTENDERS.some((k) => k.name === c)) {
      throw new Error(`unknown contender "${c}"; known: ${CONTENDERS.map((k) => k.name).join(', ')}`);
    }
  }
  return {
    name: values.name ?? (values.smoke ? 'smoke' : 'latest'),
    reps: int(values.reps, 'reps') ?? (values.smoke ? 1 : 3),
    workloads,
    contenders,
    big: values.big || values.smoke,
    options,
    outDir: values.out ?? join(HERE, 'results'),
    command: `npm run bench${argv.length ? ` -- ${argv.join(' ')}` : ''}`,
  };
}

/** The suites `opts` selects: named workloads, or all but the big ones (all with `big`). */
export function selectSuites(opts: BenchOptions): RunnableSuite[] {
  const pick = <W extends { id: string; big: boolean }>(all: W[]): W[] =>
    opts.workloads.length ? all.filter((w) => opts.workloads.includes(w.id)) : all.filter((w) => opts.big || !w.big);
  const contenders = opts.contenders.length ? CONTENDERS.filter((c) => opts.contenders.includes(c.name)) : CONTENDERS;
  const streamSubjects = !opts.contenders.length || opts.contenders.includes('minipaas') ? STREAM_SUBJECTS : [];
  return [
    suite({ workloads: pick(QUEUE_WORKLOADS), subjects: contenders }),
    suite({ workloads: pick(STREAM_WORKLOADS), subjects: streamSubjects }),
  ];
}

/**
 * Runs the benchmark on the server at `adminUrl` (origin names who started it) and writes the report
 * and chart into `opts.outDir`. `newDatabase` defaults to creating databases through `adminUrl`.
 */
export async function runBench(
  opts: BenchOptions,
  server: { adminUrl: string; origin: string },
  deps: { newDatabase?: DatabaseFactory; log?: (line: string) => void } = {},
): Promise<{ results: BenchResults; files: { json: string; markdown: string; svg: string } }> {
  const log = deps.log ?? ((line: string) => console.log(line));
  const info = await describeServer(server);
  log(`PostgreSQL ${info.version} (${info.origin}): ${Object.entries(info.settings).map(([k, v]) => `${k}=${v}`).join(', ')}`);
  const startedAt = new Date().toISOString();
  const loadAtStart = loadavg()[0]!;
  const rows = await runBenchmark({
    suites: selectSuites(opts),
    reps: opts.reps,
    options: opts.options,
    newDatabase: deps.newDatabase ?? databaseFactory(server.adminUrl),
    log,
  });
  const cpu = cpus();
  const results: BenchResults = {
    name: opts.name,
    startedAt,
    command: opts.command,
    machine: {
      node: process.version,
      cpus: cpu.length,
      cpuModel: cpu[0]?.model.trim() ?? 'unknown',
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      loadAverage: { start: loadAtStart, end: loadavg()[0]! },
    },
    server: info,
    reps: opts.reps,
    options: opts.options,
    rows,
  };
  const files = await writeReport(opts.outDir, results);
  const svg = join(opts.outDir, `${opts.name}.svg`);
  await writeChart(svg, rows, chartTitle(info.version, opts.reps, opts.options.n));
  return { results, files: { ...files, svg } };
}

async function main(): Promise<void> {
  let opts: BenchOptions;
  try {
    opts = parseBenchArgs(process.argv.slice(2));
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err));
    process.exitCode = 2;
    return;
  }
  const server = await startBenchServer();
  try {
    const { results, files } = await runBench(opts, server);
    console.log(`\n${renderMarkdown(results)}`);
    console.log(`wrote ${files.markdown}, ${files.json}, ${files.svg}`);
    if (results.rows.some((r) => r.errors.length)) process.exitCode = 1;
  } finally {
    await server.stop();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
