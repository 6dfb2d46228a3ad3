/**
 * `mp certs`: the CA, server and client certificates verify with the X.509 library and with `openssl
 * verify` (when openssl is installed), carry the managers' names, and keys are mode 0600.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createCa, issueCertificate, verifyChain } from '../../agent/provision/certs.ts';
import { run as runCerts, serverNames } from '../../cli/commands/certs.ts';
import { dockerVariables } from '../../cli/commands/shell.ts';
import { ConfigError } from '../../sql/errors.ts';
import { captured } from '../cli/harness.ts';

function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function envDir(yaml: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'mp-certs-'));
  writeFileSync(join(dir, 'minipaas.yaml'), yaml);
  return dir;
}

const PROD = `project: {files: [compose.yaml]}
api: {host: "tcp://api.example.test:2376", tls: true}
hosts:
  - {name: mgr-1, address: 10.9.0.2, role: manager}
  - {name: wrk-1, address: 10.9.0.3, role: worker}
`;

describe('certificates', () => {
  it('a server and a client certificate chain to the CA', async () => {
    const ca = await createCa({ commonName: 'test CA' });
    const server = await issueCertificate(ca, { kind: 'server', commonName: 'mgr-1', dns: ['mgr-1'], ips: ['10.0.0.2'] });
    const client = await issueCertificate(ca, { kind: 'client', commonName: 'me' });
    const s = await verifyChain(ca.cert, server.cert);
    expect(s).toMatchObject({ signedByCa: true, validNow: true, dns: ['mgr-1'], ips: ['10.0.0.2'] });
    expect(s.extendedKeyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
    const c = await verifyChain(ca.cert, client.cert);
    expect(c).toMatchObject({ signedByCa: true, validNow: true, dns: [], ips: [] });
    expect(c.extendedKeyUsage).toEqual(['1.3.6.1.5.5.7.3.2']);
    // Another CA did not sign it.
    const other = await createCa({ commonName: 'test CA' });
    expect((await verifyChain(other.cert, server.cert)).signedByCa).toBe(false);
  });

  it('refuses a server certificate without names, and an address that is not one', async () => {
    const ca = await createCa({ commonName: 'test CA' });
    await expect(issueCertificate(ca, { kind: 'server', commonName: 'x' })).rejects.toThrow(/at least one host name/);
    await expect(issueCertificate(ca, { kind: 'server', commonName: 'x', ips: ['mgr-1'] })).rejects.toBeInstanceOf(ConfigError);
  });

  it('mp certs all writes the files (keys 0600) with the managers and api.host in the server certificate', async () => {
    const dir = envDir(PROD);
    const out = join(dir, '.certs');
    const ctx = captured(undefined);
    await runCerts(ctx, { what: 'all', out, env: dir, host: [], inventory: undefined });
    expect(ctx.out()).toContain('CA created');
    for (const key of ['ca-key.pem', 'server-key.pem', 'key.pem']) expect(statSync(join(out, key)).mode & 0o777).toBe(0o600);
    const ca = readFileSync(join(out, 'ca.pem'), 'utf8');
    const server = await verifyChain(ca, readFileSync(join(out, 'server-cert.pem'), 'utf8'));
    expect(server.signedByCa).toBe(true);
    expect(server.dns.sort()).toEqual(['api.example.test', 'localhost', 'mgr-1']);
    expect(server.ips.sort()).toEqual(['10.9.0.2', '127.0.0.1']);
    expect(server.dns).not.toContain('wrk-1');
    expect((await verifyChain(ca, readFileSync(join(out, 'cert.pem'), 'utf8'))).signedByCa).toBe(true);

    // Again: the CA is reused, so client certificates already handed out stay valid.
    const again = captured(undefined);
    await runCerts(again, { what: 'server', out, env: dir, host: ['mgr-1.internal'], inventory: undefined });
    expect(again.out()).toContain('CA reused');
    expect(readFileSync(join(out, 'ca.pem'), 'utf8')).toBe(ca);
    expect((await verifyChain(ca, readFileSync(join(out, 'server-cert.pem'), 'utf8'))).dns).toContain('mgr-1.internal');

    if (hasOpenssl()) {
      for (const cert of ['server-cert.pem', 'cert.pem']) {
        const said = execFileSync('openssl', ['verify', '-CAfile', join(out, 'ca.pem'), join(out, cert)], { encoding: 'utf8' });
        expect(said.trim()).toBe(`${join(out, cert)}: OK`);
      }
      const purpose = execFileSync('openssl', ['verify', '-purpose', 'sslserver', '-CAfile', join(out, 'ca.pem'), join(out, 'server-cert.pem')], { encoding: 'utf8' });
      expect(purpose).toContain('OK');
    }
  });

  it('takes the managers from an INI inventory', () => {
    const dir = envDir('project: {files: [compose.yaml]}\ninventory: hosts.ini\n');
    writeFileSync(join(dir, 'hosts.ini'), '[managers]\nm1 ansible_host=192.0.2.10\n[workers]\nw1 ansible_host=192.0.2.11\n');
    const names = serverNames({ env: dir, host: [], inventory: undefined });
    expect(names.dns).toContain('m1');
    expect(names.ips).toContain('192.0.2.10');
    expect(names.ips).not.toContain('192.0.2.11');
  });

  it('mp shell sets DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH from api', async () => {
    const dir = envDir(PROD);
    expect(() => dockerVariables(dir)).toThrow(/cert\.pem|ca\.pem/);
    await runCerts(captured(undefined), { what: 'all', out: join(dir, '.certs'), env: dir, host: [], inventory: undefined });
    expect(dockerVariables(dir)).toEqual({ DOCKER_HOST: 'tcp://api.example.test:2376', DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: join(dir, '.certs') });
    const plain = envDir('project: {files: [compose.yaml]}\napi: {host: "tcp://10.0.0.2:2375"}\n');
    expect(dockerVariables(plain)).toEqual({ DOCKER_HOST: 'tcp://10.0.0.2:2375' });
    expect(() => dockerVariables(envDir('project: {files: [compose.yaml]}\n'))).toThrow(/no api.host/);
  });
});
