/** What a user sees when something is wrong: `error:`/`hint:` lines on stderr, exit codes, no stack traces. */
import { describe, expect, it } from 'vitest';
import { InputError, parseInput, reportError } from '../../cli/errors.ts';
import { options as peekOptions } from '../../cli/commands/queue/peek.ts';
import { queueName } from '../../cli/inputs.ts';
import { ConfigError, NotFoundError } from '../../sql/errors.ts';
import { lines, mp } from './harness.ts';

describe('mp errors (real binary)', () => {
  it('without DATABASE_URL or --database-url: exit 2, says how to get a database', async () => {
    const r = await mp(['queue', 'ls']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(lines(r.stderr)).toEqual([
      'error: no database URL: neither --database-url nor DATABASE_URL is set',
      'hint: set DATABASE_URL or pass --database-url; `npx mp dev` starts an embedded PostgreSQL',
    ]);
  });

  it('an invalid queue name is refused before connecting: one line naming the value and the rule', async () => {
    // The URL points nowhere: reaching the database would be exit 5, not 2.
    const r = await mp(['queue', 'peek', 'Bad-Name'], 'postgres://nobody@127.0.0.1:1/nowhere');
    expect(r.code).toBe(2);
    expect(lines(r.stderr)).toEqual([
      'error: invalid input for `mp queue peek`',
      '  queue: invalid queue name "Bad-Name": names match ^[a-z_][a-z0-9_]*$ and are at most 48 characters; did you mean "bad_name"?',
      'hint: run `mp queue peek --help` for usage',
    ]);
  });

  it('zod errors are `path: problem` lines under one error line, naming the flags the user typed', async () => {
    const r = await mp(['stream', 'tail', 'events', '--last', 'ten'], 'postgres://nobody@127.0.0.1:1/nowhere');
    expect(r.code).toBe(2);
    expect(lines(r.stderr)).toEqual([
      'error: invalid input for `mp stream tail`',
      '  --last: must be a positive integer, got "ten"',
      'hint: run `mp stream tail --help` for usage',
    ]);
    expect(r.stderr).not.toMatch(/\bat .*\.ts:\d+/);
  });

  it('commander usage errors exit 2 and point at the help', async () => {
    const missing = await mp(['queue', 'stats']);
    expect(missing.code).toBe(2);
    expect(lines(missing.stderr)).toEqual([
      "error: missing required argument 'queue'",
      'hint: run `mp queue stats --help` for usage',
    ]);
    const unknown = await mp(['queue', 'peek', 'emails', '--limt', '3']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^error: unknown option '--limt'/);
  });

  it('purge without --yes is refused with a hint to add it', async () => {
    const r = await mp(['queue', 'purge', 'emails'], 'postgres://nobody@127.0.0.1:1/nowhere');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error: refusing to purge queue "emails" without confirmation/);
    expect(r.stderr).toMatch(/\nhint: add --yes: mp queue purge emails --yes\n$/);
  });

  it('--verbose adds the stack trace', async () => {
    const r = await mp(['--verbose', 'queue', 'ls']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error: no database URL/);
    expect(r.stderr).toMatch(/ConfigError: no database URL[^\n]*\n\s+at /);
  });

  it('--help and --version exit 0', async () => {
    const r = await mp(['queue', 'peek', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Usage: mp queue peek \[options\] <queue>/);
    const v = await mp(['--version']);
    expect(v.code).toBe(0);
    expect(v.stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
  });
});

describe('reportError', () => {
  function report(err: unknown, verbose = false): { code: number; text: string } {
    let text = '';
    const code = reportError(err, { stderr: { write: (s: string) => (text += s) }, verbose });
    return { code, text };
  }

  it('prints a MiniPaasError as error + hint with its class exit code', () => {
    expect(report(new NotFoundError('MP002', 'unknown queue "x"', 'create it'))).toEqual({
      code: 3,
      text: 'error: unknown queue "x"\nhint: create it\n',
    });
  });

  it('maps a custom SQLSTATE from pg to its class, keeping the SQL message and hint', () => {
    const pgError = Object.assign(new Error('unknown stream "evnts"'), { code: 'MP005', hint: 'did you mean "events"?' });
    expect(report(pgError)).toEqual({ code: 3, text: 'error: unknown stream "evnts"\nhint: did you mean "events"?\n' });
  });

  it('an unexpected error says so, exit 1, and points at --verbose instead of dumping a stack', () => {
    const { code, text } = report(new TypeError('boom'));
    expect(code).toBe(1);
    expect(text).toBe('error: boom\nhint: this is unexpected; run with --verbose for details\n');
  });

  it('parseInput collects every problem, labelled with what the user typed', () => {
    const err = (() => {
      try {
        parseInput(peekOptions, { queue: 'ok', limit: '-1' }, 'mp queue peek', { limit: '--limit' });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(InputError);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as InputError).problems).toEqual([{ path: '--limit', problem: 'must be a positive integer, got "-1"' }]);
  });
});

describe('name validation', () => {
  it('suggests the near miss when one exists, an example otherwise', () => {
    expect(queueName.safeParse('emails').success).toBe(true);
    expect(queueName.safeParse('Order-Events').error?.issues[0]?.message).toMatch(/did you mean "order_events"\?$/);
    expect(queueName.safeParse('9lives').error?.issues[0]?.message).toMatch(/e\.g\. "emails"$/);
    expect(queueName.safeParse('a'.repeat(49)).success).toBe(false);
  });
});
