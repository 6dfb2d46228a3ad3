/**
 * zod schemas for the values users type on the command line, shared by the commands so every command
 * rejects a bad queue name or count with the same one-line message, before touching the database.
 */
import { z } from 'zod';

/** The rule `mp._check_name` enforces in SQL; checked here too so bad names never reach the database. */
export const NAME_PATTERN = /^[a-z_][a-z0-9_]*$/;
const NAME_MAX = 48;

/** A queue, stream or group name: `^[a-z_][a-z0-9_]*$`, at most 48 characters. */
export function nameOf(kind: 'queue' | 'stream' | 'group') {
  return z.string().check((ctx) => {
    const v = ctx.value;
    if (!NAME_PATTERN.test(v) || v.length > NAME_MAX) {
      // The near miss for the usual slips (capitals, dashes, dots): `Order-Events` -> `order_events`.
      const near = v.toLowerCase().replace(/[^a-z0-9_]/g, '_');
      const example = NAME_PATTERN.test(near) && near.length <= NAME_MAX ? `did you mean "${near}"?` : 'e.g. "emails"';
      ctx.issues.push({
        code: 'custom',
        input: v,
        message: `invalid ${kind} name ${JSON.stringify(v)}: names match ^[a-z_][a-z0-9_]*$ and are at most ${NAME_MAX} characters; ${example}`,
      });
    }
  });
}

export const queueName = nameOf('queue');
export const streamName = nameOf('stream');

/** Integer-looking text or a number, checked against `min`; commander hands options over as strings. */
function integerAtLeast(min: number, what: string) {
  return z.union([z.number(), z.string()]).transform((v, ctx) => {
    const n = typeof v === 'number' ? v : /^\s*\d+\s*$/.test(v) ? Number(v) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < min) {
      ctx.issues.push({ code: 'custom', input: v, message: `must be ${what}, got ${JSON.stringify(v)}` });
      return z.NEVER;
    }
    return n;
  });
}

/** A count such as `--limit` or `--last`: 1, 2, 3... */
export const positiveInt = integerAtLeast(1, 'a positive integer');

/** A stream position such as `--from`: 0, 1, 2... */
export const position = integerAtLeast(0, 'a non-negative integer');

/**
 * A bigint id (job id): digits only, kept as text so ids past 2^53 survive; PostgreSQL casts it.
 */
export const bigintId = z.union([z.number(), z.string()]).transform((v, ctx) => {
  const s = String(v).trim();
  if (!/^\d{1,19}$/.test(s) || /^0+$/.test(s)) {
    ctx.issues.push({ code: 'custom', input: v, message: `ids are positive integers, got ${JSON.stringify(v)}` });
    return z.NEVER;
  }
  return s;
});
