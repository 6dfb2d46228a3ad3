/**
 * What `mp code worker|job|cron` share: read the environment's Compose files, plan the marking of
 * each named service (stack/edit/kinds.ts) in its defining file, check every file can be written, and
 * write them all or none; a service minipaas.yaml routes to is refused. Nothing is deployed:
 * `mp deploy --env DIR` applies the change. Every service is planned before anything is written, so
 * one unknown service leaves every file as it was.
 */
import { join, relative, resolve } from 'node:path';
import { parseRoutes } from '../../../agent/routing/routes.ts';
import { ConfigError } from '../../../sql/errors.ts';
import type { Context } from '../../context.ts';
import { environmentDir, readSettings, SETTINGS_FILE } from '../../environment.ts';
import { printResult } from '../../output.ts';
import { planComposeEdits, readFilesForEdit, writeFilesAtomically, type ComposeEdit } from '../../../stack/edit/index.ts';
import { kindEdits, type KindRequest } from '../../../stack/edit/kinds.ts';

/** Marks `services` of the environment `env` as `request` says and prints what changed. */
export async function markServices(ctx: Context, env: string, services: string[], request: KindRequest): Promise<void> {
  const dir = environmentDir(env);
  const settings = readSettings(dir);
  // Caddy routes requests to a routed service: a worker answers none, a template is no service at all.
  const routed = parseRoutes(settings.routes).find((r) => services.includes(r.service));
  if (routed) {
    throw new ConfigError(
      'ROUTED_SERVICE',
      `${join(env, SETTINGS_FILE)} routes ${routed.key} to ${routed.service}:${routed.targetPort}; a ${request.kind === 'worker' ? 'worker answers no requests' : `${request.kind} template is not a running service`}`,
      `remove the route first (\`mp code route --env ${env} --rm ${routed.key}\`), or leave ${routed.service} a service`,
    );
  }
  const files = await readFilesForEdit(settings.project.files.map((f) => resolve(dir, f)));
  const shown = files.map((f) => ({ path: relative(dir, f.path), content: f.content }));
  const edits: ComposeEdit[] = [];
  const notes: string[] = [];
  for (const service of [...new Set(services)]) {
    const marked = kindEdits(shown, service, request);
    edits.push(...marked.edits);
    notes.push(...marked.notes);
  }
  const plan = planComposeEdits(shown, edits);
  const changes = plan.changes.map((c) => {
    const read = files.find((f) => relative(dir, f.path) === c.path)!;
    return { ...c, path: read.path, mtimeMs: read.mtimeMs };
  });
  await writeFilesAtomically(changes);
  const changed = plan.notes.filter((n) => !n.includes('(already'));
  if (changes.length) for (const note of notes) ctx.stderr.write(`note: ${note}\n`);
  const what = request.kind === 'job' ? 'a job template' : request.kind === 'cron' ? `a cron job (${request.schedule})` : 'a worker';
  printResult(
    ctx,
    [
      `${[...new Set(services)].join(', ')}: ${what}${changes.length === 0 ? ' (already so; nothing changed)' : ''}`,
      ...changed.map((n) => `  ${n}`),
      ...(changes.length ? [`apply it with \`mp deploy --env ${env}\``] : []),
    ].join('\n'),
    { services: [...new Set(services)], kind: request.kind, changed: plan.changes.map((c) => c.path), edits: changed, notes: changes.length ? notes : [] },
  );
}
