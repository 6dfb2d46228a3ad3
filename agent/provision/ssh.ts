/**
 * The SSH adapter of provisioning: one verified connection per host (node-ssh over ssh2), commands with
 * their exit code and output, files written through `cat`, and the host's Docker API reached through
 * the same connection (an OpenSSH stream-local forward of `/var/run/docker.sock`), so the join tokens
 * and every Swarm call go over SSH and never through a shell command line.
 *
 * Host keys: the key a host presents must match its known_hosts entry or the key recorded in
 * `mp.host_keys`. An unknown key is refused unless `acceptNew` is set (`--accept-new-host-keys`); it is
 * then recorded. A key that differs from a known one is always refused.
 */
import { createHash, createHmac } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import type { Duplex } from 'node:stream';
import { homedir } from 'node:os';
import { createRequire } from 'node:module';
import type Dockerode from 'dockerode';
import type { NodeSSH } from 'node-ssh';
import { DockerEngine } from '../docker/engine.ts';
import { ConfigError, HostUnreachableError } from '../../sql/errors.ts';

/** How a host is reached. */
export interface SshTarget {
  name: string;
  address: string;
  port: number;
  user: string;
  /** Private key file; absent: ssh-agent ($SSH_AUTH_SOCK), then ~/.ssh/id_ed25519, id_ecdsa, id_rsa. */
  sshKey?: string;
}

/** A host key as it is written in known_hosts: type and base64 blob. */
export interface HostKey {
  type: string;
  base64: string;
  /** `SHA256:...`, as `ssh-keygen -l` prints it. */
  fingerprint: string;
}

/** Decides whether a presented host key is trusted. */
export interface HostKeyPolicy {
  /** Keys known for `host:port` (known_hosts and the database). */
  known(target: SshTarget): Promise<HostKey[]>;
  /** Records a first-contact key; returns the key recorded (another one: someone else recorded first). */
  accept?(target: SshTarget, key: HostKey): Promise<HostKey>;
}

/** The host presented a key nobody accepted, or a different one than was known. */
export class HostKeyError extends HostUnreachableError {}

/** The fields of an SSH public key blob: its type name comes first. */
export function hostKeyOf(blob: Buffer): HostKey {
  const len = blob.readUInt32BE(0);
  return {
    type: blob.subarray(4, 4 + len).toString('latin1'),
    base64: blob.toString('base64'),
    fingerprint: `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`,
  };
}

/** known_hosts names a host by `host` for port 22 and `[host]:port` otherwise, in clear or hashed (`|1|salt|hmac`). */
function matchesHost(pattern: string, target: SshTarget): boolean {
  const wanted = target.port === 22 ? [target.address, target.name] : [`[${target.address}]:${target.port}`, `[${target.name}]:${target.port}`];
  if (pattern.startsWith('|1|')) {
    const [, , salt, hash] = pattern.split('|');
    return wanted.some((w) => createHmac('sha1', Buffer.from(salt ?? '', 'base64')).update(w).digest('base64') === hash);
  }
  return pattern.split(',').some((p) => wanted.includes(p));
}

/** The keys a known_hosts text lists for a host (revoked and CA lines are not trusted keys). */
export function knownHostKeys(text: string, target: SshTarget): HostKey[] {
  const keys: HostKey[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith('@')) continue;
    const [hosts, type, base64] = line.split(/\s+/);
    if (!hosts || !type || !base64 || !matchesHost(hosts, target)) continue;
    const key = hostKeyOf(Buffer.from(base64, 'base64'));
    if (key.type === type) keys.push(key);
  }
  return keys;
}

/** A policy over a known_hosts file (missing: none known) plus the database's accepted keys. */
export function fileAndDatabasePolicy(opts: {
  knownHostsFile?: string;
  fromDatabase?: (t: SshTarget) => Promise<HostKey[]>;
  accept?: (t: SshTarget, key: HostKey) => Promise<HostKey>;
}): HostKeyPolicy {
  const file = opts.knownHostsFile ?? `${homedir()}/.ssh/known_hosts`;
  return {
    async known(target) {
      const fromFile = existsSync(file) ? knownHostKeys(readFileSync(file, 'utf8'), target) : [];
      return [...fromFile, ...((await opts.fromDatabase?.(target)) ?? [])];
    },
    ...(opts.accept ? { accept: opts.accept } : {}),
  };
}

/** What a command said. */
export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** One verified SSH connection to a host. */
export interface HostSession {
  readonly target: SshTarget;
  /** The host key the host presented (verified). */
  readonly hostKey: HostKey;
  /** Whether that key was accepted on this contact (first contact, `--accept-new-host-keys`). */
  readonly keyAccepted: boolean;
  /** Runs `sh -c command` (as root: through sudo when the user is not root); never throws for a non-zero exit. */
  run(command: string, opts?: { stdin?: string }): Promise<CommandResult>;
  /** The host's Docker API over this connection. */
  docker(): DockerEngine;
  /** A TCP connection to `127.0.0.1:port` on the host, through this connection (`ssh -L`'s channel). */
  forward(port: number): Promise<Duplex>;
  close(): void;
}

function defaultKeyFiles(): string[] {
  return ['id_ed25519', 'id_ecdsa', 'id_rsa'].map((f) => `${homedir()}/.ssh/${f}`).filter((p) => existsSync(p));
}

/**
 * Connects and verifies the host key. Throws `HostKeyError` for an unknown or changed key,
 * `HostUnreachableError` when the host cannot be reached or refuses the key, naming the host.
 */
