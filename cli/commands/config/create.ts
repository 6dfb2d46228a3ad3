/**
 * `mp config create --env DIR --name NAME FILE [--for SERVICE]... [--deploy] [--detach]`: stores the file's
 * content with its content-derived version (sha256; configs are not secret, so not sealed) and enqueues
 * `config.create` in one transaction, patches the Compose files for `--for`, and follows the operation
 * until a manager agent has created the Swarm config `<stack>_<name>_<version>`. Bad input (a file that
 * does not exist or is empty, a bad name, an unknown service, a read-only Compose file) writes nothing.
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { configVersion } from '../../../sql/control/sealing.ts';
import { createConfig, managedSwarmName } from '../../../sql/control/secrets.ts';
import { ConfigError, NotFoundError } from '../../../sql/errors.ts';
import { writeFilesAtomically } from '../../../stack/edit/index.ts';
import type { Context } from '../../context.ts';
import { toJson } from '../../output.ts';
import { checkCanSubmit, checkManagedName, control, follow, managedEnvironment, planFor } from '../secret/common.ts';

export const options = z
  .object({
    env: z.string().min(1, 'name the environment directory, e.g. --env prod'),
    name: z.string().min(1),
    file: z.string().min(1),
    for: z.array(z.string().min(1)).default([]),
    deploy: z.boolean().default(false),
    detach: z.boolean().default(false),
  })
  .strict()
  .refine((o) => !(o.detach && o.deploy), { message: '--deploy waits for the config; it cannot be --detach-ed', path: ['deploy'] });
export type Options = z.output<typeof options>;

/**
 * @example
 *   $ mp config create --env prod --name app.json ./configs/app.json --for api
 *   config app.json version 44136fa355b3 stored; operation 13 creates shop_app.json_44136fa355b3
 */
export async function run(ctx: Context, opts: Options): Promise<void> {
  const env = managedEnvironment(opts.env);
  checkManagedName('config', opts.name, env.stack);
  let data: Buffer;
  try {
    data = await readFile(opts.file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError('FILE_NOT_FOUND', `config file ${opts.file} does not exist; nothing was written`, 'check the path');
    if ((err as NodeJS.ErrnoException).code === 'EISDIR') throw new ConfigError('NOT_A_FILE', `${opts.file} is a directory, not a file; nothing was written`, 'name one file');
    throw err;
  }
  if (data.length === 0) throw new ConfigError('EMPTY_CONFIG', `config file ${opts.file} is empty; nothing was written`, 'Swarm refuses empty configs');
  const edits = await planFor('config', opts.name, opts.for, env);
  await checkCanSubmit(ctx, env, opts.detach);
  const version = configVersion(data);
  const swarmName = managedSwarmName(env.stack, opts.name, version);
  const created = await createConfig(control(ctx), { environment: env.name, name: opts.name, version, swarmName, data });
  await writeFilesAtomically(edits.changes);
  if (ctx.json) {
    ctx.stdout.write(`${toJson({ environment: env.name, name: opts.name, version, swarmName, created: created.created, operation: Number(created.operationId), edits: edits.notes })}\n`);
  } else {
    ctx.stdout.write(`config ${opts.name} version ${version} stored${created.created ? '' : ' (this content was stored before: made current again)'}; operation ${created.operationId} creates ${swarmName}\n`);
    for (const note of edits.notes) ctx.stdout.write(`  ${note}\n`);
  }
  await follow(ctx, created.operationId, opts.detach);
  if (opts.deploy) {
    const deploy = await import('../deploy/rollout.ts');
    await deploy.run(ctx, { env: opts.env, dryRun: false, detach: false });
  }
}
