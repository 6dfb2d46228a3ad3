/**
 * `mp certs all|server|client --out .certs [--env DIR] [--host NAME...]` (the original's commands): the
 * CA, the Docker TLS API's server certificate and the CLI's client certificate (agent/provision/certs.ts).
 * `all` makes the CA when the directory has none and reuses it otherwise, so re-issuing a server
 * certificate for a new manager keeps every client certificate valid. Keys are written with mode 0600.
 *
 * The server certificate names every manager of the environment (its name and address, from `hosts:`
 * or the inventory), the host of `api.host`, `--host` names, and localhost.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, relative, resolve } from 'node:path';
import { z } from 'zod';
import { createCa, issueCertificate, readCa, splitNames, verifyChain, writeCertFiles, type CertPair } from '../../agent/provision/certs.ts';
import { environmentHosts } from '../../agent/provision/inventory.ts';
import { NotFoundError } from '../../sql/errors.ts';
import type { Context } from '../context.ts';
import { environmentDir, readSettings } from '../environment.ts';
import { printResult } from '../output.ts';

export const options = z
  .object({
    what: z.enum(['all', 'server', 'client']),
    out: z.string().min(1).default('.certs'),
    env: z.string().min(1).optional(),
    host: z.array(z.string().min(1)).default([]),
    inventory: z.string().min(1).optional(),
  })
  .strict();
export type Options = z.output<typeof options>;

/** The names a server certificate carries: managers, api.host, `--host`, localhost. */
export function serverNames(opts: Pick<Options, 'env' | 'host' | 'inventory'>, cwd: string = process.cwd()): { dns: string[]; ips: string[] } {
  const names = ['localhost', '127.0.0.1', ...opts.host];
  if (opts.env) {
    const dir = environmentDir(opts.env, cwd);
    const settings = readSettings(dir);
    if (settings.api.host) {
      const url = new URL(settings.api.host.includes('://') ? settings.api.host : `tcp://${settings.api.host}`);
      names.push(url.hostname.replace(/^\[|\]$/g, ''));
    }
    if (settings.hosts.length > 0 || settings.inventory || opts.inventory) {
      const read = (file: string): { path: string; text: string } => {
        const path = isAbsolute(file) ? file : resolve(opts.inventory === file ? cwd : dir, file);
        try {
          return { path, text: readFileSync(path, 'utf8') };
        } catch {
          throw new NotFoundError('NO_INVENTORY', `inventory ${relative(cwd, path)} does not exist`, 'fix inventory: in minipaas.yaml or --inventory');
        }
      };
      for (const h of environmentHosts(settings, read, opts.inventory)) {
        if (h.role === 'manager') names.push(h.name, h.address);
      }
    }
  }
  return splitNames(names);
}

/**
 * @example
 *   $ mp certs all --out .certs --env prod
 *   .certs/ca.pem, ca-key.pem: CA created
 *   .certs/server-cert.pem, server-key.pem: server certificate for mgr-1, 10.0.0.2, localhost, 127.0.0.1
 *   .certs/cert.pem, key.pem: client certificate
 */
export async function run(ctx: Context, opts: Options): Promise<void> {
  const out = resolve(opts.out);
  let ca: CertPair;
  let caCreated = false;
  try {
    ca = readCa(out);
  } catch (err) {
    if (!(err instanceof NotFoundError)) throw err;
    ca = await createCa({ commonName: 'MiniPaaS Docker API CA' });
    writeCertFiles(out, { caCert: ca.cert, caKey: ca.key });
    caCreated = true;
  }
  const lines = [`${relative(process.cwd(), out) || '.'}/ca.pem, ca-key.pem: CA ${caCreated ? 'created' : 'reused'}`];
  const result: Record<string, unknown> = { out, ca: caCreated ? 'created' : 'reused' };
  if (opts.what === 'all' || opts.what === 'server') {
    const names = serverNames(opts);
    const server = await issueCertificate(ca, { kind: 'server', commonName: names.dns[0] ?? names.ips[0] ?? 'docker', ...names });
    writeCertFiles(out, { serverCert: server.cert, serverKey: server.key });
    const check = await verifyChain(ca.cert, server.cert);
    lines.push(`server-cert.pem, server-key.pem: server certificate for ${[...check.dns, ...check.ips].join(', ')}`);
    result.server = { dns: check.dns, ips: check.ips };
  }
  if (opts.what === 'all' || opts.what === 'client') {
    const client = await issueCertificate(ca, { kind: 'client', commonName: 'minipaas-client' });
    writeCertFiles(out, { clientCert: client.cert, clientKey: client.key });
    lines.push('cert.pem, key.pem: client certificate (DOCKER_CERT_PATH)');
    result.client = true;
  }
  printResult(ctx, `${lines.join('\n')}\n`, result);
}
