/**
 * An environment's settings file, `<env>/minipaas.yaml`, as the original MiniPaaS wrote it, plus what
 * deploys need. Pure: text in, validated settings out (the CLI reads the directory, `cli/environment.ts`).
 *
 * @example
 *   project:
 *     files: [compose.yaml, compose.build.yaml]   # loaded in order, later files override
 *   api:
 *     host: tcp://10.0.0.1:2376                    # how the CLI reaches Docker (default: local engine)
 *     tls: true
 *   deploy:
 *     version: "1.4.2"                             # the image tag: ${VERSION} in the Compose files
 *     timeout: 300                                 # seconds a deploy may take to converge
 *   stack: shop                                    # default: the directory's name
 *   registry: registry.example.com/shop            # prefix for built images
 *   env:
 *     DOMAIN: shop.example.com                     # interpolation variables
 */
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { listNames, nearMiss } from '../agent/executors/near-miss.ts';
import { hostSchema, monitoringSchema, provisionSchema } from '../agent/provision/inventory.ts';
import { ConfigError } from '../sql/errors.ts';

const seconds = z.number().int().positive();

/** The `deploy:` section: what one deploy uses, and how long it waits for the stack to converge. */
const deploySection = z
  .object({
    version: z.union([z.string().min(1), z.number()]).transform(String).optional(),
    /** Seconds a deploy may take to converge before it fails (default 300). */
    timeout: seconds.default(300),
    /** Seconds every task must stay running (and healthy) before a service counts as converged (default 3). */
    stable: z.number().int().min(0).default(3),
    /** Update policies MiniPaaS fills in where a file sets none (docs/compose.md). Default true. */
    safe_defaults: z.boolean().default(true),
  })
  .strict();

/** The `cron:` section. `webhook`: an http(s) URL (a Telegram bot's sendMessage URL is one) alerted on failures. */
const cronSection = z
  .object({
    webhook: z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }).optional(),
  })
  .strict();

/**
 * One route's value under `routes:` (agent/routing/routes.ts parses and checks the URL keys and
 * targets): `service:port`, or `{ to: service:port, tls: auto | internal }`.
 */
const routeValue = z.union([
  z.string().min(1),
  z.object({ to: z.string().min(1), tls: z.enum(['auto', 'internal']).optional() }).strict(),
]);

/** The settings of one environment. */
export const environmentSchema = z
  .object({
    project: z
      .object({
        files: z.array(z.string().min(1)).min(1),
        name: z.string().min(1).optional(),
      })
      .strict(),
    api: z
      .object({
        host: z.string().min(1).optional(),
        tls: z.boolean().optional(),
        local: z.boolean().optional(),
      })
      .strict()
      .default({}),
    deploy: deploySection.default({ timeout: 300, stable: 3, safe_defaults: true }),
    stack: z.string().min(1).optional(),
    registry: z.string().min(1).optional(),
    env: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]).transform(String)).default({}),
    /** Job services run, in order, before any service is updated (issue: jobs and cron). */
    pre_deploy: z.array(z.string().min(1)).default([]),
    /** Routes through the environment's Caddy: URL -> service:port (docs/routing.md). */
    routes: z.record(z.string(), routeValue).default({}),
    /** Cron settings: `webhook` is POSTed a JSON alert when a run fails (once, until one succeeds again). */
    cron: cronSection.optional(),
    /** Hosts `mp provision` prepares (agent/provision/inventory.ts), or `inventory:`, an INI file. */
    hosts: z.array(hostSchema).default([]),
    inventory: z.string().min(1).optional(),
    provision: provisionSchema.default(provisionSchema.parse({})),
    monitoring: monitoringSchema.default(monitoringSchema.parse({})),
  })
  .strict();

export type EnvironmentSettings = z.output<typeof environmentSchema>;

/** The keys each section allows, for near-miss hints on unknown keys. */
const KNOWN_KEYS: Record<string, readonly string[]> = {
  '': Object.keys(environmentSchema.shape),
  project: ['files', 'name'],
  api: ['host', 'tls', 'local'],
  deploy: Object.keys(deploySection.shape),
  cron: Object.keys(cronSection.shape),
  provision: Object.keys(provisionSchema.shape),
  monitoring: Object.keys(monitoringSchema.shape),
};

/**
 * Parses minipaas.yaml. Throws `ConfigError` naming the file, and the line and column of a YAML error,
 * or each invalid key path (with the near miss of an unknown key).
 */
export function parseEnvironmentFile(path: string, text: string): EnvironmentSettings {
  const doc = parseDocument(text, { prettyErrors: false });
  if (doc.errors.length > 0) {
    const err = doc.errors[0]!;
    const pos = err.linePos?.[0];
    throw new ConfigError(
      'INVALID_ENVIRONMENT',
      `${path}${pos ? `:${pos.line}:${pos.col}` : ''}: ${err.message.split('\n')[0]}`,
      'fix the YAML syntax at that position',
    );
  }
  const result = environmentSchema.safeParse(doc.toJS() ?? {});
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const at = issue.path.join('.');
    if (issue.code === 'unrecognized_keys') {
      const known = KNOWN_KEYS[at] ?? [];
      return issue.keys
        .map((key) => {
          const guess = nearMiss(key, known);
          return `unknown key '${at ? `${at}.` : ''}${key}'${guess ? ` (did you mean '${guess}'?)` : ''}; allowed: ${listNames(known)}`;
        })
        .join('; ');
    }
    return `${at || '(top level)'}: ${issue.message}`;
  });
  throw new ConfigError('INVALID_ENVIRONMENT', `${path}: ${problems.join('; ')}`, 'see docs/deploy.md for the keys of minipaas.yaml');
}
