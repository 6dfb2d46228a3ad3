/**
 * A lab of bare hosts for provisioning tests: Debian 12 containers with sshd only (images/host) on a
 * private bridge network, an apt-cacher-ng for Debian's packages, and an SSH key the hosts accept.
 * The hosts run with the capabilities LAB.md lists (not --privileged). Everything else on them is
 * `mp provision`'s doing.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { waitFor } from './wait.ts';

const exec = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..');
const HOST_IMAGE = process.env.MP_LAB_HOST_IMAGE ?? 'mp-lab/host:bookworm';
const CACHER_IMAGE = process.env.MP_LAB_APT_CACHER_IMAGE ?? 'mp-lab/apt-cacher:bookworm';
const CAPS = [
  'SYS_ADMIN', 'NET_ADMIN', 'SYS_MODULE', 'SYS_PTRACE', 'SYS_RAWIO', 'SYS_TIME', 'SYS_NICE', 'MKNOD', 'NET_RAW', 'IPC_LOCK', 'IPC_OWNER',
  'SYS_CHROOT', 'DAC_READ_SEARCH', 'LINUX_IMMUTABLE', 'NET_BROADCAST', 'SYS_BOOT', 'SYS_PACCT', 'SYS_TTY_CONFIG', 'LEASE', 'AUDIT_CONTROL',
  'MAC_ADMIN', 'MAC_OVERRIDE', 'SYSLOG', 'WAKE_ALARM', 'BLOCK_SUSPEND', 'AUDIT_READ',
];

export async function docker(...args: string[]): Promise<string> {
  return (await exec('docker', args, { maxBuffer: 64 * 1024 * 1024 })).stdout.trim();
}

export interface HostLab<R extends string> {
  /** Container names (also the hosts' hostnames), by role. */
  names: Record<R, string>;
  /** Addresses on the lab network, by role. */
  ip: Record<R, string>;
  /** The lab network's gateway: this machine, as the hosts see it. */
  gateway: string;
  /** The private key the hosts accept, and a known_hosts path (empty until first contact). */
  keyFile: string;
  knownHosts: string;
  /** Whether `port` on `to` is reachable from the host of role `from` ('open' or 'closed'). */
  probe(from: R, to: string, port: number): Promise<'open' | 'closed'>;
  /** Runs a command on the host of `role` (as root). */
  sh(role: R, script: string): Promise<string>;
  stop(): Promise<void>;
}

/** Builds the host image (cached by content) and starts one host per role, each with sshd up. */
export async function startHostLab<R extends string>(prefix: string, roles: readonly R[], opts: { cacheVolume?: string } = {}): Promise<HostLab<R>> {
  // One apt-cacher-ng per cache volume: two labs running at once each keep their own.
  const cacheVolume = opts.cacheVolume ?? `mp-lab-apt-cache-${prefix}`;
  await exec(join(ROOT, 'images/host/build.sh'), [], { cwd: ROOT });
  const id = randomBytes(3).toString('hex');
  const net = `mpt-${prefix}-${id}`;
  const names = Object.fromEntries(roles.map((r) => [r, `mpt-${prefix}-${r}-${id}`])) as Record<R, string>;
  const cacher = `mpt-${prefix}-apt-${id}`;
  const containers: string[] = [];
  const ip = {} as Record<R, string>;
  const stop = async (): Promise<void> => {
    // In parallel: each host's engine keeps its images on vfs, slow to delete.
    await Promise.all(containers.map((c) => docker('rm', '-f', '-v', c).catch(() => '')));
    await docker('network', 'rm', net).catch(() => '');
  };
  try {
    await docker('network', 'create', '--label', 'org.minipaas.test=1', net);
    const gateway = await docker('network', 'inspect', '-f', '{{(index .IPAM.Config 0).Gateway}}', net);
    const keyDir = mkdtempSync(join(tmpdir(), `mp-${prefix}-ssh-`));
    const keyFile = join(keyDir, 'id');
    await exec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', keyFile, '-C', `mp-${prefix}`]);
    const pub = readFileSync(`${keyFile}.pub`, 'utf8').trim();
    await docker('volume', 'create', cacheVolume);
    containers.push(cacher);
    await docker('run', '-d', '--name', cacher, '--label', 'org.minipaas.test=1', '--network', net, '-v', `${cacheVolume}:/var/cache/apt-cacher-ng`, CACHER_IMAGE);
    const cacherIp = await docker('inspect', '-f', `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`, cacher);
    for (const role of roles) {
      const name = names[role];
      containers.push(name);
      await docker(
        'run', '-d', '--name', name, '--hostname', name, '--label', 'org.minipaas.test=1', '--network', net,
        ...CAPS.flatMap((c) => ['--cap-add', c]),
        '--security-opt', 'seccomp=unconfined', '--security-opt', 'apparmor=unconfined', '--security-opt', 'systempaths=unconfined',
        '--cgroupns=host', '-v', '/sys/fs/cgroup:/sys/fs/cgroup',
        '-e', `AUTHORIZED_KEY=${pub}`, '-e', `APT_PROXY=http://${cacherIp}:3142`,
        HOST_IMAGE,
      );
      ip[role] = await docker('inspect', '-f', `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`, name);
    }
    for (const role of roles) {
      await waitFor(`sshd on ${role}`, () => new Promise<boolean>((resolve) => {
        const s = connect(22, ip[role]);
        s.once('data', () => (s.destroy(), resolve(true)));
        s.once('error', () => resolve(false));
      }), { timeoutMs: 30_000, intervalMs: 250 });
    }
    const sh = async (role: R, script: string): Promise<string> => (await exec('docker', ['exec', names[role], 'bash', '-c', script])).stdout.trim();
    return {
      names,
      ip,
      gateway,
      keyFile,
      knownHosts: join(keyDir, 'known_hosts'),
      probe: async (from, to, port) => ((await sh(from, `timeout 3 bash -c '</dev/tcp/${to}/${port}' 2>/dev/null && echo open || echo closed`)) === 'open' ? 'open' : 'closed'),
      sh,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
