/**
 * Hot-table compaction: gives back the space a drained backlog left in `mp.jobs`.
 *
 * Why it is needed: a backlog of a million jobs grows the heap and the four B-tree indexes of mp.jobs.
 * Once it is drained, plain VACUUM (and autovacuum) truncates the empty heap, but it never shrinks a
 * B-tree file: its empty pages stay allocated for reuse, so the indexes keep their peak size (measured:
 * 54 MB after 1,000,000 jobs and a VACUUM, against 40 kB empty; bench/results/big.md). `VACUUM (FULL)`
 * rewrites the table and rebuilds every index from the live rows only.
 *
 * Why it is safe to run often: the rewrite holds an ACCESS EXCLUSIVE lock on mp.jobs, which stops every
 * enqueue and claim while it lasts. So it only runs when few rows are live (at most `maxLiveRows`,
 * 10,000 by default: a rewrite of that many takes milliseconds), and it waits for its lock at most
 * `lockTimeoutMs` (250 ms) before giving up: a lock request in the queue also makes every later enqueuer
 * and claimer wait behind it, so an unbounded wait behind one long transaction would stall all queues.
 *
 * When it rewrites: when the heap and indexes take more than 1 MB and more than 4x what the live rows
 * need (estimated at 1 kB per row: a job with a small payload takes about 300 bytes of heap at
 * fillfactor 50 and about 100 bytes across the indexes, so 1 kB leaves room for bigger payloads and a
 * fresh table's few pages). Otherwise it runs a plain VACUUM, which reclaims dead rows for reuse and
 * truncates an empty heap tail without blocking anyone.
 *
 * @example
 *   const report = await compactJobs(pool);
 *   // { action: 'rewritten', reason: '54 MB for 0 live rows, ...', before: {...}, after: {...} }
 */
import type pg from 'pg';
import { ConfigError, ConflictError, fromDatabaseError, mapDatabaseErrors } from '../errors.ts';

/** Defaults of `CompactOptions`. */
export const COMPACT_DEFAULTS = { maxLiveRows: 10_000, lockTimeoutMs: 250 } as const;

/** Below this a rewrite gains too little to be worth an exclusive lock. */
const MIN_REWRITE_BYTES = 1024 * 1024;
/** Heap + index bytes a live job needs, generously (see the module comment). */
const BYTES_PER_LIVE_ROW = 1024;
/** How many times what the live rows need the relation must take before it is rewritten. */
const BLOAT_FACTOR = 4;

/** SQLSTATE lock_not_available: `lock_timeout` expired. */
const LOCK_NOT_AVAILABLE = '55P03';

export interface CompactOptions {
  /** Rewrite whatever the size ratio (still never with more than `maxLiveRows` live rows). */
  force?: boolean;
  /** Never rewrite with more live rows than this (default 10,000): the rewrite copies them under an exclusive lock. */
  maxLiveRows?: number;
  /** Give up when the lock on mp.jobs is not granted within this many milliseconds (default 250). */
  lockTimeoutMs?: number;
}

/** What mp.jobs takes on disk, and its live rows. */
export interface JobsFootprint {
  /** Heap bytes (`pg_relation_size`). */
  tableBytes: number;
  /** Bytes of all its indexes (`pg_indexes_size`). */
  indexBytes: number;
  /** Live rows (waiting, scheduled and running jobs), counted up to `maxLiveRows + 1` only. */
  liveRows: number;
}

/** What `compactJobs` did, and why. */
export interface CompactReport {
  /** `rewritten`: VACUUM (FULL); `vacuumed`: plain VACUUM; `skipped`: nothing, mp.jobs was busy. */
  action: 'rewritten' | 'vacuumed' | 'skipped';
  reason: string;
  before: JobsFootprint;
  after: JobsFootprint;
}

/** Whether to rewrite a table measured at `before`, and why; pure, so the policy is testable alone. */
export function compactionPlan(
  before: JobsFootprint,
  opts: { force: boolean; maxLiveRows: number },
): { rewrite: boolean; reason: string } {
  const total = before.tableBytes + before.indexBytes;
  if (before.liveRows > opts.maxLiveRows) {
    return {
      rewrite: false,
      reason: `more than ${opts.maxLiveRows.toLocaleString('en-US')} live rows: a rewrite would block the queues while it copies them`,
    };
  }
  const rows = `${before.liveRows.toLocaleString('en-US')} live row${before.liveRows === 1 ? '' : 's'}`;
  if (opts.force) return { rewrite: true, reason: `forced, with ${rows} (${formatBytes(total)})` };
  const needed = before.liveRows * BYTES_PER_LIVE_ROW;
  if (total > MIN_REWRITE_BYTES && total > BLOAT_FACTOR * needed) {
    return { rewrite: true, reason: `${formatBytes(total)} for ${rows}, over ${BLOAT_FACTOR}x the ~${formatBytes(needed)} they need` };
  }
  return {
    rewrite: false,
    reason: `${formatBytes(total)} for ${rows} is not bloated (a rewrite needs over ${formatBytes(MIN_REWRITE_BYTES)} and over ${BLOAT_FACTOR}x ~${formatBytes(needed)})`,
  };
}

/**
 * Compacts mp.jobs: rewrites it with VACUUM (FULL) when it is mostly empty space and few rows are live,
 * else runs a plain VACUUM; then ANALYZE. Uses one client of `pool` for all of it. Never waits longer
 * than `lockTimeoutMs` for a lock: a busy table gives `action: 'skipped'`. Throws `ConflictError` when the
 * current role may not vacuum mp.jobs (it needs the owner, or MAINTAIN on PostgreSQL 17+: `mp db roles`
 * grants it to mp_cli and mp_agent).
 *
 * @example
 *   const { action, before, after } = await compactJobs(pool, { maxLiveRows: 50_000 });
 */
