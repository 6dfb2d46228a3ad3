/**
 * The benchmark harness at tiny sizes against the test server, so it cannot rot: every workload runs,
 * every job runs exactly once (the workloads throw otherwise), numbers are sane, files are written.
 * No timing assertions: timing never goes into `npm test`.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CONTENDERS, QUEUE_WORKLOADS, STREAM_WORKLOADS } from '../../bench/catalog.ts';
import { parseBenchArgs, runBench } from '../../bench/run.ts';
import type { BenchResults } from '../../bench/report.ts';
import { createEmptyDatabase } from '../support/database.ts';

let outDir: string;
let results: BenchResults;
let files: { json: string; markdown: string; svg: string };

beforeAll(async () => {
  outDir = await mkdtemp(join(tmpdir(), 'mp-bench-smoke-'));
  const opts = parseBenchArgs(['--smoke', '--out', outDir]);
  ({ results, files } = await runBench(
    opts,
    { adminUrl: inject('pgAdminUrl'), origin: 'test server' },
    { newDatabase: () => createEmptyDatabase('bench'), log: () => {} },
  ));
}, 120_000);

afterAll(async () => {
  await rm(outDir, { recursive: true, force: true });
});

/** Whether the contender named `subject` has the optional `compact` method (stream subjects: no). */
function canCompact(subject: string): boolean {
  return typeof CONTENDERS.find((c) => c.name === subject)?.create().compact === 'function';
}

describe('bench --smoke', () => {
  it('runs every workload for every available contender without a failure', async () => {
    const available = [];
    for (const c of CONTENDERS) if (!c.available || (await c.available())) available.push(c.name);
    expect(results.rows.filter((r) => r.errors.length)).toEqual([]);
    for (const w of QUEUE_WORKLOADS) {
      const ran = results.rows.filter((r) => r.workload === w.id).map((r) => r.subject);
      const expected = available.filter((name) => {
        const probe = CONTENDERS.find((c) => c.name === name)!.create();
        return w.applies(probe);
      });
      expect(ran.sort(), w.id).toEqual(expected.sort());
    }
    for (const w of STREAM_WORKLOADS) {
      expect(results.rows.some((r) => r.workload === w.id && r.subject === 'minipaas'), w.id).toBe(true);
    }
  });

  it("measures the README's raw SQL loop (LISTEN + mp.claim, no mp.wait_for_jobs) in the latency workload", () => {
    const row = results.rows.find((r) => r.workload === 'latency' && r.subject === 'minipaas-sql-listen');
    // Whether it is woken by NOTIFY is test/sql/queues/raw-loop.test.ts's business (no timing here).
    expect(row?.errors).toEqual([]);
    expect(row?.settings).toMatch(/no mp\.wait_for_jobs/);
  });

  it('produces positive, finite numbers for every metric', () => {
    for (const row of results.rows) {
      for (const m of row.metricInfo) {
        const s = row.metrics[m.name];
        // Optional metrics come from the subjects that have the method behind them (bloat: `compact`), only.
        if (m.optional && !canCompact(row.subject)) {
          expect(s, `${row.workload} ${row.subject} ${m.name}`).toBeUndefined();
          continue;
        }
        expect(s, `${row.workload} ${row.subject} ${m.name}`).toBeDefined();
        expect(s!.samples).toHaveLength(1);
        expect(Number.isFinite(s!.median), `${row.workload} ${row.subject} ${m.name}`).toBe(true);
        // Dead tuples may honestly be zero; every rate, latency and size is positive.
        if (m.unit === 'rows') expect(s!.median).toBeGreaterThanOrEqual(0);
        else expect(s!.median, `${row.workload} ${row.subject} ${m.name}`).toBeGreaterThan(0);
      }
      if (row.metrics.p50 && row.metrics.p99) expect(row.metrics.p99.median).toBeGreaterThanOrEqual(row.metrics.p50.median);
    }
  });

  it('records the server and writes the markdown report, JSON and SVG chart', async () => {
    expect(results.server.version).toMatch(/^\d+/);
    expect(Object.keys(results.server.settings)).toEqual(
      expect.arrayContaining(['fsync', 'synchronous_commit', 'autovacuum_naptime', 'shared_buffers', 'max_connections']),
    );
    const json = JSON.parse(await readFile(files.json, 'utf8')) as BenchResults;
    expect(json.rows).toHaveLength(results.rows.length);
    const md = await readFile(files.markdown, 'utf8');
    expect(md).toContain('| contender |');
    expect(md).toContain('drain (claim + complete)');
    const svg = await readFile(files.svg, 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('Throughput');
  });
});
