/** `mp registry ls --env DIR`: the registries the environment has credentials for, and whose (never a password). */
import { z } from 'zod';
import { listRegistryAuths } from '../../../sql/control/registry-auth.ts';
import type { Context } from '../../context.ts';
import { environmentDir, environmentNameOf } from '../../environment.ts';
import { control, requireEnvironment } from '../../operations.ts';
import { printRows } from '../../output.ts';

export const options = z.object({ env: z.string().min(1, 'name the environment directory, e.g. --env prod') }).strict();
export type Options = z.output<typeof options>;

/**
 * @example
 *   $ mp registry ls --env prod
 *   REGISTRY              USERNAME  VERSION       CREATED               BY
 *   registry.example.com  ci        3f2a9c1b7d4e  2026-12-02T08:01:12Z  alice
 */
export async function run(ctx: Context, opts: Options): Promise<void> {
  const environment = environmentNameOf(environmentDir(opts.env));
  await requireEnvironment(ctx, environment);
  printRows(
    ctx,
    await listRegistryAuths(control(ctx), environment),
    [{ key: 'registry' }, { key: 'username' }, { key: 'version' }, { key: 'createdAt', heading: 'CREATED' }, { key: 'createdBy', heading: 'BY' }],
    `no registry credentials in ${environment}: \`mp registry login --env ${opts.env} --password-stdin\` stores some`,
  );
}
