/**
 * zod schemas for the values users type on the command line, shared by the commands so every command
 * rejects a bad queue name or count with the same one-line message, before touching the database.
 */
import { z } from 'zod';

/** The rule `mp._check_name` enforces in SQL; checked here too so bad names never reach the database. */
export const NAME_PATTERN = /^[a-z_][a-z0-9_]*$/;
const NAME_MAX = 48;

/** A queue, stream or group name: `^[a-z_][a-z0-9_]*$`, at most 48 characters. */
export function nameOf(kind: 'queue' | 'stream' | 'group' | 'environment') {
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
export const environmentName = nameOf('environment');

/** The rule `mp.node_register` enforces: node names are host names. */
export const NODE_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** A node (agent) name such as `--name`: a host name. */
export const nodeName = z.string().check((ctx) => {
  if (!NODE_NAME_PATTERN.test(ctx.value)) {
    ctx.issues.push({
      code: 'custom',
      input: ctx.value,
      message: `invalid node name ${JSON.stringify(ctx.value)}: node names are host names (letters, digits, ".", "_", "-"; at most 63 characters)`,
    });
  }
});

/** Which agents may claim an operation: `manager`, `provisioner`, `any`, or `node:<name>`. */
export const target = z.string().check((ctx) => {
  const v = ctx.value;
  const ok = v === 'manager' || v === 'provisioner' || v === 'any' || (v.startsWith('node:') && NODE_NAME_PATTERN.test(v.slice(5)));
  if (!ok) {
    ctx.issues.push({
      code: 'custom',
      input: v,
      message: `invalid target ${JSON.stringify(v)}: use manager, provisioner, any, or node:<name> (\`mp nodes ls\` lists node names)`,
    });
  }
});

/** The statuses of an operation, as `--status` takes them. */
export const OPERATION_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'] as const;
export const operationStatus = z.string().check((ctx) => {
  if (!(OPERATION_STATUSES as readonly string[]).includes(ctx.value)) {
    ctx.issues.push({
      code: 'custom',
      input: ctx.value,
      message: `invalid status ${JSON.stringify(ctx.value)}: use one of ${OPERATION_STATUSES.join(', ')}`,
    });
  }
});

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

/** A TCP port such as `--port`: 1 to 65535. */
export const port = integerAtLeast(1, 'a TCP port (1-65535)').refine((n) => n <= 65535, {
  message: 'must be a TCP port (1-65535)',
});
