/**
 * `mp shell --env DIR [--print]`: a shell whose docker CLI talks to the environment's Docker API
 * (`api.host` in minipaas.yaml), over TLS with the client certificate of `provision.certs` when
 * `api.tls` is set. `--print` writes `export` lines instead (`eval "$(mp shell --env prod --print)"`).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import { ConfigError, NotFoundError } from '../../sql/errors.ts';
import type { Context } from '../context.ts';
import { environmentDir, readSettings } from '../environment.ts';

export const options = z
  .object({
    env: z.string().min(1, 'name the environment directory, e.g. --env prod'),
    print: z.boolean().default(false),
  })
  .strict();
export type Options = z.output<typeof options>;

/** POSIX single-quoting. */
function quote(value: string): string {
  return /^[A-Za-z0-9_./:@=-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

/** The variables the docker CLI reads, from an environment directory. Pure but for reading the settings. */
export function dockerVariables(env: string, cwd: string = process.cwd()): Record<string, string> {
  const dir = environmentDir(env, cwd);
  const settings = readSettings(dir);
  const host = settings.api.host;
  if (!host) {
    throw new ConfigError('NO_API_HOST', `${env}/minipaas.yaml has no api.host`, 'set api.host: tcp://<manager>:2376 and api.tls: true');
  }
  const vars: Record<string, string> = { DOCKER_HOST: host.includes('://') ? host : `tcp://${host}` };
  if (settings.api.tls) {
    const certs = resolve(dir, settings.provision.certs);
    for (const file of ['ca.pem', 'cert.pem', 'key.pem']) {
      if (!existsSync(resolve(certs, file))) {
        throw new NotFoundError('NO_CLIENT_CERT', `${resolve(certs, file)} does not exist (api.tls is set)`, `make it with \`mp certs all --env ${env} --out ${resolve(certs)}\``);
      }
    }
    vars.DOCKER_TLS_VERIFY = '1';
    vars.DOCKER_CERT_PATH = certs;
  }
  return vars;
}

/**
 * @example
 *   $ mp shell --env prod --print
 *   export DOCKER_HOST=tcp://10.0.0.2:2376
 *   export DOCKER_TLS_VERIFY=1
 *   export DOCKER_CERT_PATH=/home/me/prod/.certs
 */
export async function run(ctx: Context, opts: Options): Promise<void> {
  const vars = dockerVariables(opts.env);
  if (opts.print || ctx.json) {
    if (ctx.json) ctx.stdout.write(`${JSON.stringify(vars)}\n`);
    else for (const [k, v] of Object.entries(vars)) ctx.stdout.write(`export ${k}=${quote(v)}\n`);
    return;
  }
  const shell = process.env.SHELL || '/bin/sh';
  ctx.stderr.write(`starting ${shell} with DOCKER_HOST=${vars.DOCKER_HOST}; exit it to come back\n`);
  const code = await new Promise<number>((done) => {
    const child = spawn(shell, [], { stdio: 'inherit', env: { ...process.env, ...vars, MP_SHELL_ENV: opts.env } });
    child.on('exit', (c) => done(c ?? 0));
    child.on('error', () => done(127));
  });
  process.exitCode = code;
}
