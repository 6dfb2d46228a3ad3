/**
 * `mp code route --env DIR URL service:port [--tls internal]` and `mp code route --env DIR --rm URL`
 * (the original's verb): adds, replaces or removes one route in minipaas.yaml `routes:`, and gives the
 * routed service a rollout policy that drops no request behind Caddy (docs/routing.md): start-first
 * updates (unless it publishes a host-mode port), rollback on failure, a stop grace period, and a
 * healthcheck when it has none and its image is known to have `wget`. Edits go through stack/edit
 * (comments survive; the same command twice changes nothing) and are written all or none. Nothing is
 * deployed: `mp deploy --env DIR` (or `mp deploy routing`) applies them.
 */
import { readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { z } from 'zod';
import { describeRoute, parseRoute, parseRoutes, parseRouteUrl, type RouteValue } from '../../../agent/routing/routes.ts';
import { checkRoutedServices } from '../../../agent/routing/ingress.ts';
import { ConfigError, ConflictError, NotFoundError } from '../../../sql/errors.ts';
import { planComposeEdits, readFilesForEdit, writeFilesAtomically, type ComposeEdit, type EditValue } from '../../../stack/edit/index.ts';
import { planRouteEdit, type RouteEntry } from '../../../stack/edit/routes.ts';
import type { Context } from '../../context.ts';
import { environmentDir, loadEnvironment, readSettings, SETTINGS_FILE } from '../../environment.ts';
import { printResult } from '../../output.ts';

export const options = z
  .object({
    env: z.string().min(1, 'name the environment directory, e.g. --env prod'),
    url: z.string().min(1).optional(),
    target: z.string().min(1).optional(),
    rm: z.string().min(1).optional(),
    tls: z.enum(['auto', 'internal']).optional(),
  })
  .strict()
  .refine((o) => (o.rm === undefined) !== (o.url === undefined), { message: 'give either URL service:port, or --rm URL', path: ['url'] })
  .refine((o) => o.rm !== undefined || o.target !== undefined, { message: 'name the target as service:port, e.g. api:8080', path: ['target'] })
  .refine((o) => o.rm === undefined || (o.target === undefined && o.tls === undefined), { message: '--rm takes only the URL', path: ['rm'] });
export type Options = z.output<typeof options>;

/** Images known to ship `wget` (busybox, Alpine-based ones, the lab's busybox and Caddy). */
const WGET_IMAGES = /(^|\/)(busybox|alpine|caddy)(:|@|$)|-alpine(\d|\.)*(@|$)|^mp-lab\/busybox/;

/** The rollout-policy edits the routed service needs, from the merged model; with a note for each skip. */
export function rolloutEdits(service: string, svc: Record<string, unknown>, targetPort: number): { edits: ComposeEdit[]; notes: string[] } {
  const edits: ComposeEdit[] = [];
  const notes: string[] = [];
  const deploy = (svc.deploy ?? {}) as { update_config?: { order?: string; failure_action?: string } };
  const ports = (svc.ports ?? []) as { mode?: string }[];
  if (!deploy.update_config?.order) {
    if (ports.some((p) => p.mode === 'host')) notes.push(`${service} publishes a host-mode port, so it keeps stop-first updates (two tasks cannot bind one host port)`);
    else edits.push({ op: 'set', service, path: ['deploy', 'update_config', 'order'], value: 'start-first' });
  }
  if (!deploy.update_config?.failure_action) edits.push({ op: 'set', service, path: ['deploy', 'update_config', 'failure_action'], value: 'rollback' });
  if (svc.stop_grace_period === undefined) edits.push({ op: 'set', service, path: ['stop_grace_period'], value: '10s' });
  if (svc.healthcheck === undefined) {
    const image = String(svc.image ?? '');
    if (WGET_IMAGES.test(image)) {
      const check: EditValue = {
        test: ['CMD-SHELL', `wget -q -O /dev/null http://127.0.0.1:${targetPort}/ || exit 1`],
        interval: '2s',
        timeout: '2s',
        retries: 3,
        start_period: '5s',
      };
      edits.push({ op: 'set', service, path: ['healthcheck'], value: check });
    } else {
      notes.push(`${service} has no healthcheck and MiniPaaS cannot tell what its image (${image || 'built'}) can probe with: add one, so a new task joins Caddy's rotation only once it answers`);
    }
  }
  return { edits, notes };
}

export async function run(ctx: Context, opts: Options): Promise<void> {
  const dir = environmentDir(opts.env);
  const settingsPath = join(dir, SETTINGS_FILE);
  const settings = readSettings(dir);
  const routes = { ...settings.routes } as Record<string, RouteValue>;
  // Keys as the file writes them, by the URL they mean.
  const keyOf = (url: string): string | undefined => Object.keys(routes).find((k) => parseRouteUrl(k).key === parseRouteUrl(url).key);
  let edits: ComposeEdit[] = [];
  const notes: string[] = [];
  let settingsText = readFileSync(settingsPath, 'utf8');
  let summary: string;
  if (opts.rm !== undefined) {
    const url = parseRouteUrl(opts.rm);
    const existing = keyOf(opts.rm);
    if (existing === undefined) {
      throw new NotFoundError(
        'UNKNOWN_ROUTE',
        `${url.key} is not routed in ${relative(process.cwd(), settingsPath)}; routes: ${Object.keys(routes).join(', ') || 'none'}`,
        '`mp routes ls --env DIR` lists them',
      );
    }
    settingsText = planRouteEdit(settingsPath, settingsText, { op: 'remove', key: existing });
    delete routes[existing];
    summary = `removed route ${url.key}`;
  } else {
    const route = parseRoute(opts.url!, { to: opts.target!, tls: opts.tls });
    const existing = keyOf(opts.url!);
    if (existing !== undefined) {
      const before = parseRoute(existing, routes[existing]!);
      if (before.service !== route.service) {
        throw new ConflictError(
          'ROUTE_CONFLICT',
          `${route.key} already routes to ${before.service}:${before.targetPort}; a host and path go to one service`,
          `remove it first (\`mp code route --env ${opts.env} --rm ${route.key}\`), or route another path`,
        );
      }
      delete routes[existing];
      if (existing !== route.key) settingsText = planRouteEdit(settingsPath, settingsText, { op: 'remove', key: existing });
    }
    const value: RouteEntry = route.tls === 'internal' ? { to: `${route.service}:${route.targetPort}`, tls: 'internal' } : `${route.service}:${route.targetPort}`;
    routes[route.key] = value;
    // The whole set must still hold together (a port asked for both http and https...).
    parseRoutes(routes);
    const env = loadEnvironment(opts.env);
    checkRoutedServices(env.model, [route]);
    settingsText = planRouteEdit(settingsPath, settingsText, { op: 'set', key: route.key, value });
    const rollout = rolloutEdits(route.service, env.model.services[route.service]!, route.targetPort);
    edits = rollout.edits;
    notes.push(...rollout.notes);
    summary = `route ${describeRoute(route)}`;
  }
  const files = await readFilesForEdit(settings.project.files.map((f) => resolve(dir, f)));
  const plan = planComposeEdits(files, edits);
  const [current] = await readFilesForEdit([settingsPath]);
  if (!current) throw new ConfigError('NO_ENVIRONMENT', `${settingsPath} cannot be read`);
  const changes = [
    ...plan.changes.map((c) => ({ ...c, mtimeMs: files.find((f) => f.path === c.path)?.mtimeMs })),
    ...(settingsText !== current.content ? [{ path: settingsPath, before: current.content, after: settingsText, mtimeMs: current.mtimeMs }] : []),
  ];
  await writeFilesAtomically(changes);
  const changed = plan.notes.filter((n) => !n.includes('(already'));
  for (const note of notes) ctx.stderr.write(`note: ${note}\n`);
  printResult(
    ctx,
    [
      `${summary}${changes.length === 0 ? ' (already so; nothing changed)' : ''}`,
      ...changed.map((n) => `  ${n.replace(dir + '/', '')}`),
      ...(changes.length ? [`apply it with \`mp deploy --env ${opts.env}\` (or \`mp deploy routing --env ${opts.env}\`)`] : []),
    ].join('\n'),
    { routes, changed: changes.map((c) => relative(dir, c.path)), edits: changed, notes },
  );
}
