/**
 * Certificates for the Docker TLS API (`mp certs`): a CA, a server certificate naming the managers
 * (their host names and addresses) and a client certificate for the CLI, as `dockerd --tlsverify` and
 * the docker CLI's `DOCKER_CERT_PATH` expect them (`ca.pem`, `cert.pem`, `key.pem`; the server's pair
 * is `server-cert.pem`, `server-key.pem`).
 *
 * Made with `@peculiar/x509` over WebCrypto: ECDSA P-256 keys (Go's and Node's TLS both take them) and
 * SHA-256 signatures. Nothing here is hand-assembled ASN.1. Private keys are PKCS#8 PEM, written with
 * mode 0600 by `writeCertFiles`.
 *
 * @example
 *   const ca = await createCa({ commonName: 'minipaas prod CA' });
 *   const server = await issueCertificate(ca, { kind: 'server', commonName: 'mgr-1', dns: ['mgr-1'], ips: ['10.0.0.2'] });
 */
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { ConfigError, NotFoundError } from '../../sql/errors.ts';

const crypto = webcrypto as unknown as Crypto;
x509.cryptoProvider.set(crypto);

const KEY_ALGORITHM: EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
const SIGNING: EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };
const DAY_MS = 86_400_000;

/** The file names of a certificate directory (`--out`), as Docker names them. */
export const CERT_FILES = {
  caCert: 'ca.pem',
  caKey: 'ca-key.pem',
  serverCert: 'server-cert.pem',
  serverKey: 'server-key.pem',
  clientCert: 'cert.pem',
  clientKey: 'key.pem',
} as const;

/** A certificate with its private key, both PEM. */
export interface CertPair {
  cert: string;
  key: string;
}

/** What a leaf certificate is for, and the names it carries. */
export interface LeafRequest {
  kind: 'server' | 'client';
  commonName: string;
  /** DNS names (subject alternative names), server certificates only. */
  dns?: string[];
  /** IP addresses (subject alternative names), server certificates only. */
  ips?: string[];
  /** Days of validity (default 825, what browsers and most tools still accept). */
  days?: number;
}

async function newKeys(): Promise<CryptoKeyPair> {
  return (await crypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
}

async function keyPem(key: CryptoKey): Promise<string> {
  const der = await crypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

async function importKey(pem: string): Promise<CryptoKey> {
  return await crypto.subtle.importKey('pkcs8', x509.PemConverter.decodeFirst(pem), KEY_ALGORITHM, true, ['sign']);
}

/** A new self-signed CA (10 years by default). */
export async function createCa(opts: { commonName: string; days?: number; now?: Date }): Promise<CertPair> {
  const keys = await newKeys();
  const now = opts.now ?? new Date();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: [{ CN: [opts.commonName] }, { O: ['MiniPaaS'] }],
    keys,
    signingAlgorithm: SIGNING,
    notBefore: new Date(now.getTime() - DAY_MS),
    notAfter: new Date(now.getTime() + (opts.days ?? 3650) * DAY_MS),
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert: cert.toString('pem'), key: await keyPem(keys.privateKey) };
}

/**
 * Issues a server or client certificate signed by `ca`. Throws `ConfigError` for a server certificate
 * without any name, or an address that is not an IP address.
 */
export async function issueCertificate(ca: CertPair, req: LeafRequest, now: Date = new Date()): Promise<CertPair> {
  const caCert = new x509.X509Certificate(ca.cert);
  const caKey = await importKey(ca.key);
  const keys = await newKeys();
  const dns = [...new Set(req.dns ?? [])];
  const ips = [...new Set(req.ips ?? [])];
  for (const ip of ips) {
    if (isIP(ip) === 0) {
      throw new ConfigError('INVALID_ADDRESS', `'${ip}' is not an IP address (server certificate for ${req.commonName})`, 'put host names in the DNS list');
    }
  }
  if (req.kind === 'server' && dns.length + ips.length === 0) {
    throw new ConfigError(
      'NO_SERVER_NAMES',
      'a server certificate needs at least one host name or address',
      'list the managers under hosts: in minipaas.yaml, set api.host, or pass --host',
    );
  }
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
    new x509.ExtendedKeyUsageExtension([req.kind === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth]),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(caCert, false),
  ];
  if (req.kind === 'server') {
    extensions.push(
      new x509.SubjectAlternativeNameExtension([
        ...dns.map((value) => ({ type: 'dns' as const, value })),
        ...ips.map((value) => ({ type: 'ip' as const, value })),
      ]),
    );
  }
  const cert = await x509.X509CertificateGenerator.create({
    subject: [{ CN: [req.commonName] }, { O: ['MiniPaaS'] }],
    issuer: caCert.subject,
    publicKey: keys.publicKey,
    signingKey: caKey,
    signingAlgorithm: SIGNING,
    notBefore: new Date(now.getTime() - DAY_MS),
    notAfter: new Date(now.getTime() + (req.days ?? 825) * DAY_MS),
    extensions,
  });
  return { cert: cert.toString('pem'), key: await keyPem(keys.privateKey) };
}

