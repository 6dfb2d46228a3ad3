/**
 * `mp`: wires the commander program to the command modules in `cli/commands/`. Each module exports a
 * zod `options` schema and `run(ctx, opts)`; this file only declares arguments and flags, validates
 * what the user typed against the schema, builds the context and hands any error to `reportError`.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import type { z } from 'zod';
import * as migrate from './commands/migrate.ts';
import * as queueLs from './commands/queue/ls.ts';
import * as queuePeek from './commands/queue/peek.ts';
import * as queuePurge from './commands/queue/purge.ts';
import * as queueRetryDead from './commands/queue/retry-dead.ts';
import * as queueStats from './commands/queue/stats.ts';
import * as streamGroups from './commands/stream/groups.ts';
import * as streamLs from './commands/stream/ls.ts';
import * as streamTail from './commands/stream/tail.ts';
import { createContext, type Context, type Writer } from './context.ts';
import { parseInput, reportError } from './errors.ts';

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
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
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
    .version(packageVersion(), '--version', 'print the version of mp')
    .exitOverride()
    .configureOutput({ writeOut: (s) => void io.stdout.write(s), writeErr: (s) => void io.stderr.write(s) });

  /** Adds a command whose action validates its input, then calls `module.run`. */
  function leaf<S extends z.ZodType>(
    parent: Command,
    spec: string,
    description: string,
    module: CommandModule<S>,
    settings: { interruptible?: boolean } = {},
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
      const opts = parseInput(module.options, raw, fullName(self), labels);

      // Only long-running commands take over Ctrl-C (to stop cleanly); the others die as usual.
      const interrupt = new AbortController();
      const onSigint = (): void => interrupt.abort();
      if (settings.interruptible) process.once('SIGINT', onSigint);
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
        process.removeListener('SIGINT', onSigint);
        await ctx.close();
      }
    });
    return cmd;
  }

  leaf(program, 'migrate', 'apply the SQL migrations the database does not have yet', migrate);

  const queue = program.command('queue').description('inspect and manage durable queues');
  leaf(queue, 'ls', 'list queues with their job counts', queueLs);
  leaf(queue, 'stats', 'job counts of one queue', queueStats).argument('<queue>', 'queue name');
  leaf(queue, 'peek', 'show the next waiting jobs without claiming them', queuePeek)
    .argument('<queue>', 'queue name')
    .option('--limit <n>', 'how many jobs to show', '10')
    .option('--dead', 'show dead letters (jobs that ran out of attempts) instead');
  leaf(queue, 'retry-dead', 'move dead letters back to the queue for another round of attempts', queueRetryDead)
    .argument('<queue>', 'queue name')
    .option('--id <ids...>', 'only these dead job ids (default: all of the queue)');
  leaf(queue, 'purge', 'delete the waiting and scheduled jobs and dead letters of a queue (running jobs finish)', queuePurge)
    .argument('<queue>', 'queue name')
    .option('--yes', 'really delete them');

  const stream = program.command('stream').description('inspect durable streams');
  leaf(stream, 'ls', 'list streams with their event counts and positions', streamLs);
  leaf(stream, 'tail', 'print events of a stream; with --follow, keep printing new ones', streamTail, {
    interruptible: true,
  })
    .argument('<stream>', 'stream name')
    .option('--from <pos>', 'start at this position')
    .option('--last <n>', 'start with the last n events (default 10)')
    .option('--follow', 'keep printing new events until interrupted (Ctrl-C)');
  leaf(stream, 'groups', 'consumer groups with their positions and lag', streamGroups).argument(
    '[stream]',
    'only the groups of this stream',
  );

  // Usage errors end with a pointer to the right help, e.g. `mp queue peek --help`.
  const withHelpHints = (cmd: Command): void => {
    cmd.showHelpAfterError(`hint: run \`${fullName(cmd)} --help\` for usage`);
    cmd.commands.forEach(withHelpHints);
  };
  withHelpHints(program);

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
