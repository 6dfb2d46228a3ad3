/**
 * Payload validation shared by the queue and stream clients and the executors: a zod schema checks a
 * JSON payload, and a failure becomes one `ConfigError` (MP008, as the SQL raises) whose message lists
 * each problem as `path: problem`.
 */
import type { z } from 'zod';
import { ConfigError } from './errors.ts';

/** zod issues as `path: problem`, joined with `; ` so the message stays one line. */
export function formatIssues(error: z.ZodError, root = '(payload)'): string {
  return error.issues.map((i) => `${i.path.length ? i.path.join('.') : root}: ${i.message}`).join('; ');
}

/**
 * Returns `payload` parsed by `schema` (unchanged without one); throws `ConfigError` naming `subject`.
 *
 * @example
 *   checkPayload(schema, job.payload, 'queue "emails"', 'fix the payload to match the queue schema');
 */
export function checkPayload<T>(schema: z.ZodType<T> | undefined, payload: unknown, subject: string, hint: string): T {
  if (!schema) return payload as T;
  const result = schema.safeParse(payload);
  if (result.success) return result.data;
  throw new ConfigError('MP008', `invalid payload for ${subject}: ${formatIssues(result.error)}`, hint);
}
