/**
 * `mp`: wires the commander program to the command modules in `cli/commands/`. Each module exports a
 * zod `options` schema and `run(ctx, opts)`; this file only declares arguments and flags, validates
 * what the user typed against the schema, builds the context and hands any error to `reportError`.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import type { z } from 'zod';
import type { Context, Writer } from './context.ts';
import { parseInput, reportError } from './errors.ts';

/**
 * The command modules, each imported only when its command runs: `mp --version` and `mp --help` load no
 * database, Docker or SSH code (the CLI's start-up budget is 150 ms).
 */
const commands = {
  agent: () => import('./commands/agent.ts'),
  codeInit: () => import('./commands/code/init.ts'),
  deployBuild: () => import('./commands/deploy/build.ts'),
  deployDiff: () => import('./commands/deploy/diff.ts'),
  deployHistory: () => import('./commands/deploy/history.ts'),
  deployRollout: () => import('./commands/deploy/rollout.ts'),
  deployShow: () => import('./commands/deploy/show.ts'),
  deployStatus: () => import('./commands/deploy/status.ts'),
  rollback: () => import('./commands/rollback.ts'),
  agentInstall: () => import('./commands/agent/install.ts'),
  dbRoles: () => import('./commands/db/roles.ts'),
  dev: () => import('./commands/dev.ts'),
  envCreate: () => import('./commands/env/create.ts'),
  envLs: () => import('./commands/env/ls.ts'),
  migrate: () => import('./commands/migrate.ts'),
  nodesLs: () => import('./commands/nodes/ls.ts'),
  nodesActivate: () => import('./commands/nodes/activate.ts'),
  nodesDrain: () => import('./commands/nodes/drain.ts'),
  nodesRm: () => import('./commands/nodes/rm.ts'),
  opsCancel: () => import('./commands/ops/cancel.ts'),
  opsKinds: () => import('./commands/ops/kinds.ts'),
  opsLs: () => import('./commands/ops/ls.ts'),
  opsRetry: () => import('./commands/ops/retry.ts'),
  opsShow: () => import('./commands/ops/show.ts'),
  opsSubmit: () => import('./commands/ops/submit.ts'),
  opsTail: () => import('./commands/ops/tail.ts'),
  queueCompact: () => import('./commands/queue/compact.ts'),
  queueLs: () => import('./commands/queue/ls.ts'),
  queuePeek: () => import('./commands/queue/peek.ts'),
  queuePurge: () => import('./commands/queue/purge.ts'),
  queueRetryDead: () => import('./commands/queue/retry-dead.ts'),
  queueStats: () => import('./commands/queue/stats.ts'),
  streamGroups: () => import('./commands/stream/groups.ts'),
  streamLs: () => import('./commands/stream/ls.ts'),
  streamTail: () => import('./commands/stream/tail.ts'),
  secretCreate: () => import('./commands/secret/create.ts'),
  secretLs: () => import('./commands/secret/ls.ts'),
  secretDelete: () => import('./commands/secret/delete.ts'),
  secretPrune: () => import('./commands/secret/prune.ts'),
  secretRotateKey: () => import('./commands/secret/rotate-key.ts'),
  configCreate: () => import('./commands/config/create.ts'),
  configLs: () => import('./commands/config/ls.ts'),
  configDelete: () => import('./commands/config/delete.ts'),
  configPrune: () => import('./commands/config/prune.ts'),
} satisfies Record<string, () => Promise<CommandModule<z.ZodType>>>;

/** What a command module exports. */
interface CommandModule<S extends z.ZodType> {
  options: S;
  run(ctx: Context, opts: z.output<S>): Promise<void>;
}

/** The process around `main`: injected so tests can run the whole CLI in-process. */
export interface MainIo {
  stdout: Writer;
  stderr: Writer;
  env: Record<string, string | undefined>;
}

interface GlobalOptions {
  databaseUrl?: string;
  json?: boolean;
  verbose?: boolean;
}

/** The package version, for `mp --version`. */
function packageVersion(): string {
  // The sources sit one folder below package.json, the build (dist/cli/) two.
  for (const path of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(path, import.meta.url), 'utf8')) as { name?: string; version: string };
      if (pkg.name === 'minipaas') return pkg.version;
    } catch {
      // not this folder
    }
  }
  return 'unknown';
}