export async function openSession(target: SshTarget, policy: HostKeyPolicy, opts: { acceptNew: boolean; timeoutMs?: number }): Promise<HostSession> {
  const { NodeSSH: NodeSSHClass } = createRequire(import.meta.url)('node-ssh') as { NodeSSH: new () => NodeSSH };
  const ssh = new NodeSSHClass();
  const known = await policy.known(target);
  let presented: HostKey | undefined;
  let refusal: HostKeyError | undefined;
  let accepted = false;
  const where = `${target.user}@${target.address}:${target.port}`;
  const keyFile = target.sshKey?.replace(/^~(?=\/)/, homedir());
  if (keyFile && !existsSync(keyFile)) {
    throw new ConfigError('NO_SSH_KEY', `host ${target.name}: SSH key ${keyFile} does not exist`, 'fix ssh_key (ansible_ssh_private_key_file) or leave it out to use ssh-agent');
  }
  const keys = keyFile ? [keyFile] : defaultKeyFiles();
  const types = [...new Set(known.map((k) => k.type))];
  try {
    await ssh.connect({
      host: target.address,
      port: target.port,
      username: target.user,
      ...(keys[0] ? { privateKeyPath: keys[0] } : {}),
      ...(process.env.SSH_AUTH_SOCK && !keyFile ? { agent: process.env.SSH_AUTH_SOCK } : {}),
      readyTimeout: opts.timeoutMs ?? 20_000,
      // Offer only the key types we know for this host, so the check compares like with like.
      ...(types.length ? { algorithms: { serverHostKey: types as never } } : {}),
      hostVerifier: (blob: Buffer, verify: (ok: boolean) => void) => {
        const key = hostKeyOf(blob);
        presented = key;
        if (known.some((k) => k.type === key.type && k.base64 === key.base64)) return verify(true);
        if (known.length > 0) {
          refusal = new HostKeyError(
            'HOST_KEY_CHANGED',
            `host ${target.name} (${where}) presented ${key.type} key ${key.fingerprint}, not the one known for it`,
            'if the host was reinstalled, remove its old key (known_hosts, or mp.host_keys) and provision again; otherwise someone may be intercepting the connection',
          );
          return verify(false);
        }
        if (!opts.acceptNew || !policy.accept) {
          refusal = new HostKeyError(
            'HOST_KEY_UNKNOWN',
            `host ${target.name} (${where}) presented ${key.type} key ${key.fingerprint}, which is not in known_hosts or accepted before`,
            'check the fingerprint (ssh-keygen -lf /etc/ssh/ssh_host_*.pub on the host), then add it to known_hosts or run `mp provision --accept-new-host-keys`',
          );
          return verify(false);
        }
        policy.accept(target, key).then(
          (recorded) => {
            accepted = recorded.base64 === key.base64;
            if (!accepted) {
              refusal = new HostKeyError('HOST_KEY_CHANGED', `host ${target.name} (${where}) presented ${key.fingerprint}, but ${recorded.fingerprint} was recorded for it`, 'remove the recorded key from mp.host_keys if the host was reinstalled');
            }
            verify(accepted);
          },
          () => verify(false),
        );
        return undefined;
      },
    } as never);
  } catch (err) {
    ssh.dispose();
    if (refusal) throw refusal;
    const message = err instanceof Error ? err.message : String(err);
    const auth = /authentication|auth methods/i.test(message);
    throw new HostUnreachableError(
      auth ? 'SSH_AUTH_FAILED' : 'HOST_UNREACHABLE',
      `host ${target.name} (${where}): ${auth ? 'SSH refused the key' : 'cannot connect over SSH'}: ${message}`,
      auth ? `check the key (${keyFile ?? 'ssh-agent or ~/.ssh/id_*'}) is in ~${target.user}/.ssh/authorized_keys on the host` : 'check the address, the port and that sshd runs; the firewall must allow SSH',
    );
  }
  const sudo = target.user === 'root' ? '' : 'sudo -n ';
  let docker: DockerEngine | undefined;
  return {
    target,
    hostKey: presented!,
    keyAccepted: accepted,
    async run(command, runOpts = {}) {
      const r = await ssh.execCommand(`${sudo}sh -c ${shellQuote(command)}`, runOpts.stdin !== undefined ? { stdin: runOpts.stdin } : {});
      return { code: r.code ?? -1, stdout: r.stdout, stderr: r.stderr };
    },
    docker() {
      docker ??= dockerOverSsh(ssh, target);
      return docker;
    },
    forward(port) {
      return ssh.forwardOut('127.0.0.1', 0, '127.0.0.1', port);
    },
    close() {
      ssh.dispose();
    },
  };
}

/** A DockerEngine whose HTTP requests go over the SSH connection to the host's Docker socket. */
function dockerOverSsh(ssh: NodeSSH, target: SshTarget): DockerEngine {
  const agent = new http.Agent({ keepAlive: false });
  // Node's Agent waits for the callback when createConnection returns nothing.
  (agent as unknown as { createConnection: (o: unknown, cb: (err: Error | null, s?: unknown) => void) => void }).createConnection = (_o, cb) => {
    ssh.forwardOutStreamLocal('/var/run/docker.sock').then(
      (stream) => cb(null, stream),
      (err: unknown) => cb(err instanceof Error ? err : new Error(String(err))),
    );
  };
  const DockerodeClass = createRequire(import.meta.url)('dockerode') as typeof Dockerode;
  const api = new DockerodeClass({ protocol: 'http', host: 'docker', port: 80, agent } as Dockerode.DockerOptions);
  return new DockerEngine(api, `ssh://${target.user}@${target.address}:${target.port}/var/run/docker.sock`);
}

/** POSIX single-quoting for one shell word. */
export function shellQuote(value: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}
