/**
 * Sealing secret values to the cluster key. A *sealed* value is a libsodium sealed box
 * (`crypto_box_seal`: an ephemeral X25519 key, XSalsa20-Poly1305) encrypted to the cluster's public key,
 * as standard base64: anyone with the public key (the CLI) can seal, only the holder of the private key
 * (a manager agent) can open. The public keys are in `mp.cluster_keys`; the private keys live in a key
 * file (mode 0600) that is never in the database.
 *
 * Terminology: *cluster key* is the key pair secrets are sealed to; a *key file* holds one or more
 * pairs (several during a rotation, before the old private key is destroyed); a secret's *version* is
 * derived from its content (`secretVersion`), so the same value is the same version.
 *
 * @example
 *   const keys = await generateClusterKeys();
 *   const sealed = await sealValue(keys.keys[0].publicKey, Buffer.from('s3cret'));
 *   (await openValue(keys, sealed)).toString(); // 's3cret'
 */
import { createHash, scrypt } from 'node:crypto';
import { chmod, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { sql, type QueryExecutorProvider } from 'kysely';
import type Sodium from 'libsodium-wrappers';
import { ConfigError, ConflictError, mapDatabaseErrors, NotFoundError } from '../errors.ts';

/** One key pair, both halves standard base64. */
export interface ClusterKeyPair {
  publicKey: string;
  privateKey: string;
}

/** The private side an agent holds: every pair it can open with, newest last. */
export interface ClusterKeys {
  keys: ClusterKeyPair[];
  /** The key file they were read from, when one: a key rotation writes the new pair there. */
  path?: string;
}

let loading: Promise<typeof Sodium> | undefined;

/**
 * libsodium, loaded on first use: its WebAssembly takes tens of milliseconds to start, which commands
 * that seal nothing must not pay. (Its ESM build in 0.7.16 imports a file it does not ship; the
 * CommonJS build works.)
 */
function sodium(): Promise<typeof Sodium> {
  loading ??= (async () => {
    const lib = createRequire(import.meta.url)('libsodium-wrappers') as typeof Sodium;
    await lib.ready;
    return lib;
  })();
  return loading;
}

const B64 = (s: typeof Sodium): number => s.base64_variants.ORIGINAL;

/** A new X25519 key pair for sealed boxes. */
export async function generateKeyPair(): Promise<ClusterKeyPair> {
  const s = await sodium();
  const kp = s.crypto_box_keypair();
  return { publicKey: s.to_base64(kp.publicKey, B64(s)), privateKey: s.to_base64(kp.privateKey, B64(s)) };
}

/** A key file's content with one new pair. */
export async function generateClusterKeys(): Promise<ClusterKeys> {
  return { keys: [await generateKeyPair()] };
}

function decodeKey(s: typeof Sodium, b64: string, what: string): Uint8Array {
  let bytes: Uint8Array;
  try {
    bytes = s.from_base64(b64, B64(s));
  } catch {
    throw new ConfigError('BAD_CLUSTER_KEY', `the ${what} is not base64`, 'the key file or mp.cluster_keys was edited by hand; restore it');
  }
  if (bytes.length !== s.crypto_box_PUBLICKEYBYTES) {
    throw new ConfigError('BAD_CLUSTER_KEY', `the ${what} has ${bytes.length} bytes, not ${s.crypto_box_PUBLICKEYBYTES}`, 'restore the key file');
  }
  return bytes;
}

/** Seals `plaintext` to the public key (base64); returns the sealed box, base64. */
export async function sealValue(publicKeyB64: string, plaintext: Uint8Array): Promise<string> {
  const s = await sodium();
  return s.to_base64(s.crypto_box_seal(plaintext, decodeKey(s, publicKeyB64, 'cluster public key')), B64(s));
}

/**
 * Opens a sealed box with whichever pair of `keys` it was sealed to (a sealed box does not say, and
 * trying the few pairs a key file holds costs microseconds). Throws `ConflictError` when none opens it:
 * the value was sealed to a key this agent does not hold.
 */
export async function openValue(keys: ClusterKeys, sealedB64: string): Promise<Uint8Array> {
  const s = await sodium();
  let box: Uint8Array;
  try {
    box = s.from_base64(sealedB64, B64(s));
  } catch {
    throw new ConfigError('BAD_SEALED_VALUE', 'a sealed value is not base64', 'it was changed after it was sealed; create the secret again');
  }
  for (const pair of [...keys.keys].reverse()) {
    try {
      return s.crypto_box_seal_open(box, decodeKey(s, pair.publicKey, 'public key'), decodeKey(s, pair.privateKey, 'private key'));
    } catch {
      // not this pair
    }
  }
  throw new ConflictError(
    'SEALED_TO_UNKNOWN_KEY',
    `a sealed value cannot be opened with the ${keys.keys.length} cluster key${keys.keys.length === 1 ? '' : 's'} this agent holds`,
    'the agent has an old key file: give it the current one (`mp agent install` again), or create the secret again',
  );
}

function parseKeyFile(text: string, path: string): ClusterKeys {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ConfigError('BAD_CLUSTER_KEY', `cluster key file ${path} is not JSON`, 'restore it from your backup');
  }
  const keys = (parsed as { keys?: unknown }).keys;
  const ok =
    Array.isArray(keys) &&
    keys.length > 0 &&
    keys.every((k) => typeof (k as ClusterKeyPair)?.publicKey === 'string' && typeof (k as ClusterKeyPair)?.privateKey === 'string');
  if (!ok) throw new ConfigError('BAD_CLUSTER_KEY', `cluster key file ${path} has no "keys" list of {publicKey, privateKey}`, 'restore it from your backup');
  return { keys: (keys as ClusterKeyPair[]).map((k) => ({ publicKey: k.publicKey, privateKey: k.privateKey })) };
}

