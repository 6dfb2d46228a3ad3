/**
 * `mp code init --env DIR --files compose.yaml [compose.build.yaml...] [--stack NAME] [--version V]`
 * (also `mp init`): writes `DIR/minipaas.yaml` naming the Compose files, as the original MiniPaaS did,
 * and registers the environment in the database when one is configured. An existing minipaas.yaml is
 * never overwritten.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { Document } from 'yaml';
import { z } from 'zod';
import { ConflictError } from '../../../sql/errors.ts';
import type { Context } from '../../context.ts';
import { environmentNameOf, SETTINGS_FILE } from '../../environment.ts';
import { printResult } from '../../output.ts';

export const options = z
  .object({
    env: z.string().min(1, 'name the environment directory, e.g. --env prod'),
    files: z.array(z.string().min(1)).min(1, 'name at least one Compose file').default(['compose.yaml']),
    stack: z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_-]*$/, "letters, digits, '-' and '_'").optional(),
    version: z.string().min(1).optional(),
  })
  .strict();
export type Options = z.output<typeof options>;

/** The minipaas.yaml `mp code init` writes, with comments saying what each key does. */
export function initialSettings(opts: Pick<Options, 'files' | 'stack' | 'version'>): string {
  const doc = new Document({
    project: { files: opts.files },
    ...(opts.stack ? { stack: opts.stack } : {}),
    deploy: { version: opts.version ?? 'latest' },
  });
  doc.commentBefore = ' MiniPaaS environment: `mp deploy --env <this directory>` deploys the Compose files below.';
  const project = doc.get('project', true) as { commentBefore?: string } | undefined;
  if (project) project.commentBefore = ' Compose files, loaded in order (later files override earlier ones).';
  const deploy = doc.get('deploy', true) as { commentBefore?: string } | undefined;
  if (deploy) deploy.commentBefore = ' deploy.version is ${VERSION} in the Compose files (the image tag).';
  return doc.toString();
}

export async function run(ctx: Context, opts: Options): Promise<void> {
  const dir = resolve(opts.env);
  const path = join(dir, SETTINGS_FILE);
  if (existsSync(path)) {
    throw new ConflictError('ENVIRONMENT_EXISTS', `${relative(process.cwd(), path)} already exists`, 'edit it, or pick another --env directory');
  }
  const missing = opts.files.filter((f) => !existsSync(resolve(dir, f)));
  mkdirSync(dir, { recursive: true });
  writeFileSync(path, initialSettings(opts), { flag: 'wx' });
  const name = environmentNameOf(dir);
  let registered = false;
  if (ctx.hasDatabaseUrl()) {
    await ctx.db().query(`select mp.environment_create($1)`, [name]);
    registered = true;
  }
  for (const f of missing) ctx.stderr.write(`warning: ${join(opts.env, f)} does not exist yet; create it before \`mp deploy\`\n`);
  printResult(
    ctx,
    `wrote ${relative(process.cwd(), path)}; environment ${name} ${registered ? 'registered in the database' : 'will be registered by its first deploy (no DATABASE_URL)'}`,
    { path, environment: name, registered, files: opts.files },
  );
}
