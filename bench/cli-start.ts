/**
 * CLI start-up benchmark: starts the real `mp` binary again and again and reports the median wall time
 * per command, side by side with `docker --version` as the reference of a CLI that answers at once.
 *
 *   npm run bench:cli                          # 15 starts per command
 *   npm run bench:cli -- --reps 30 --before eb6aaaf~1
 *
 * `--before REV` also measures the binary of another commit (a git worktree of REV in a temporary folder,
 * sharing this checkout's node_modules), in the same run, alternating, so the two are compared on the
 * same machine state. The database commands run against a private embedded PostgreSQL, migrated first.
 * Each start is a fresh process (`node bin/mp.mjs ...`), timed from spawn to exit.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { migrate } from '../sql/migrate.ts';
import { createEnvironment, controlDb } from '../sql/control/database.ts';
import pg from 'pg';
import { startTemporaryPostgres } from '../dev/temporary-postgres.ts';
import { median, percentile } from './stats.ts';

const { values } = parseArgs({
  options: {
    reps: { type: 'string', default: '15' },
    before: { type: 'string' },
    out: { type: 'string', default: 'bench/results' },
  },
});
const reps = Number(values.reps);

/** Runs one command to its end; returns the wall time in ms. A failed command stops the benchmark. */
function timeOnce(file: string, args: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) =>
    execFile(file, args, { env, cwd, timeout: 30_000 }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`${file} ${args.join(' ')} failed: ${stderr || err.message}`));
      else resolve(performance.now() - t0);
    }),
  );
}

interface Binary {
  label: string;
  dir: string;
}

const commands: { name: string; args: string[] }[] = [
  { name: 'mp --version', args: ['--version'] },
  { name: 'mp --help', args: ['--help'] },
  { name: 'mp queue ls', args: ['queue', 'ls'] },
  { name: 'mp ops submit docker.info --detach', args: ['ops', 'submit', 'docker.info', '--env', 'bench', '--detach'] },
];

const server = await startTemporaryPostgres({ fsync: 'off' });
const worktrees: string[] = [];
try {
  await migrate({ connectionString: server.url });
  const pool = new pg.Pool({ connectionString: server.url });
  await createEnvironment(controlDb(pool), 'bench');
  await pool.end();

  const binaries: Binary[] = [{ label: 'now', dir: process.cwd() }];
  if (values.before) {
    const dir = await mkdtemp(join(tmpdir(), 'mp-cli-before-'));
    execFileSync('git', ['worktree', 'add', '--detach', dir, values.before], { stdio: 'ignore' });
    await symlink(join(process.cwd(), 'node_modules'), join(dir, 'node_modules'));
    worktrees.push(dir);
    binaries.push({ label: `before (${values.before})`, dir });
  }
  // The built binary is what users run: make sure dist/ is current, so `now` does not fall back to tsx.
  execFileSync(process.execPath, ['scripts/build.mjs'], { stdio: 'inherit' });

  const env = { ...process.env, DATABASE_URL: server.url, MP_FROM_SOURCE: undefined };
  const samples = new Map<string, number[]>();
  const add = (key: string, ms: number): void => void samples.set(key, [...(samples.get(key) ?? []), ms]);
  // One warm-up round (file cache), then `reps` rounds, contenders alternating within a round.
  for (let round = -1; round < reps; round++) {
    for (const cmd of commands) {
      for (const bin of binaries) {
        const ms = await timeOnce(process.execPath, [join(bin.dir, 'bin', 'mp.mjs'), ...cmd.args], env, bin.dir);
        if (round >= 0) add(`${cmd.name}\t${bin.label}`, ms);
      }
    }
    const ms = await timeOnce('docker', ['--version'], env, process.cwd());
    if (round >= 0) add(`docker --version\treference`, ms);
  }

  const rows = [...samples].map(([key, s]) => {
    const [name, label] = key.split('\t') as [string, string];
    return { command: name, binary: label, medianMs: median(s), p90Ms: percentile(s, 90), starts: s.length };
  });
  const result = { date: new Date().toISOString(), command: `npm run bench:cli -- --reps ${reps}${values.before ? ` --before ${values.before}` : ''}`, node: process.version, rows };
  const md = [
    '# CLI start-up',
    '',
    `Command: \`${result.command}\` (${result.date}); Node ${process.version}; each start is a new process, spawn to exit.`,
    '',
    '| command | binary | median | p90 | starts |',
    '| --- | --- | --- | --- | --- |',
    ...rows.map((r) => `| \`${r.command}\` | ${r.binary} | ${r.medianMs.toFixed(0)} ms | ${r.p90Ms.toFixed(0)} ms | ${r.starts} |`),
    '',
  ].join('\n');
  await mkdir(values.out!, { recursive: true });
  await writeFile(join(values.out!, 'cli.json'), JSON.stringify(result, null, 2) + '\n');
  await writeFile(join(values.out!, 'cli.md'), md);
  process.stdout.write(md);
} finally {
  for (const dir of worktrees) {
    execFileSync('git', ['worktree', 'remove', '--force', dir], { stdio: 'ignore' });
    await rm(dir, { recursive: true, force: true });
  }
  await server.stop();
}
