/**
 * Redaction: the agent never reports a secret's value. Every value an agent opens (a managed secret of
 * the environment it works on, a file-based secret of a release) is registered here, in memory, and
 * every step message, event data, error, result and log line the agent writes passes through
 * `redact` first, so a task that prints its password in a log the deploy quotes shows `[redacted]`.
 *
 * What is matched, for each value:
 * - the value itself, anywhere in a line; and each line of a multi-line value (a PEM key), since logs
 *   are split into lines;
 * - its base64 (standard and URL-safe, padded or not), and the stable middle of its base64 at each of
 *   the three alignments it can have inside a longer base64 text (a secret inside an encoded blob);
 * - nothing shorter than `MIN_REDACTED_LENGTH` characters: replacing every "on" or "42" in the output
 *   would shred ordinary text, and the pattern of the replacements would itself spell out the value.
 *   Shorter secrets are still never printed by MiniPaaS; `mp secret create` warns about them.
 *
 * Values stay in the agent's memory for its lifetime (they must, to be matched); an agent restart
 * forgets them, and the next operation registers its environment's values again.
 *
 * @example
 *   const r = new Redactor();
 *   r.add(Buffer.from('s3cret-value'));
 *   r.redact('login with s3cret-value'); // 'login with [redacted]'
 */
import type pg from 'pg';
import { openValue, type ClusterKeys } from '../sql/control/sealing.ts';
import type { Json, Logger } from './executors/types.ts';

/** What a redacted value is replaced by. */
export const REDACTED = '[redacted]';

/** Values (and their encodings) shorter than this are not matched; see the module comment. */
export const MIN_REDACTED_LENGTH = 4;

/** Base64 fragments shorter than this are not matched: short fragments occur by chance in any base64. */
const MIN_BASE64_FRAGMENT = 8;

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Every form of `value` to match (see the module comment). */
export function formsOf(value: Buffer): string[] {
  const text = value.toString('utf8');
  // A short value's encodings are as short and as common: none of them is matched either.
  if (text.length < MIN_REDACTED_LENGTH) return [];
  const forms = new Set<string>();
  const add = (s: string, min = MIN_REDACTED_LENGTH): void => {
    if (s.length >= min) forms.add(s);
  };
  add(text);
  for (const line of text.split(/\r?\n/)) add(line.trim());
  const b64 = value.toString('base64');
  add(b64);
  add(b64.replace(/=+$/, ''));
  add(value.toString('base64url'));
  // Inside a longer base64 text the value starts at byte offset 0, 1 or 2 of a 3-byte group: the
  // characters of groups holding only the value's bytes are the same whatever surrounds it.
  for (let k = 0; k < 3; k++) {
    const shifted = Buffer.concat([Buffer.alloc(k), value]).toString('base64');
    const start = k === 0 ? 0 : 4;
    const end = Math.floor((k + value.length) / 3) * 4;
    if (end > start) {
      const fragment = shifted.slice(start, end);
      add(fragment, MIN_BASE64_FRAGMENT);
      add(fragment.replace(/\+/g, '-').replace(/\//g, '_'), MIN_BASE64_FRAGMENT);
    }
  }
  return [...forms];
}

/** The set of values to redact, and the functions that apply it. */
export class Redactor {
  private readonly forms = new Set<string>();
  private pattern: RegExp | null = null;

  /** Registers a value (and its encodings). */
  add(value: Uint8Array | string): void {
    const buf = typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value);
    let grew = false;
    for (const f of formsOf(buf)) {
      if (!this.forms.has(f)) {
        this.forms.add(f);
        grew = true;
      }
    }
    // Longest first, so a value's base64 is not half-replaced by a shorter value inside it.
    if (grew) this.pattern = new RegExp([...this.forms].sort((a, b) => b.length - a.length).map(escapeRegExp).join('|'), 'g');
  }

  /** How many forms are registered (for tests and debug logs; never the forms themselves). */
  get size(): number {
    return this.forms.size;
  }

  /** `text` with every registered form replaced by `[redacted]`. */
  redact(text: string): string {
    return this.pattern ? text.replace(this.pattern, REDACTED) : text;
  }

  /** A JSON value with every string in it (keys too) redacted. */
  redactJson<T extends Json | undefined>(value: T): T {
    if (!this.pattern || value === undefined || value === null) return value;
    if (typeof value === 'string') return this.redact(value) as T;
    if (Array.isArray(value)) return value.map((v) => this.redactJson(v)) as T;
    if (typeof value === 'object') {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [this.redact(k), this.redactJson(v)])) as T;
    }
    return value;
  }

  /** A logger writing through `log`, with messages and data redacted. */
  logger(log: Logger): Logger {
    const wrap =
      (level: keyof Logger) =>
      (message: string, data?: Record<string, Json | undefined>): void =>
        log[level](this.redact(message), data === undefined ? undefined : this.redactJson(data));
    return { debug: wrap('debug'), info: wrap('info'), warn: wrap('warn'), error: wrap('error') };
  }
}

/** What an agent does with sealed values: open them for executors, and know its environments' values. */
export interface SecretScope {
  readonly redactor: Redactor;
  /** Opens a sealed value (registering it for redaction first); undefined when the agent has no key. */
  openSealed?: (sealed: string) => Promise<Buffer>;
  /**
   * Registers the values of every stored version of `environment`'s secrets, so they are redacted from
   * what an operation of that environment reports even when its executor never opens them (a task
   * that prints a managed secret it was given). Without a key, a no-op.
   */
  loadEnvironment(environment: string | null): Promise<void>;
}

/**
 * The agent's secret scope over its pool and key file. Each sealed value is opened once per agent
 * (cached by its row id); a value this agent cannot open (sealed to a key it does not hold) is logged
 * as a warning, without the value, and skipped.
 */
export function secretScope(opts: { pool: pg.Pool; keys?: ClusterKeys; log: Logger }): SecretScope {
  const redactor = new Redactor();
  const keys = opts.keys;
  if (!keys) return { redactor, loadEnvironment: async () => {} };
  const opened = new Set<string>();
  const openSealed = async (sealed: string): Promise<Buffer> => {
    const value = Buffer.from(await openValue(keys, sealed));
    redactor.add(value);
    return value;
  };
  return {
    redactor,
    openSealed,
    loadEnvironment: async (environment) => {
      if (!environment) return;
      const { rows } = await opts.pool.query<{ id: string; sealed: string }>(
        // Registry passwords (`mp registry login`) too: a deploy's engine errors could quote them.
        `select 's' || id as id, sealed from mp.secrets where environment = $1
         union all select 'r' || id, sealed from mp.registry_auths where environment = $1 order by id`,
        [environment],
      );
      for (const row of rows) {
        if (opened.has(row.id)) continue;
        try {
          (await openSealed(row.sealed)).fill(0);
          opened.add(row.id);
        } catch (err) {
          opts.log.warn('a stored secret cannot be opened with this agent\'s key, so it cannot be redacted', { secret: row.id, error: (err as Error).message });
        }
      }
    },
  };
}