/** Reads a key file; `NotFoundError` when it does not exist, `ConfigError` when it is not one. */
export async function loadClusterKeys(path: string): Promise<ClusterKeys> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new NotFoundError('NO_CLUSTER_KEY', `cluster key file ${path} does not exist`, 'set MP_CLUSTER_KEY_FILE to the key file (`mp agent install` mounts it)');
    }
    throw err;
  }
  return { ...parseKeyFile(text, path), path };
}

/** The key file's text: JSON, one pair per line, so a diff of two files shows which pair changed. */
export function keyFileText(keys: ClusterKeys): string {
  return `{"keys": [\n${keys.keys.map((k) => `  ${JSON.stringify({ publicKey: k.publicKey, privateKey: k.privateKey })}`).join(',\n')}\n]}\n`;
}

/**
 * Writes a key file with mode 0600, atomically (a temporary file in the same folder, renamed over the
 * old one): a crash leaves the old file or the new one, never half of one, and never a moment where
 * another user may read it (the temporary file is created 0600).
 */
export async function writeClusterKeys(path: string, keys: ClusterKeys): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.${Date.now()}.tmp`;
  const handle = await open(tmp, 'wx', 0o600);
  try {
    await handle.writeFile(keyFileText(keys));
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await chmod(tmp, 0o600); // against a umask that took bits away: 0600 exactly
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** The cluster's active public key and its id in `mp.cluster_keys`. */
export interface ActiveKey {
  id: string;
  publicKey: string;
}

/** The active public key (to seal to); `NotFoundError` when the cluster has none yet. */
export async function clusterPublicKey(db: QueryExecutorProvider): Promise<ActiveKey> {
  const { rows } = await mapDatabaseErrors(() =>
    sql<{ id: string; public_key: string }>`select id, public_key from mp.cluster_key_active()`.execute(db),
  );
  return { id: rows[0]!.id, publicKey: rows[0]!.public_key };
}

/**
 * Registers the key pair's public half as the cluster key (idempotent); `ConflictError` when another
 * key is active. Returns its id.
 */
export async function registerClusterKey(db: QueryExecutorProvider, publicKey: string): Promise<string> {
  const { rows } = await mapDatabaseErrors(() => sql<{ id: string }>`select mp.cluster_key_register(${publicKey}) as id`.execute(db));
  return rows[0]!.id;
}

/**
 * The key file at `path`, created with a new pair (and its public key registered) when it does not
 * exist; the file's newest public key registered otherwise. What `mp dev` does on start.
 */
export async function ensureClusterKeys(db: QueryExecutorProvider, path: string): Promise<{ keys: ClusterKeys; created: boolean }> {
  let keys: ClusterKeys;
  let created = false;
  try {
    keys = await loadClusterKeys(path);
  } catch (err) {
    if (!(err instanceof NotFoundError)) throw err;
    keys = await generateClusterKeys();
    created = true;
  }
  // Registered before the file is written: if another key is active (a database whose key file was
  // lost), nothing is left behind that would look like the cluster's key.
  await registerClusterKey(db, keys.keys.at(-1)!.publicKey);
  if (created) await writeClusterKeys(path, keys);
  return { keys: { ...keys, path }, created };
}

/** The scrypt cost of a secret version: 32 MiB and ~50 ms per guess, so guessing a weak value is slow. */
const VERSION_SCRYPT = { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };

/**
 * scrypt over `value`, keyed by the cluster's salt and a context (environment and name), `bytes` long,
 * as hex. The one derivation behind secret versions and file-based secrets' digests.
 */
export async function saltedDigest(salt: Uint8Array, context: string[], value: Uint8Array, bytes: number): Promise<string> {
  const key = Buffer.concat([Buffer.from(salt), Buffer.from(context.map((c) => `\0${c}`).join(''), 'utf8')]);
  const out = await new Promise<Buffer>((resolve, reject) =>
    scrypt(value, key, bytes, VERSION_SCRYPT, (err, derived) => (err ? reject(err) : resolve(derived))),
  );
  return out.toString('hex');
}

/**
 * A secret's version: 12 hex characters (48 bits) of scrypt over the value, salted with the cluster's
 * random salt, the environment and the name. Content-derived (the same value is the same version), but
 * unlike a plain hash it does not let someone who reads `mp.secrets` confirm a guessed weak value
 * cheaply, and equal values under two names get different versions. See sql/control/0005_secrets.sql.
 */
export async function secretVersion(salt: Uint8Array, environment: string, name: string, value: Uint8Array): Promise<string> {
  return await saltedDigest(salt, [environment, name], value, 6);
}

/** A config's version: 12 hex characters of sha256 of the content (configs are not secret). */
export function configVersion(content: Uint8Array): string {
  return createHash('sha256').update(content).digest('hex').slice(0, 12);
}

/** The cluster's version salt (`mp.cluster.version_salt`). */
export async function versionSalt(db: QueryExecutorProvider): Promise<Buffer> {
  const { rows } = await mapDatabaseErrors(() => sql<{ salt: Buffer }>`select version_salt as salt from mp.cluster`.execute(db));
  return rows[0]!.salt;
}
