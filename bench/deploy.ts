/**
 * Deploy benchmark: `mp deploy` against `docker stack deploy` + polling `docker service ls`, side by side.
 *
 *   npm run bench:deploy                          # 10 services, 5 repetitions
 *   npm run bench:deploy -- --reps 3 --services 10 --stable 0,3
 *
 * Three scenarios per contender and repetition, on a stack name of its own, each timed from the
 * command's start to "converged":
 *   create  the stack from nothing;
 *   change  one service's environment variable changed (a rolling update of that service);
 *   noop    the same files deployed again.
 * `docker` is what a careful user of the original did: `docker stack deploy --detach=true -c compose.yaml
 * STACK`, then `docker service ls` every `--docker-poll-ms` until every service shows n/n; after a change
 * also until the changed service's UpdateStatus says `completed` (right after `docker stack deploy`
 * returns, `ls` still shows the old task running as 1/1, so n/n alone says nothing about the update; the
 * time n/n alone first held is recorded as `changeNaive`). `minipaas` is the real `mp deploy --env DIR`
 * binary (a private build of this checkout, so others' edits mid-run cannot switch it to tsx), with a
 * real agent in this process on its defaults, timed from spawn to exit; one contender per `--stable`
 * value (minipaas.yaml `deploy.stable`: the seconds every task must have run before it counts).
 *
 * Both read the same compose.yaml: busybox httpd services, no healthchecks, and an explicit
 * `update_config` (start-first, monitor 5 s, as Swarm's default monitor) so MiniPaaS's safe defaults
 * change nothing and both sides run identical specs. Contenders alternate (rotated each repetition);
 * every stack is removed afterwards, and the next trial starts only once its tasks, containers and
 * network are gone.
 */
import { execFile, spawn } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { startAgent } from '../agent/agent.ts';
import { connectDocker, STACK_NAMESPACE_LABEL } from '../agent/docker/engine.ts';
import { controlDb, operationEvents } from '../sql/control/database.ts';
import { migrate } from '../sql/migrate.ts';
import { databaseFactory, describeServer, startBenchServer } from './server.ts';
import { summarize, type Summary } from './stats.ts';
import { now, sleep, waitUntil } from './timing.ts';

const { values } = parseArgs({
  options: {
    reps: { type: 'string', default: '5' },
    services: { type: 'string', default: '10' },
    stable: { type: 'string', default: '0,3' },
    'docker-poll-ms': { type: 'string', default: '100' },
    image: { type: 'string', default: process.env.MP_LAB_BUSYBOX_IMAGE ?? 'mp-lab/busybox:latest' },
    out: { type: 'string', default: 'bench/results' },
    name: { type: 'string', default: 'deploy' },
  },
});
const reps = Number(values.reps);
const serviceCount = Number(values.services);
const stables = values.stable!.split(',').map(Number);
const dockerPollMs = Number(values['docker-poll-ms']);
const image = values.image!;
const DOCKER = '/usr/local/bin/docker';
const SCENARIOS = ['create', 'change', 'noop'] as const;
type Scenario = (typeof SCENARIOS)[number];

const docker = connectDocker();
const work = mkdtempSync(join(tmpdir(), 'mp-bench-deploy-'));