export async function compactJobs(pool: pg.Pool, opts: CompactOptions = {}): Promise<CompactReport> {
  const force = opts.force ?? false;
  const maxLiveRows = checkedInteger('maxLiveRows', opts.maxLiveRows, COMPACT_DEFAULTS.maxLiveRows, 0);
  const lockTimeoutMs = checkedInteger('lockTimeoutMs', opts.lockTimeoutMs, COMPACT_DEFAULTS.lockTimeoutMs, 1);

  const client = await mapDatabaseErrors(() => pool.connect());
  let broken: Error | undefined;
  try {
    await assertMayVacuum(client);
    const before = await measure(client, maxLiveRows);
    const plan = compactionPlan(before, { force, maxLiveRows });
    const fileBefore = await fileNode(client);
    await client.query(`select set_config('lock_timeout', $1, false)`, [`${lockTimeoutMs}ms`]);
    try {
      await client.query(plan.rewrite ? `vacuum (full) mp.jobs` : `vacuum (analyze) mp.jobs`);
      // Fresh statistics for the rewritten table; autovacuum does it later if the table is busy now.
      if (plan.rewrite) await client.query(`analyze mp.jobs`).catch(ignoreLockTimeout);
    } catch (err) {
      if ((err as { code?: string }).code !== LOCK_NOT_AVAILABLE) throw err;
      return {
        action: 'skipped',
        reason: `mp.jobs is busy: its lock was not granted within ${lockTimeoutMs} ms (a transaction holds it, or another compaction runs); nothing was changed`,
        before,
        after: before,
      };
    } finally {
      await client.query(`reset lock_timeout`);
    }
    // VACUUM (FULL) always writes a new file; the same one means it did not run (a permission lost meanwhile).
    if (plan.rewrite && (await fileNode(client)) === fileBefore) {
      throw new ConflictError('COMPACT_NOT_REWRITTEN', 'VACUUM (FULL) mp.jobs did not rewrite the table', 'check the server log for its warning');
    }
    return { action: plan.rewrite ? 'rewritten' : 'vacuumed', reason: plan.reason, before, after: await measure(client, maxLiveRows) };
  } catch (err) {
    // A client whose session state is unknown (lock_timeout maybe still set) is not given back to the pool.
    broken = err instanceof Error ? err : new Error(String(err));
    throw fromDatabaseError(err);
  } finally {
    client.release(broken);
  }
}

function ignoreLockTimeout(err: unknown): void {
  if ((err as { code?: string }).code !== LOCK_NOT_AVAILABLE) throw err;
}

function checkedInteger(name: string, value: number | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min) {
    throw new ConfigError('MP004', `compactJobs ${name} must be an integer >= ${min}, got ${value}`, `leave it out for ${fallback}`);
  }
  return value;
}

async function measure(client: pg.PoolClient, maxLiveRows: number): Promise<JobsFootprint> {
  const { rows } = await client.query<{ table_bytes: string; index_bytes: string; live_rows: string }>(
    `select table_bytes, index_bytes, live_rows from mp.measure_jobs($1)`,
    [maxLiveRows + 1],
  );
  const r = rows[0]!;
  return { tableBytes: Number(r.table_bytes), indexBytes: Number(r.index_bytes), liveRows: Number(r.live_rows) };
}

async function fileNode(client: pg.PoolClient): Promise<string> {
  const { rows } = await client.query<{ node: string }>(`select pg_relation_filenode('mp.jobs')::text as node`);
  return rows[0]!.node;
}

/**
 * VACUUM on a table the role may not vacuum only warns and does nothing, so ask first. Allowed: the
 * database owner, and the table owner (members and superusers included) or, from PostgreSQL 17 on,
 * whoever has MAINTAIN on it. The version test comes first so older servers never parse 'MAINTAIN'.
 */
async function assertMayVacuum(client: pg.PoolClient): Promise<void> {
  const { rows } = await client.query<{ may: boolean; who: string; owner: string; version: number }>(
    `select current_user::text as who, c.relowner::regrole::text as owner,
            current_setting('server_version_num')::int as version,
            pg_has_role(d.datdba, 'USAGE')
              or case when current_setting('server_version_num')::int >= 170000 then has_table_privilege(c.oid, 'MAINTAIN')
                      else pg_has_role(c.relowner, 'USAGE') end as may
     from pg_class c, pg_database d
     where c.oid = 'mp.jobs'::regclass and d.datname = current_database()`,
  );
  const r = rows[0]!;
  if (r.may) return;
  throw new ConflictError(
    'COMPACT_NOT_PERMITTED',
    `role ${r.who} may not vacuum mp.jobs, so it cannot compact it`,
    r.version >= 170000
      ? `run it as a member of mp_cli or mp_agent (\`mp db roles\` grants them MAINTAIN on mp.jobs) or as ${r.owner}`
      : `before PostgreSQL 17 only the table owner can: run it as ${r.owner}`,
  );
}

/** Bytes as people read sizes: `40 kB`, `7.9 MB`, `1.2 GB`. */
export function formatBytes(bytes: number): string {
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} kB`;
  if (bytes < 1024 * 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  return `${(bytes / 1024 / 1024 / 1024).toFixed(1)} GB`;
}
