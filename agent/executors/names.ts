/** Payload fields shared by executors: Docker object names as Swarm accepts them. */
import { z } from 'zod';

/**
 * A Swarm service or stack name: letters, digits, `_`, `.` and `-`, starting with a letter or digit,
 * at most 63 characters (the engine's limit, a DNS label, since services are resolvable by name).
 */
export const dockerName = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/, 'use letters, digits, _ . - and start with a letter or digit');

/** How long to wait for Swarm to converge, in seconds (default 120). */
export const timeoutSeconds = z.int().min(1).max(3600).default(120);