/** The stack's compose.yaml; `revision` is the changed service's (s01) environment variable. */
function compose(revision: number): string {
  const lines = ['services:'];
  for (let i = 1; i <= serviceCount; i++) {
    const name = `s${String(i).padStart(2, '0')}`;
    lines.push(
      `  ${name}:`,
      `    image: ${image}`,
      `    command: ["httpd", "-f", "-p", "8080"]`,
      // An init process passes SIGTERM on: busybox httpd as PID 1 ignores it and would hold every replaced
      // task for the 10 s stop grace period, which docker's n/n (counting that task) would wait out.
      `    init: true`,
      `    environment:`,
      `      REVISION: "${i === 1 ? revision : 1}"`,
      `    deploy:`,
      `      replicas: 1`,
      `      update_config:`,
      `        order: start-first`,
      `        failure_action: rollback`,
      `        monitor: 5s`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** Runs a command to its end; rejects with its stderr when it fails. */
function run(file: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(file, args, { ...opts, timeout: 300_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${file} ${args.join(' ')} failed: ${stderr || err.message}\n${stdout}`));
      else resolve(stdout);
    }),
  );
}

/**
 * Builds this checkout's CLI into a private folder (tsc as `npm run build` does, with the SQL and other
 * run-time files beside the JavaScript), so the `mp` timed is the built binary users run and a source
 * file edited by someone else during the run cannot make bin/mp.mjs fall back to tsx.
 */
async function buildCli(): Promise<string> {
  const root = join(work, 'mp');
  const out = join(root, 'dist');
  const tsc = join(process.cwd(), 'node_modules', 'typescript', 'bin', 'tsc');
  // Emits even when a file elsewhere has type errors (someone's work in progress); that is fine here.
  await run(process.execPath, [tsc, '-p', 'tsconfig.build.json', '--outDir', out]).catch(() => {});
  for (const dir of ['sql', 'stack', 'agent', 'cli', 'dev']) {
    cpSync(dir, join(out, dir), {
      recursive: true,
      filter: (src) => !src.includes('node_modules') && (!/\.[a-z]+$/i.test(src) || !/\.(ts|md)$/.test(src) || src.endsWith('.d.ts')),
    });
  }
  mkdirSync(join(root, 'bin'), { recursive: true });
  cpSync('bin/mp.mjs', join(root, 'bin', 'mp.mjs'));
  cpSync('package.json', join(root, 'package.json'));
  writeFileSync(join(out, '.built'), `${new Date().toISOString()}\n`);
  symlinkSync(join(process.cwd(), 'node_modules'), join(root, 'node_modules'));
  const bin = join(root, 'bin', 'mp.mjs');
  await run(process.execPath, [bin, '--version']);
  return bin;
}

/** `docker service ls` of a stack: the Replicas column of each service. */
async function replicas(stack: string): Promise<string[]> {
  const out = await run(DOCKER, ['service', 'ls', '--filter', `label=${STACK_NAMESPACE_LABEL}=${stack}`, '--format', '{{.Replicas}}']);
  return out.split('\n').filter(Boolean);
}

function allRunning(rows: string[]): boolean {
  return (
    rows.length === serviceCount &&
    rows.every((r) => {
      const m = /^(\d+)\/(\d+)/.exec(r);
      return m !== null && m[1] === m[2] && Number(m[2]) > 0;
    })
  );
}

async function updateState(service: string): Promise<string> {
  return (await run(DOCKER, ['service', 'inspect', service, '--format', '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}'])).trim();
}

/** One scenario's outcome: wall ms, and for MiniPaaS where the time went. */
interface Sample {
  ms: number;
  /** docker, change: when `service ls` alone first showed n/n. */
  naiveMs?: number;
  /** minipaas: ms from spawn to each milestone (operation created, started, its first steps, finished). */
  timeline?: Record<string, number>;
  /** minipaas: every event of the operation, ms from spawn. */
  events?: { ms: number; step: string; message: string }[];
  operation?: string;
}

interface Contender {
  name: string;
  trial(stack: string, dir: string): Promise<Record<Scenario, Sample>>;
}

const dockerContender: Contender = {
  name: 'docker',
  async trial(stack, dir) {
    const file = join(dir, 'compose.yaml');
    const deploy = async (opts: { update?: string }): Promise<Sample> => {
      const t0 = now();
      await run(DOCKER, ['stack', 'deploy', '--detach=true', '-c', file, stack]);
      let naiveMs: number | undefined;
      for (;;) {
        const ok = allRunning(await replicas(stack));
        if (ok && naiveMs === undefined) naiveMs = now() - t0;
        if (ok && (!opts.update || (await updateState(opts.update)) === 'completed')) break;
        if (now() - t0 > 180_000) throw new Error(`docker stack ${stack} did not converge in 180 s`);
        await sleep(dockerPollMs);
      }
      return { ms: now() - t0, ...(opts.update ? { naiveMs } : {}) };
    };
    writeFileSync(file, compose(1));
    const create = await deploy({});
    writeFileSync(file, compose(2));
    const change = await deploy({ update: `${stack}_s01` });
    const noop = await deploy({});
    return { create, change, noop };
  },
};

function minipaasContender(bin: string, databaseUrl: string, pool: pg.Pool, stable: number): Contender {
  const kdb = controlDb(pool);
  const deploy = async (dir: string): Promise<Sample> => {
    const started = Date.now();
    const t0 = now();
    const stdout = await new Promise<string>((resolve, reject) => {
      const child = spawn(process.execPath, [bin, 'deploy', '--env', dir], {
        env: { ...process.env, DATABASE_URL: databaseUrl, MP_FROM_SOURCE: undefined },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`mp deploy --env ${dir} exited ${code}: ${err}\n${out}`))));
    });
    const ms = now() - t0;
    const operation = /recorded; operation (\d+)/.exec(stdout)?.[1];
    if (!operation || !/deploy succeeded/.test(stdout)) throw new Error(`mp deploy said:\n${stdout}`);
    const { rows } = await pool.query<{ created_at: Date; started_at: Date; finished_at: Date }>(
      `select created_at, started_at, finished_at from mp.operations where id = $1`,
      [operation],
    );
    const op = rows[0]!;
    const timeline: Record<string, number> = { created: op.created_at.getTime() - started, started: op.started_at.getTime() - started };
    const events = (await operationEvents(kdb, operation)).map((e) => ({ ms: Date.parse(e.at) - started, step: e.step, message: e.message.slice(0, 160) }));
    for (const e of await operationEvents(kdb, operation)) {
      const key = e.step === 'progress' && timeline.progress !== undefined ? 'lastProgress' : e.step;
      if (key === 'lastProgress' || timeline[key] === undefined) timeline[key] = Date.parse(e.at) - started;
    }
    timeline.finished = op.finished_at.getTime() - started;
    timeline.exit = ms;
    return { ms, timeline, events, operation };
  };
  return {
    name: `minipaas-stable${stable}`,
    async trial(stack, dir) {
      writeFileSync(
        join(dir, 'minipaas.yaml'),
        ['project:', '  files: [compose.yaml]', `stack: ${stack}`, 'deploy:', '  timeout: 180', `  stable: ${stable}`, ''].join('\n'),
      );
      writeFileSync(join(dir, 'compose.yaml'), compose(1));
      const create = await deploy(dir);
      writeFileSync(join(dir, 'compose.yaml'), compose(2));
      const change = await deploy(dir);
      const noop = await deploy(dir);
      return { create, change, noop };
    },
  };
}

/** Removes a stack and waits until nothing of it is left on the engine. */
async function removeStack(stack: string): Promise<void> {
  const label = [`${STACK_NAMESPACE_LABEL}=${stack}`];
  for (const s of await docker.listServices({ label })) await docker.removeService(s).catch(() => {});
  await waitUntil(`stack ${stack}'s tasks to go`, async () => (await docker.listTasks({ label })).length === 0, { timeoutMs: 120_000, intervalMs: 250 });
  await waitUntil(
    `stack ${stack}'s containers to go`,
    async () => (await run(DOCKER, ['ps', '-aq', '--filter', `label=${STACK_NAMESPACE_LABEL}=${stack}`])).trim() === '',
    { timeoutMs: 120_000, intervalMs: 250 },
  );
  await waitUntil(
    `stack ${stack}'s network to go`,
    async () => {
      const nets = await docker.listNetworks({ label });
      for (const n of nets) await docker.removeNetwork(n).catch(() => {});
      return (await docker.listNetworks({ label })).length === 0;
    },
    { timeoutMs: 60_000, intervalMs: 250 },
  );
}

const fmt = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
const range = (s: Summary): string => `${fmt(s.median)} (${fmt(s.min)}-${fmt(s.max)})`;

const server = await startBenchServer();
const db = await databaseFactory(server.adminUrl)('deploy');
await migrate({ connectionString: db.url });
const pool = new pg.Pool({ connectionString: db.url, max: 8 });
const agentPool = new pg.Pool({ connectionString: db.url, max: 6 });
const stacks: string[] = [];
let agent: Awaited<ReturnType<typeof startAgent>> | undefined;
try {
  process.stdout.write('building the CLI...\n');
  const bin = await buildCli();
  await docker.ping();
  agent = await startAgent({ pool: agentPool, docker, name: 'bench-deploy-agent' });
  const contenders = [dockerContender, ...stables.map((s) => minipaasContender(bin, db.url, pool, s))];
  const samples = new Map<string, Record<Scenario, Sample>[]>(contenders.map((c) => [c.name, []]));

  // Warm-up (untimed): the image, the engine's caches, the CLI's file cache and the agent's pool.
  for (const c of contenders) {
    const stack = `bdw${c.name.replace(/[^a-z0-9]/g, '')}${process.pid}`;
    const dir = join(work, stack);
    mkdirSync(dir);
    stacks.push(stack);
    await c.trial(stack, dir);
    await removeStack(stack);
  }
  for (let rep = 0; rep < reps; rep++) {
    const order = contenders.map((_, i) => contenders[(i + rep) % contenders.length]!);
    for (const c of order) {
      const stack = `bd${rep}${c.name.replace(/[^a-z0-9]/g, '')}${process.pid}`;
      const dir = join(work, stack);
      mkdirSync(dir);
      stacks.push(stack);
      const result = await c.trial(stack, dir);
      samples.get(c.name)!.push(result);
      process.stdout.write(`rep ${rep + 1}/${reps} ${c.name}: ${SCENARIOS.map((s) => `${s} ${fmt(result[s].ms)}`).join(', ')}\n`);
      await removeStack(stack);
    }
  }

  const summary = Object.fromEntries(
    contenders.map((c) => [c.name, Object.fromEntries(SCENARIOS.map((s) => [s, summarize(samples.get(c.name)!.map((r) => r[s].ms))]))]),
  ) as Record<string, Record<Scenario, Summary>>;
  const naive = summarize(samples.get('docker')!.map((r) => r.change.naiveMs!));
  // What MiniPaaS takes once the CLI has recorded the release: the agent's part, and the follow to exit.
  const afterSubmit = Object.fromEntries(
    stables.map((st) => {
      const rows = samples.get(`minipaas-stable${st}`)!;
      return [`minipaas-stable${st}`, Object.fromEntries(SCENARIOS.map((s) => [s, summarize(rows.map((r) => r[s].ms - r[s].timeline!.created!))]))];
    }),
  ) as Record<string, Record<Scenario, Summary>>;
  const timelines = Object.fromEntries(
    contenders
      .filter((c) => c !== dockerContender)
      .map((c) => {
        const rows = samples.get(c.name)!;
        return [
          c.name,
          Object.fromEntries(
            SCENARIOS.map((s) => {
              const keys = [...new Set(rows.flatMap((r) => Object.keys(r[s].timeline!)))];
              const medians = Object.fromEntries(keys.map((k) => [k, summarize(rows.flatMap((r) => (r[s].timeline![k] === undefined ? [] : [r[s].timeline![k]!]))).median]));
              return [s, Object.fromEntries(Object.entries(medians).sort((a, b) => a[1] - b[1]))];
            }),
          ),
        ];
      }),
  ) as Record<string, Record<Scenario, Record<string, number>>>;

  const info = await describeServer(server);
  const engine = (await run(DOCKER, ['version', '--format', '{{.Client.Version}} / {{.Server.Version}}'])).trim();
  const command = `npm run bench:deploy -- --reps ${reps} --services ${serviceCount} --stable ${stables.join(',')} --docker-poll-ms ${dockerPollMs}`;
  const date = new Date().toISOString();
  const targets = stables.map((s) => {
    const name = `minipaas-stable${s}`;
    return {
      contender: name,
      createRatio: summary[name]!.create.median / summary.docker!.create.median,
      changeRatio: summary[name]!.change.median / summary.docker!.change.median,
      noopMs: summary[name]!.noop.median,
    };
  });
  const md = [
    `# Deploy: MiniPaaS against docker stack deploy`,
    ``,
    `Command: \`${command}\` (${date}); ${serviceCount} services of \`${image}\` (httpd, 1 replica, no healthcheck,`,
    `init, update_config start-first / monitor 5s on both sides); docker CLI / engine ${engine}; PostgreSQL ${info.version} (${info.origin});`,
    `Node ${process.version}. Median of ${reps} repetitions (min-max), contenders alternating; each time is from the command's start to converged.`,
    ``,
    `- \`docker\`: \`docker stack deploy --detach=true\`, then \`docker service ls\` every ${dockerPollMs} ms until every service shows n/n;`,
    `  after the change also until the changed service's UpdateStatus is \`completed\`. It checks no stable period.`,
    `- \`minipaas-stableN\`: the built \`mp deploy --env DIR\` binary, spawn to exit, one agent (defaults) in the benchmark process;`,
    `  minipaas.yaml \`deploy.stable: N\`. \`stable: 0\` is the like-for-like comparison (the docker loop waits for no stable`,
    `  period); \`stable: 3\` is MiniPaaS's default, which also waits until every task has run 3 s.`,
    ``,
    `| scenario | ${contenders.map((c) => c.name).join(' | ')} | ${stables.map((s) => `ratio stable${s} / docker`).join(' | ')} |`,
    `| --- | ${contenders.map(() => '---').join(' | ')} | ${stables.map(() => '---').join(' | ')} |`,
    ...SCENARIOS.map(
      (s) =>
        `| ${s} | ${contenders.map((c) => range(summary[c.name]![s])).join(' | ')} | ${stables
          .map((st) => `${(summary[`minipaas-stable${st}`]![s].median / summary.docker![s].median).toFixed(2)}x`)
          .join(' | ')} |`,
    ),
    ``,
    `MiniPaaS from the release recorded (the CLI's start-up, environment load and checks left out) to the exit; the`,
    `difference to the table above is the CLI's part:`,
    ``,
    `| scenario | ${stables.map((st) => `minipaas-stable${st}`).join(' | ')} | ${stables.map((st) => `ratio stable${st} / docker`).join(' | ')} |`,
    `| --- | ${stables.map(() => '---').join(' | ')} | ${stables.map(() => '---').join(' | ')} |`,
    ...SCENARIOS.map(
      (s) =>
        `| ${s} | ${stables.map((st) => range(afterSubmit[`minipaas-stable${st}`]![s])).join(' | ')} | ${stables
          .map((st) => `${(afterSubmit[`minipaas-stable${st}`]![s].median / summary.docker![s].median).toFixed(2)}x`)
          .join(' | ')} |`,
    ),
    ``,
    `docker after the change, \`service ls\` n/n alone (the old task still counts as running, so this says nothing about the`,
    `update): ${range(naive)}.`,
    ``,
    `Targets (issue 9): MiniPaaS at most 1.2x the docker CLI on create and change; a no-op deploy under 1 s.`,
    ``,
    `| contender | create ratio | change ratio | no-op |`,
    `| --- | --- | --- | --- |`,
    ...targets.map(
      (t) =>
        `| ${t.contender} | ${t.createRatio.toFixed(2)}x ${t.createRatio <= 1.2 ? 'met' : 'missed'} | ${t.changeRatio.toFixed(2)}x ${t.changeRatio <= 1.2 ? 'met' : 'missed'} | ${fmt(t.noopMs)} ${t.noopMs < 1000 ? 'met' : 'missed'} |`,
    ),
    ``,
    `## Where MiniPaaS's time goes`,
    ``,
    `Median ms from the spawn of \`mp deploy\` to each milestone: the operation created (release recorded), started (agent`,
    `claimed it), its steps' events (first \`progress\`, \`lastProgress\`, \`converged\`), finished, and the process's exit.`,
    ``,
    ...Object.entries(timelines).flatMap(([name, byScenario]) => [
      `| ${name} | milestones (ms) |`,
      `| --- | --- |`,
      ...SCENARIOS.map((s) => `| ${s} | ${Object.entries(byScenario[s]).map(([k, v]) => `${k} ${Math.round(v)}`).join(', ')} |`),
      ``,
    ]),
  ].join('\n');
  const result = { date, command, image, services: serviceCount, dockerPollMs, engine, node: process.version, server: info, summary, dockerChangeNaive: naive, afterSubmit, targets, timelines, samples: Object.fromEntries(samples) };
  await mkdir(values.out!, { recursive: true });
  await writeFile(join(values.out!, `${values.name}.json`), JSON.stringify(result, null, 2) + '\n');
  await writeFile(join(values.out!, `${values.name}.md`), md);
  process.stdout.write(md);
} finally {
  await agent?.stop();
  for (const stack of stacks) await removeStack(stack).catch(() => {});
  await pool.end();
  await agentPool.end();
  await db.drop();
  await server.stop();
  rmSync(work, { recursive: true, force: true });
}