/** `mp queue peek`, from the command and its parents. */
function fullName(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/**
 * Runs `mp` with `argv` (`process.argv` shape: node, script, args...) and returns the exit code.
 *
 * @example
 *   process.exitCode = await main(process.argv);
 */
export async function main(argv: string[], io: MainIo = processIo()): Promise<number> {
  const program = new Command('mp')
    .description('MiniPaaS: durable queues and streams in PostgreSQL, and the platform built on them')
    .option('--database-url <url>', 'PostgreSQL connection string (default: $DATABASE_URL)')
    .option('--json', 'print JSON for scripts instead of tables')
    .option('--verbose', 'print stack traces with errors')
    // Not commander's .version(): a program option is matched after the subcommand too, so it would take
    // the `--version` of `mp code init`, `mp secret delete` and `mp config delete`. Handled below instead.
    .addHelpText('after', '\nmp --version prints the version of mp.')
    .exitOverride()
    .configureOutput({ writeOut: (s) => void io.stdout.write(s), writeErr: (s) => void io.stderr.write(s) });

  /** Adds a command whose action validates its input, then calls `module.run`. */
  function leaf<S extends z.ZodType>(
    parent: Command,
    spec: string,
    description: string,
    load: () => Promise<CommandModule<S>>,
    settings: { stopOn?: NodeJS.Signals[] } = {},
  ): Command {
    const cmd = parent.command(spec).description(description);
    cmd.action(async (...args: unknown[]) => {
      const self = args.at(-1) as Command;
      const globals = self.optsWithGlobals<GlobalOptions>();
      const raw: Record<string, unknown> = { ...self.opts() };
      const labels: Record<string, string> = {};
      self.registeredArguments.forEach((arg, i) => {
        if (args[i] !== undefined) raw[arg.name()] = args[i];
        labels[arg.name()] = arg.name();
      });
      for (const opt of self.options) labels[opt.attributeName()] = opt.long ?? opt.flags;
      const [module, { createContext }] = await Promise.all([load(), import('./context.ts')]);
      const opts = parseInput(module.options, raw, fullName(self), labels);

      // Only long-running commands take over Ctrl-C (and `mp agent`/`mp dev` SIGTERM) to stop cleanly;
      // the others die as usual. `once`: a second Ctrl-C while stopping kills at once.
      const interrupt = new AbortController();
      const onSignal = (): void => interrupt.abort();
      for (const signal of settings.stopOn ?? []) process.once(signal, onSignal);
      const ctx = createContext({
        stdout: io.stdout,
        stderr: io.stderr,
        json: globals.json ?? false,
        databaseUrl: globals.databaseUrl || io.env.DATABASE_URL || undefined,
        signal: interrupt.signal,
      });
      try {
        await module.run(ctx, opts);
      } finally {
        for (const signal of settings.stopOn ?? []) process.removeListener(signal, onSignal);
        await ctx.close();
      }
    });
    return cmd;
  }

  leaf(program, 'migrate', 'apply the SQL migrations the database does not have yet', commands.migrate);

  const queue = program.command('queue').description('inspect and manage durable queues');
  leaf(queue, 'ls', 'list queues with their job counts', commands.queueLs);
  leaf(queue, 'stats', 'job counts of one queue', commands.queueStats).argument('<queue>', 'queue name');
  leaf(queue, 'peek', 'show the next waiting jobs without claiming them', commands.queuePeek)
    .argument('<queue>', 'queue name')
    .option('--limit <n>', 'how many jobs to show', '10')
    .option('--dead', 'show dead letters (jobs that ran out of attempts) instead');
  leaf(queue, 'retry-dead', 'move dead letters back to the queue for another round of attempts', commands.queueRetryDead)
    .argument('<queue>', 'queue name')
    .option('--id <ids...>', 'only these dead job ids (default: all of the queue)');
  leaf(queue, 'purge', 'delete the waiting and scheduled jobs and dead letters of a queue (running jobs finish)', commands.queuePurge)
    .argument('<queue>', 'queue name')
    .option('--yes', 'really delete them');
  leaf(queue, 'compact', 'give back the space a drained backlog left in the hot table mp.jobs (rewrites it when mostly empty)', commands.queueCompact)
    .option('--force', 'rewrite even when the table is not bloated (never above --max-live-rows)')
    .option('--max-live-rows <n>', 'never rewrite with more live jobs than this', '10000')
    .option('--lock-timeout <ms>', 'give up when mp.jobs is busy for longer than this', '250');

  const stream = program.command('stream').description('inspect durable streams');
  leaf(stream, 'ls', 'list streams with their event counts and positions', commands.streamLs);
  leaf(stream, 'tail', 'print events of a stream; with --follow, keep printing new ones', commands.streamTail, {
    stopOn: ['SIGINT'],
  })
    .argument('<stream>', 'stream name')
    .option('--from <pos>', 'start at this position')
    .option('--last <n>', 'start with the last n events (default 10)')
    .option('--follow', 'keep printing new events until interrupted (Ctrl-C)');
  leaf(stream, 'groups', 'consumer groups with their positions and lag', commands.streamGroups).argument(
    '[stream]',
    'only the groups of this stream',
  );

  const ops = program.command('ops').description('submit operations (intents) and follow, inspect, cancel or retry them');
  leaf(ops, 'submit', 'submit an operation and follow its events until it ends (exit 0 when it succeeded)', commands.opsSubmit, {
    stopOn: ['SIGINT'],
  })
    .argument('<kind>', 'operation kind, e.g. docker.info (`mp ops kinds` lists them)')
    .option('--env <env>', 'environment the operation belongs to (its operations run one at a time, in order)')
    .option('--target <target>', "which agents may run it: manager, any, provisioner or node:<name> (default: the kind's)")
    .option('--payload <json>', 'the payload, a JSON object (default {})')
    .option('--idempotency-key <key>', 'submitting the same key again returns the first operation instead of a new one')
    .option('--detach', 'print the id and return at once instead of following')
    .option('--dry-run', 'print what it would do now, read from the local Docker engine, without submitting');
  leaf(ops, 'ls', 'list operations, newest first', commands.opsLs)
    .option('--status <status>', 'only this status: queued, running, succeeded, failed, cancelled')
    .option('--env <env>', 'only this environment')
    .option('--kind <kind>', 'only this kind')
    .option('--limit <n>', 'how many to show', '20');
  leaf(ops, 'show', 'one operation: its row, result or error, and all its events', commands.opsShow).argument('<id>', 'operation id');
  leaf(ops, 'tail', 'print the events of an operation and follow it until it ends', commands.opsTail, { stopOn: ['SIGINT'] }).argument(
    '<id>',
    'operation id',
  );
  leaf(ops, 'cancel', 'cancel a queued operation, or ask a running one to stop at its next safe point', commands.opsCancel).argument(
    '<id>',
    'operation id',
  );
  leaf(ops, 'retry', 'queue a failed or cancelled operation again and follow it', commands.opsRetry, { stopOn: ['SIGINT'] })
    .argument('<id>', 'operation id')
    .option('--detach', 'print the id and return at once instead of following');
  leaf(ops, 'kinds', 'the operation kinds agents can run, with target and an example payload', commands.opsKinds);

  const nodes = program.command('nodes').description('the nodes (agents) of the cluster');
  leaf(nodes, 'ls', 'list nodes: role, alive, last heartbeat, version, running operations', commands.nodesLs);
  leaf(nodes, 'drain', "move a swarm node's tasks elsewhere and wait until they have", commands.nodesDrain, { stopOn: ['SIGINT'] })
    .argument('<node>', 'node hostname or id')
    .option('--timeout <seconds>', 'how long to wait for the tasks to move', '120')
    .option('--detach', 'return once submitted');
  leaf(nodes, 'activate', 'let Swarm schedule tasks on a node again', commands.nodesActivate, { stopOn: ['SIGINT'] })
    .argument('<node>', 'node hostname or id')
    .option('--timeout <seconds>', 'how long to wait', '120')
    .option('--detach', 'return once submitted');
  leaf(nodes, 'rm', 'remove a node from the swarm (drain it first, or --force)', commands.nodesRm, { stopOn: ['SIGINT'] })
    .argument('<node>', 'node hostname or id')
    .option('--force', 'remove a node that is still up');

  const env = program.command('env').description('environments: namespaces for operations, each run in order');
  leaf(env, 'create', 'create an environment (nothing happens if it exists)', commands.envCreate).argument('<name>', 'environment name');
  leaf(env, 'ls', 'list environments with their operation counts', commands.envLs);

  const db = program.command('db').description('database administration');
  leaf(db, 'roles', 'create the roles mp_cli, mp_agent and mp_app (or refresh their grants) and list them', commands.dbRoles);

  // Environments and deploys: --env names an environment directory (DIR/minipaas.yaml).
  const envDir = '--env <dir>';
  const envDirHelp = 'environment directory holding minipaas.yaml';
  const code = program.command('code').description('scaffold environments and their Compose files');
  for (const parent of [code, program]) {
    leaf(parent, 'init', 'write DIR/minipaas.yaml naming the Compose files, and register the environment', commands.codeInit)
      .requiredOption(envDir, envDirHelp)
      .option('--files <files...>', 'Compose files, loaded in order', ['compose.yaml'])
      .option('--stack <name>', 'stack name (default: the directory name)')
      .option('--version <version>', 'deploy.version: the image tag, ${VERSION} in the Compose files');
  }
  // Marking services as workers, jobs and cron jobs (issue 12); loaders inline.
  leaf(code, 'worker', 'mark services as workers in the first Compose file defining each: no ports, restart on failure', () => import('./commands/code/worker.ts'))
    .requiredOption(envDir, envDirHelp)
    .argument('<services...>', 'the services, e.g. worker emails_worker');
  leaf(code, 'job', 'mark services as job templates (a deploy does not start them; mp job run and pre_deploy run them)', () => import('./commands/code/job.ts'))
    .requiredOption(envDir, envDirHelp)
    .argument('<services...>', 'the services, e.g. migrate')
    .option('--timeout <seconds>', 'seconds one run may take (default 600)');
  leaf(code, 'cron', 'mark services as cron jobs with a schedule (and overlap, time zone, catch-up policies)', () => import('./commands/code/cron.ts'))
    .requiredOption(envDir, envDirHelp)
    .argument('<services...>', 'the services, e.g. cleanup')
    .requiredOption('--cron <expression>', 'five fields or a macro, e.g. "*/5 * * * *" or @hourly')
    .option('--overlap <policy>', 'a tick while the last run still runs: allow, forbid (default: skip it) or replace')
    .option('--tz <zone>', 'IANA time zone of the schedule, e.g. Europe/Berlin (default UTC)')
    .option('--catch-up <policy>', 'ticks missed while no agent ran: latest (default: run the latest once) or none')
    .option('--timeout <seconds>', 'seconds one run may take (default 600)');
  const rolloutOptions = (cmd: Command): Command =>
    cmd
      .requiredOption(envDir, envDirHelp)
      .option('--dry-run', 'print what would be created, updated (field by field) and removed, without submitting')
      .option('--detach', 'print the release and operation and return instead of following')
      .option('--build', 'run `mp deploy build` first; deploy nothing if it fails')
      .option('--wait', 'when a canary is live, wait until it is promoted or aborted instead of refusing')
      .option('--wait-timeout <seconds>', 'how long --wait waits (default 900)');
  const deployCmd = rolloutOptions(
    leaf(program, 'deploy', 'deploy an environment: record a release and converge the stack to it (waits until it runs)', commands.deployRollout, {
      stopOn: ['SIGINT'],
    }),
  );
  // Commander lets `mp deploy` read its own options (--env, --dry-run, --detach) wherever they appear, also
  // after a verb: `mp deploy build --env X` would leave build's --env unset. A verb gets them back here.
  deployCmd.hook('preSubcommand', (parent, verb) => {
    for (const option of verb.options) {
      const key = option.attributeName();
      if (parent.getOptionValueSource(key) === 'cli' && verb.getOptionValue(key) === undefined) verb.setOptionValueWithSource(key, parent.getOptionValue(key), 'cli');
    }
  });
  rolloutOptions(leaf(deployCmd, 'rollout', 'the same as `mp deploy` (the original\'s verb)', commands.deployRollout, { stopOn: ['SIGINT'] }));
  leaf(deployCmd, 'build', "build every service with build: on the environment's engine, push it to registry: and record the digests the next deploy uses", commands.deployBuild, {
    stopOn: ['SIGINT'],
  })
    .requiredOption(envDir, envDirHelp)
    .option('--dry-run', 'print what would be built, tagged and pushed, without building');
  leaf(deployCmd, 'history', 'the releases of an environment, newest first', commands.deployHistory)
    .requiredOption(envDir, envDirHelp)
    .option('--limit <n>', 'how many', '20');
  leaf(deployCmd, 'show', 'one release: who, when, outcome, images and full spec', commands.deployShow)
    .argument('<version>', 'release version')
    .requiredOption(envDir, envDirHelp);
  leaf(deployCmd, 'diff', 'field-by-field difference of two releases (default: the last one against the directory now)', commands.deployDiff)
    .argument('[from]', 'release version (default: the last release)')
    .argument('[to]', 'release version (default: what the directory would deploy now)')
    .requiredOption(envDir, envDirHelp);
  leaf(deployCmd, 'status', "each service's tasks and update state, and drift from the last release", commands.deployStatus).requiredOption(envDir, envDirHelp);
  // Canaries (docs/routing.md "Canary"): the new version of one service beside the current one.
  leaf(deployCmd, 'canary', "run the files' new version of SERVICE beside the current one with N replicas (traffic split by replicas) until promote or abort", () => import('./commands/deploy/canary.ts'), {
    stopOn: ['SIGINT'],
  })
    .argument('<service>', 'the Compose service, e.g. api')
    .requiredOption(envDir, envDirHelp)
    .option('--replicas <n>', 'replicas of the canary (a positive whole number)', '1')
    .option('--detach', 'return once submitted instead of following');
  for (const [verb, help, load] of [
    ['promote', "roll the main service to its canary's version (a deploy release) and remove the canary", () => import('./commands/deploy/promote.ts')],
    ['abort', 'remove the canary; only the current version answers', () => import('./commands/deploy/abort.ts')],
  ] as const) {
    leaf(deployCmd, verb, help, load, { stopOn: ['SIGINT'] })
      .argument('[service]', 'the service whose canary it is (default: the only canary)')
      .requiredOption(envDir, envDirHelp)
      .option('--detach', 'return once submitted instead of following');
  }
  leaf(program, 'rollback', 're-apply a recorded release exactly (images, secrets, configs), as a new release', commands.rollback, { stopOn: ['SIGINT'] })
    .requiredOption(envDir, envDirHelp)
    .option('--to <version>', 'the release to restore (default: the succeeded one before the current)')
    .option('--detach', 'return once submitted instead of following');

  // Secrets (sealed to the cluster key) and configs of an environment directory; docs/secrets.md.
  const collect = (v: string, all: string[] | undefined): string[] => [...(all ?? []), v];
  const secret = program.command('secret').description('secrets of an environment: sealed here, opened only by manager agents, versioned by content');
  leaf(secret, 'create', 'store a secret read from stdin (or --from-file), sealed, and create its Swarm secret', commands.secretCreate, { stopOn: ['SIGINT'] })
    .requiredOption('--env <dir>', 'environment directory holding minipaas.yaml')
    .requiredOption('--name <name>', 'secret name, as the Compose files refer to it')
    .option('--for <service>', 'make this service use it (patches the first Compose file defining it); repeatable', collect, [])
    .option('--from-file <file>', 'read the value from this file instead of stdin')
    .option('--deploy', 'deploy the environment afterwards, moving its services to the new version')
    .option('--detach', 'return once submitted instead of following');
  leaf(secret, 'ls', "the versions of the environment's secrets, current first (never a value)", commands.secretLs)
    .requiredOption('--env <dir>', 'environment directory holding minipaas.yaml')
    .option('--all', 'also deleted versions');
  leaf(secret, 'delete', 'delete a secret (every version, or --version ones) and remove it from Swarm', commands.secretDelete, { stopOn: ['SIGINT'] })
    .requiredOption('--env <dir>', 'environment directory holding minipaas.yaml')
    .requiredOption('--name <name>', 'secret name')
    .option('--version <version>', 'only this version; repeatable', collect)
    .option('--detach', 'return once submitted instead of following');
  leaf(secret, 'prune', 'list secret versions no recent release uses; --delete removes them', commands.secretPrune, { stopOn: ['SIGINT'] })
    .requiredOption('--env <dir>', 'environment directory holding minipaas.yaml')
    .option('--keep <n>', 'keep what the last n releases use', '5')
    .option('--delete', 'delete them')
    .option('--detach', 'return once submitted instead of following');
  leaf(secret, 'rotate-key', 'make a new cluster key, re-seal every secret to it, destroy the old private key', commands.secretRotateKey, { stopOn: ['SIGINT'] })
    .option('--detach', 'return once submitted instead of following');
  const config = program.command('config').description('configs of an environment: files versioned by content, created as Swarm configs');
  leaf(config, 'create', 'store a config file and create its Swarm config', commands.configCreate, { stopOn: ['SIGINT'] })
    .argument('<file>', 'the file whose content the config holds')
    .requiredOption('--env <dir>', 'environment directory holding minipaas.yaml')
    .requiredOption('--name <name>', 'config name, as the Compose files refer to it')
    .option('--for <service>', 'make this service use it (patches the first Compose file defining it); repeatable', collect, [])
    .option('--deploy', 'deploy the environment afterwards')
    .option('--detach', 'return once submitted instead of following');
  leaf(config, 'ls', "the versions of the environment's configs, current first", commands.configLs)
    .requiredOption('--env <dir>', 'environment directory holding minipaas.yaml')
    .option('--all', 'also deleted versions');
  leaf(config, 'delete', 'delete a config (every version, or --version ones) and remove it from Swarm', commands.configDelete, { stopOn: ['SIGINT'] })
    .requiredOption('--env <dir>', 'environment directory holding minipaas.yaml')
    .requiredOption('--name <name>', 'config name')
    .option('--version <version>', 'only this version; repeatable', collect)
    .option('--detach', 'return once submitted instead of following');
  leaf(config, 'prune', 'list config versions no recent release uses; --delete removes them', commands.configPrune, { stopOn: ['SIGINT'] })
    .requiredOption('--env <dir>', 'environment directory holding minipaas.yaml')
    .option('--keep <n>', 'keep what the last n releases use', '5')
    .option('--delete', 'delete them')
    .option('--detach', 'return once submitted instead of following');
  // Registry credentials the nodes pull with, sealed like secrets (docs/deploy.md "Builds and registries"). Loaders inline.
  const registry = program.command('registry').description("credentials for the environment's registry: sealed here, given to Swarm by manager agents so every node can pull");
  leaf(registry, 'login', 'store credentials for a registry, the password read from stdin and sealed', () => import('./commands/registry/login.ts'))
    .requiredOption('--env <dir>', 'environment directory holding minipaas.yaml')
    .option('--registry <host>', "the registry host (default: minipaas.yaml's registry:)")
    .option('--username <user>', 'the user name (default: MP_REGISTRY_USERNAME)')
    .option('--password-stdin', 'read the password from stdin (the only way to give it)')
    .option('--no-verify', 'store without checking the login with the registry first');
  leaf(registry, 'logout', "delete the environment's credentials for a registry", () => import('./commands/registry/logout.ts'))
    .requiredOption('--env <dir>', 'environment directory holding minipaas.yaml')
    .option('--registry <host>', "the registry host (default: minipaas.yaml's registry:)");
  leaf(registry, 'ls', 'the registries the environment has credentials for (never a password)', () => import('./commands/registry/ls.ts'))
    .requiredOption('--env <dir>', 'environment directory holding minipaas.yaml');

  // Routing through Caddy, canaries and scaling (docs/routing.md). Loaders inline: this block is the routing area's.
  leaf(code, 'route', 'add or replace a route URL -> service:port in minipaas.yaml (and a safe rollout policy), or --rm one', () => import('./commands/code/route.ts'))
    .requiredOption(envDir, envDirHelp)
    .argument('[url]', 'http://HOST[:PORT][/PATH], https://..., or a bare HOST (https)')
    .argument('[target]', 'service:port, e.g. api:8080')
    .option('--rm <url>', 'remove the route of this URL')
    .option('--tls <mode>', 'https certificates: auto (ACME, the default) or internal (Caddy\'s own CA)');
  leaf(deployCmd, 'routing', "apply the environment's routes: converge its Caddy and load the routes through Caddy's admin API", () => import('./commands/deploy/routing.ts'), {
    stopOn: ['SIGINT'],
  })
    .requiredOption(envDir, envDirHelp)
    .option('--target <target>', 'the agent that runs it (default: manager; the node that runs Caddy)')
    .option('--detach', 'return once submitted instead of following');
  const routesCmd = program.command('routes').description('routes of an environment through its Caddy');
  leaf(routesCmd, 'ls', 'what Caddy serves now against what the environment says', () => import('./commands/routes/ls.ts')).requiredOption(envDir, envDirHelp);
  leaf(program, 'scale', 'set replica counts (api=3 worker=2) as one release derived from the current one, and wait until they run', () => import('./commands/scale.ts'), {
    stopOn: ['SIGINT'],
  })
    .requiredOption(envDir, envDirHelp)
    .argument('<counts...>', 'service=count pairs, e.g. api=3 worker=2')
    .option('--detach', 'return once submitted instead of following');

  // Provisioning (issue 13): certificates, a shell on the environment's Docker API, hosts over SSH, nodes.
  const certsHelp = 'all: CA, server and client; server: the Docker TLS API (names the managers); client: for the CLI';
  leaf(program, 'certs', 'make the CA, the Docker TLS API server certificate and the client certificate', () => import('./commands/certs.ts'))
    .argument('<what>', certsHelp)
    .option('--out <dir>', 'certificate directory (keys mode 0600)', '.certs')
    .option('--env <dir>', 'environment directory: the managers of its hosts and api.host go in the server certificate')
    .option('--inventory <file>', 'INI inventory instead of the environment\'s hosts')
    .option('--host <names...>', 'more host names or addresses for the server certificate');
  leaf(program, 'shell', "start $SHELL with DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH set from the environment's api", () => import('./commands/shell.ts'))
    .requiredOption('--env <dir>', 'environment directory holding minipaas.yaml')
    .option('--print', 'print export lines instead of starting a shell');
  leaf(program, 'provision', 'provision hosts over SSH into the swarm: one operation per host, a child operation per step (managers first)', () => import('./commands/provision.ts'), { stopOn: ['SIGINT'] })
    .argument('[host]', 'only this host (of the inventory, or a new one with --role)')
    .requiredOption('--env <dir>', 'environment directory holding minipaas.yaml (hosts:, provision:, monitoring:)')
    .option('--role <role>', 'manager or worker, for a host not in the inventory')
    .option('--address <address>', 'SSH address of that host (default: its name)')
    .option('--inventory <file>', 'INI inventory ([managers], [workers], [database]) instead of hosts:')
    .option('--accept-new-host-keys', 'accept and record (in mp.host_keys) the key of a host contacted for the first time')
    .option('--dry-run', 'print the operations and steps without submitting')
    .option('--detach', 'submit and return without following')
    .option('--timeout <seconds>', 'how long to follow', '1800');
  // End of provisioning.

  // Jobs and cron (issue 12): job templates of the current release, schedules, runs. Loaders inline: this block is the cron area's.
  const jobCmd = program.command('job').description('one-off jobs: job templates of the current release');
  leaf(jobCmd, 'run', "run a job template of the current release; streams its output and exits with the job's exit code", () => import('./commands/job/run.ts'), { stopOn: ['SIGINT'] })
    .requiredOption(envDir, envDirHelp)
    .argument('<job>', 'the job service (org.minipaas.kind: job) of the Compose files')
    .argument('[args...]', "after --: replaces the job's command")
    .option('--detach', 'return once submitted instead of following');
  const cronCmd = program.command('cron').description('cron jobs: schedules of the current release and their runs');
  leaf(cronCmd, 'ls', "each cron job: schedule, policies, next and last run, failures", () => import('./commands/cron/ls.ts')).requiredOption(envDir, envDirHelp);
  leaf(cronCmd, 'history', 'the runs of one cron job, newest first', () => import('./commands/cron/history.ts'))
    .requiredOption(envDir, envDirHelp)
    .argument('<job>', 'cron job')
    .option('--limit <n>', 'how many runs', '20');
  leaf(cronCmd, 'run', "run a cron job now, once; follows it and exits with the job's exit code", () => import('./commands/cron/run.ts'), { stopOn: ['SIGINT'] })
    .requiredOption(envDir, envDirHelp)
    .argument('<job>', 'cron job')
    .option('--detach', 'return once submitted instead of following');
  leaf(cronCmd, 'suspend', 'stop a cron job ticking (its ticks are recorded as skipped)', () => import('./commands/cron/suspend.ts'))
    .requiredOption(envDir, envDirHelp)
    .argument('<job>', 'cron job');
  leaf(cronCmd, 'resume', 'let a suspended cron job tick again, from now', () => import('./commands/cron/suspend.ts').then((m) => m.resume))
    .requiredOption(envDir, envDirHelp)
    .argument('<job>', 'cron job');
  // End of jobs and cron.

  const agentCmd = leaf(program, 'agent', 'run a node agent in the foreground: claims and executes operations until Ctrl-C/SIGTERM', commands.agent, {
    stopOn: ['SIGINT', 'SIGTERM'],
  })
    .option('--name <node>', 'node name (default: the host name)')
    .option('--provisioner', 'also claim provisioning operations (hosts reached over SSH)')
    .option('--concurrency <n>', 'operations run at once', '4');
  leaf(agentCmd, 'install', 'run the agent on every node of the swarm as a global service from the local image', commands.agentInstall)
    .option('--image <image>', 'the locally built agent image')
    .option('--database-url-for-agents <url>', 'the URL agents connect with, when it differs from the one used here')
    .option('--network <network>', 'network of the agent service', 'host')
    .option('--service-name <name>', 'name of the global service')
    .option('--cluster-key <file>', 'the cluster key file agents open secrets with (default: the installed one, or a new one)')
    .option('--dry-run', 'print what it would create or update, without doing it');

  leaf(program, 'dev', 'run MiniPaaS locally: embedded PostgreSQL (or DATABASE_URL), migrations, an agent on local Docker', commands.dev, {
    stopOn: ['SIGINT', 'SIGTERM'],
  })
    .option('--port <port>', 'port of the embedded PostgreSQL', '54329')
    .option('--data-dir <dir>', 'folder for the embedded PostgreSQL data (kept between runs)', '.mp/dev')
    .option('--name <node>', 'node name of the local agent (default: the host name)')
    .option('--no-example', 'do not build and deploy the example app (examples/hello)')
    .option('--app-port <port>', 'port the example app answers on', '8080');

  // Usage errors end with a pointer to the right help, e.g. `mp queue peek --help`.
  const withHelpHints = (cmd: Command): void => {
    cmd.showHelpAfterError(`hint: run \`${fullName(cmd)} --help\` for usage`);
    cmd.commands.forEach(withHelpHints);
  };
  withHelpHints(program);

  if (argv[2] === '--version') {
    io.stdout.write(`${packageVersion()}\n`);
    return 0;
  }
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version requested explicitly are successes; everything else commander rejects is usage.
      return err.code === 'commander.helpDisplayed' || err.code === 'commander.version' ? 0 : 2;
    }
    const verbose = program.opts<GlobalOptions>().verbose ?? argv.includes('--verbose');
    return reportError(err, { stderr: io.stderr, verbose });
  }
}

/** The real process: a closed pipe (`mp stream tail ... | head`) ends output quietly instead of crashing. */
function processIo(): MainIo {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  return { stdout: process.stdout, stderr: process.stderr, env: process.env };
}
