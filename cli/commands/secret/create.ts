/**
 * `echo s3cret | mp secret create --env DIR --name NAME [--for SERVICE]... [--from-file F] [--deploy] [--detach]`:
 * reads the value from stdin (or the file), seals it here to the cluster's public key, stores the
 * sealed value with its content-derived version and enqueues `secret.create` (one transaction), patches
 * the Compose files for `--for`, and follows the operation until a manager agent has created the Swarm
 * secret `<stack>_<name>_<version>`. The value is never printed, and never leaves this process
 * unsealed. Everything that can be refused (empty value, bad name, unknown service, read-only Compose
 * file, missing file) is refused before anything is written.
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { MIN_REDACTED_LENGTH } from '../../../agent/redact.ts';
import { clusterPublicKey, sealValue, secretVersion, versionSalt } from '../../../sql/control/sealing.ts';
import { createSecret, managedSwarmName } from '../../../sql/control/secrets.ts';
import { ConfigError, NotFoundError } from '../../../sql/errors.ts';
import { writeFilesAtomically } from '../../../stack/edit/index.ts';
import type { Context } from '../../context.ts';
import { toJson } from '../../output.ts';
import { checkCanSubmit, checkManagedName, control, follow, managedEnvironment, planFor } from './common.ts';

export const options = z
  .object({
    env: z.string().min(1, 'name the environment directory, e.g. --env prod'),
    name: z.string().min(1),
    for: z.array(z.string().min(1)).default([]),
    fromFile: z.string().min(1).optional(),
    deploy: z.boolean().default(false),
    detach: z.boolean().default(false),
  })
  .strict()
  .refine((o) => !(o.detach && o.deploy), { message: '--deploy waits for the secret; it cannot be --detach-ed', path: ['deploy'] });
export type Options = z.output<typeof options>;

/** Where the value comes from when there is no `--from-file`: injected so tests pipe a value in. */
export interface SecretInput {
  stdin: AsyncIterable<Buffer | string> & { isTTY?: boolean };
}

async function readAll(stream: SecretInput['stdin']): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  return Buffer.concat(parts);
}

/**
 * The value: the file's bytes exactly, or stdin without the one newline `echo` adds. `ConfigError` for
 * an empty value or a terminal on stdin (a value typed there would be echoed), `NotFoundError` for a
 * file that does not exist.
 */
async function readValue(opts: Options, input: SecretInput): Promise<Buffer> {
  let value: Buffer;
  if (opts.fromFile) {
    try {
      value = await readFile(opts.fromFile);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new NotFoundError('FILE_NOT_FOUND', `--from-file ${opts.fromFile} does not exist; nothing was written`, 'check the path');
      }
      throw err;
    }
  } else {
    if (input.stdin.isTTY) {
      throw new ConfigError('NO_VALUE', 'the secret value is read from stdin, and stdin is a terminal', `pipe it in: \`printf %s "$VALUE" | mp secret create --env ${opts.env} --name ${opts.name}\`, or pass --from-file`);
    }
    value = await readAll(input.stdin);
    if (value.at(-1) === 0x0a) value = value.subarray(0, value.at(-2) === 0x0d ? -2 : -1);
  }
  if (value.length === 0) {
    throw new ConfigError('EMPTY_SECRET', `the value of secret '${opts.name}' is empty${opts.fromFile ? ` (${opts.fromFile})` : ' (nothing on stdin)'}; nothing was written`, 'pipe the value in, e.g. `echo s3cret | mp secret create ...`, or pass --from-file');
  }
  return value;
}

/** `run` with stdin injected (the binary passes `process.stdin`). */
export async function runWith(ctx: Context, opts: Options, input: SecretInput): Promise<void> {
  const env = managedEnvironment(opts.env);
  checkManagedName('secret', opts.name, env.stack);
  const value = await readValue(opts, input);
  try {
    const edits = await planFor('secret', opts.name, opts.for, env);
    await checkCanSubmit(ctx, env, opts.detach);
    const db = control(ctx);
    const [key, salt] = await Promise.all([clusterPublicKey(db), versionSalt(db)]);
    const version = await secretVersion(salt, env.name, opts.name, value);
    const sealed = await sealValue(key.publicKey, value);
    const swarmName = managedSwarmName(env.stack, opts.name, version);
    if (value.toString('utf8').length < MIN_REDACTED_LENGTH) {
      ctx.stderr.write(`warning: values shorter than ${MIN_REDACTED_LENGTH} characters cannot be redacted from logs (they would match ordinary text)\n`);
    }
    const created = await createSecret(db, { environment: env.name, name: opts.name, version, swarmName, sealed, keyId: key.id });
    await writeFilesAtomically(edits.changes);
    if (ctx.json) {
      ctx.stdout.write(`${toJson({ environment: env.name, name: opts.name, version, swarmName, created: created.created, operation: Number(created.operationId), edits: edits.notes })}\n`);
    } else {
      ctx.stdout.write(
        `secret ${opts.name} version ${version} stored sealed${created.created ? '' : ' (this value was stored before: made current again)'}; ` +
          `operation ${created.operationId} creates ${swarmName}\n`,
      );
      for (const note of edits.notes) ctx.stdout.write(`  ${note}\n`);
    }
    await follow(ctx, created.operationId, opts.detach);
    if (opts.deploy) {
      const deploy = await import('../deploy/rollout.ts');
      await deploy.run(ctx, { env: opts.env, dryRun: false, detach: false });
    } else if (!ctx.json && !opts.detach) {
      ctx.stdout.write(`the next \`mp deploy --env ${opts.env}\` moves the services that use it to this version\n`);
    }
  } finally {
    value.fill(0);
  }
}

/**
 * @example
 *   $ echo s3cret | mp secret create --env prod --name db_password --for api --for worker
 *   secret db_password version 3f2a9c1b7d4e stored sealed; operation 12 creates shop_db_password_3f2a9c1b7d4e
 *     compose.yaml: secrets.db_password added
 *     compose.yaml: services.api.secrets += "db_password"
 *   2026-12-01T22:31:39Z  queued     secret.create queued for manager
 *   ...
 */
export async function run(ctx: Context, opts: Options): Promise<void> {
  await runWith(ctx, opts, { stdin: process.stdin });
}