/** What `verifyChain` found: whether `cert` was signed by `ca` and is valid now, and its names. */
export interface ChainCheck {
  signedByCa: boolean;
  validNow: boolean;
  dns: string[];
  ips: string[];
  extendedKeyUsage: string[];
}

/** Checks a certificate against a CA with the library (signature, validity, names). */
export async function verifyChain(caPem: string, certPem: string, now: Date = new Date()): Promise<ChainCheck> {
  const ca = new x509.X509Certificate(caPem);
  const cert = new x509.X509Certificate(certPem);
  const signedByCa = cert.issuer === ca.subject && (await cert.verify({ publicKey: ca.publicKey, date: now }));
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  const eku = cert.getExtension(x509.ExtendedKeyUsageExtension);
  return {
    signedByCa,
    validNow: cert.notBefore <= now && now <= cert.notAfter,
    dns: san?.names.items.filter((n) => n.type === 'dns').map((n) => n.value) ?? [],
    ips: san?.names.items.filter((n) => n.type === 'ip').map((n) => n.value) ?? [],
    extendedKeyUsage: (eku?.usages ?? []).map(String),
  };
}

/** Writes PEM files into `dir` (created 0700): certificates 0644, keys 0600 (set even on an existing file). */
export function writeCertFiles(dir: string, files: Partial<Record<keyof typeof CERT_FILES, string>>): string[] {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const written: string[] = [];
  for (const [which, pem] of Object.entries(files) as [keyof typeof CERT_FILES, string][]) {
    const path = join(dir, CERT_FILES[which]);
    const mode = which.endsWith('Key') ? 0o600 : 0o644;
    writeFileSync(path, pem, { mode });
    chmodSync(path, mode);
    written.push(path);
  }
  return written;
}

/** The CA of a certificate directory; `NotFoundError` naming the missing file when there is none. */
export function readCa(dir: string): CertPair {
  const cert = join(dir, CERT_FILES.caCert);
  const key = join(dir, CERT_FILES.caKey);
  if (!existsSync(cert) || !existsSync(key)) {
    throw new NotFoundError('NO_CA', `no CA in ${dir} (${CERT_FILES.caCert} and ${CERT_FILES.caKey})`, `make one with \`mp certs all --out ${dir}\``);
  }
  return { cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8') };
}

/** Splits names into DNS names and IP addresses, for a server certificate's alternative names. */
export function splitNames(names: Iterable<string>): { dns: string[]; ips: string[] } {
  const dns = new Set<string>();
  const ips = new Set<string>();
  for (const name of names) {
    if (!name) continue;
    (isIP(name) ? ips : dns).add(name);
  }
  return { dns: [...dns], ips: [...ips] };
}
