/**
 * `printf %s "$PASSWORD" | mp registry login --env DIR [--registry HOST] [--username U] --password-stdin [--no-verify]`:
 * stores the environment's credentials for a registry, the password sealed here to the cluster's public
 * key (as a secret's value), so that a manager agent can give them to Swarm with every service it
 * creates or updates from that registry's images, and every node can pull them. The password is read
 * from stdin only (never an argument, which `ps` would show), checked with the registry through the
 * environment's engine first (as `docker login` does; `--no-verify` skips that), and never printed.
 *
 * This machine cannot open what it stored: `mp deploy build` pushes with MP_REGISTRY_USERNAME and
 * MP_REGISTRY_PASSWORD or `docker login`'s credentials (docs/deploy.md).
 */
import { z } from 'zod';
import { Redactor } from '../../../agent/redact.ts';
import { connectDocker } from '../../../agent/docker/engine.ts';
import { registryAuthVersion, setRegistryAuth } from '../../../sql/control/registry-auth.ts';
import { clusterPublicKey, sealValue, versionSalt } from '../../../sql/control/sealing.ts';
import { ConfigError, DockerError, MiniPaasError } from '../../../sql/errors.ts';
import type { Context } from '../../context.ts';
import { control, requireEnvironment } from '../../operations.ts';
import { printResult } from '../../output.ts';
import { registryTarget, targetOptions } from './common.ts';

export const options = z
  .object({
    ...targetOptions,
    username: z.string().min(1).max(255).optional(),
    passwordStdin: z.boolean().default(false),
    verify: z.boolean().default(true),
  })
  .strict();
export type Options = z.output<typeof options>;

/** Where the password comes from: injected so tests pipe one in. */
export interface PasswordInput {
  stdin: AsyncIterable<Buffer | string> & { isTTY?: boolean };
  /** MP_REGISTRY_USERNAME, the default user name. */
  env?: Record<string, string | undefined>;
}

async function readPassword(opts: Options, input: PasswordInput): Promise<string> {
  const how = `printf %s "$PASSWORD" | mp registry login --env ${opts.env} --password-stdin`;
  if (!opts.passwordStdin) throw new ConfigError('NO_PASSWORD', 'the registry password is read from stdin, and --password-stdin was not given', `pipe it in: \`${how}\``);
  if (input.stdin.isTTY) throw new ConfigError('NO_PASSWORD', 'the registry password is read from stdin, and stdin is a terminal', `pipe it in: \`${how}\``);
  const parts: Buffer[] = [];
  for await (const chunk of input.stdin) parts.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  const text = Buffer.concat(parts).toString('utf8').replace(/\r?\n$/, '');
  if (text === '') throw new ConfigError('EMPTY_PASSWORD', 'the registry password is empty (nothing on stdin); nothing was stored', `pipe it in: \`${how}\``);
  return text;
}

/** `run` with stdin injected (the binary passes `process.stdin`). */
export async function runWith(ctx: Context, opts: Options, input: PasswordInput): Promise<void> {
  const target = registryTarget(opts);
  const username = opts.username ?? (input.env ?? process.env).MP_REGISTRY_USERNAME;
  if (!username) throw new ConfigError('NO_USERNAME', `no user name for ${target.host}`, 'pass --username USER (or set MP_REGISTRY_USERNAME)');
  const password = await readPassword(opts, input);
  // Whatever the engine or the registry answers, the password is not repeated to the terminal.
  const redactor = new Redactor();
  redactor.add(password);
  try {
    await requireEnvironment(ctx, target.environment);
    if (opts.verify) {
      const docker = connectDocker({ host: target.settings.api.local ? undefined : target.settings.api.host });
      try {
        await docker.ping(3000);
      } catch (err) {
        throw new DockerError('DOCKER_UNREACHABLE', `the login is checked through the environment's engine, and none answers at ${docker.endpoint}: ${(err as Error).message}`, 'start dockerd, or pass --no-verify to store the credentials unchecked');
      }
      try {
        await docker.checkAuth({ username, password, serveraddress: target.host });
      } catch (err) {
        const said = (err as Error).message.replace(/^.*? refused the login to [^:]+(:\d+)?: /, '');
        throw new ConfigError(
          'REGISTRY_LOGIN_REFUSED',
          `${target.host} refused the login of '${username}': ${said}; nothing was stored`,
          'check the user name and password; --no-verify stores them unchecked (for a registry only the nodes reach)',
        );
      }
    }
    const db = control(ctx);
    const [key, salt] = await Promise.all([clusterPublicKey(db), versionSalt(db)]);
    const secret = Buffer.from(password, 'utf8');
    try {
      const version = await registryAuthVersion(salt, { environment: target.environment, registry: target.host, username }, secret);
      const sealed = await sealValue(key.publicKey, secret);
      await setRegistryAuth(db, { environment: target.environment, registry: target.host, username, version, sealed, keyId: key.id });
      printResult(
        ctx,
        `credentials of '${username}' for ${target.host} stored sealed in ${target.environment} (version ${version}); ` +
          `the next \`mp deploy --env ${opts.env}\` gives them to every service whose image is on ${target.host}`,
        { environment: target.environment, registry: target.host, username, version, verified: opts.verify },
      );
    } finally {
      secret.fill(0);
    }
  } catch (err) {
    if (err instanceof MiniPaasError) {
      err.message = redactor.redact(err.message);
      if (err.hint) (err as { hint?: string }).hint = redactor.redact(err.hint);
    }
    throw err;
  }
}

/**
 * @example
 *   $ printf %s "$PASSWORD" | mp registry login --env prod --username ci --password-stdin
 *   credentials of 'ci' for registry.example.com stored sealed in prod (version 3f2a9c1b7d4e); the next `mp deploy --env prod` gives them ...
 */
export async function run(ctx: Context, opts: Options): Promise<void> {
  await runWith(ctx, opts, { stdin: process.stdin });
}
