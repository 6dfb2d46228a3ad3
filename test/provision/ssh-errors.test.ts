/**
 * Bad input against a real sshd (one bare lab host): an unknown host key without
 * --accept-new-host-keys, a changed host key, a wrong SSH key, an unreachable address and an
 * unsupported OS each fail with one line naming the host and the step, before anything is changed
 * on the host; the first contact with --accept-new-host-keys records the key in mp.host_keys.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { connectDocker } from '../../agent/docker/engine.ts';
import { provisionHost, StepFailedError, type HostPayload } from '../../agent/provision/run.ts';
import { provisionSchema } from '../../agent/provision/inventory.ts';
import { freshDatabase, type TestDatabase } from '../support/database.ts';
import { describeDocker } from '../support/docker.ts';
import { startHostLab, type HostLab } from '../support/host-lab.ts';

const exec = promisify(execFile);

describeDocker('provisioning errors against a real sshd', () => {
  let lab: HostLab<'h1'>;
  let db: TestDatabase;
  let wrongKey = '';

  beforeAll(async () => {
    lab = await startHostLab('ssh', ['h1'] as const);
    db = await freshDatabase();
    wrongKey = `${lab.keyFile}-wrong`;
    await exec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', wrongKey]);
  }, 300_000);

  afterAll(async () => {
    await lab?.stop();
    await db?.drop();
  }, 120_000);

  /** Runs the `os` step of h1 (or of `address:port`), with the given key and known_hosts. */
  async function osStep(opts: { acceptNew?: boolean; key?: string; knownHosts?: string; address?: string; port?: number; pool?: boolean } = {}): Promise<unknown> {
    const host = { name: 'h1', address: opts.address ?? lab.ip.h1, role: 'manager' as const, user: 'root', port: opts.port ?? 22, labels: {}, ssh_key: opts.key ?? lab.keyFile };
    const payload: HostPayload = {
      host,
      first_manager: host,
      cluster: [host.address],
      settings: provisionSchema.parse({ known_hosts: opts.knownHosts ?? `${lab.knownHosts}-none` }),
      accept_new_host_keys: opts.acceptNew ?? false,
      steps: ['os'],
    };
    const steps: string[] = [];
    return provisionHost(
      { docker: connectDocker(), ...(opts.pool === false ? {} : { pool: db.pool }), operationId: '0', step: (_n, m) => void steps.push(m), signal: new AbortController().signal, recordSteps: false },
      payload,
    ).then(() => steps, (err: unknown) => err);
  }

  it('an unknown host key is refused without --accept-new-host-keys, naming the fingerprint and the fix', async () => {
    const err = await osStep();
    expect(err).toBeInstanceOf(StepFailedError);
    expect((err as Error).message).toMatch(/^host h1, step os: host h1 \(root@[\d.]+:22\) presented ssh-ed25519 key SHA256:\S+, which is not in known_hosts or accepted before$/);
    expect((err as StepFailedError).hint).toMatch(/--accept-new-host-keys/);
    expect((await db.pool.query(`select 1 from mp.host_keys`)).rowCount).toBe(0);
  });

  it('first contact with --accept-new-host-keys records the key; the next contact checks against it', async () => {
    const steps = await osStep({ acceptNew: true });
    expect(steps).toEqual(expect.arrayContaining([expect.stringMatching(/^host h1: accepted ssh-ed25519 key SHA256:\S+ on first contact \(recorded in mp\.host_keys\)$/)]));
    expect((await db.pool.query(`select 1 from mp.host_keys where host = $1`, [lab.ip.h1])).rowCount).toBe(1);
    expect(await osStep()).toEqual(expect.arrayContaining(['h1: os unchanged']));
  });

  it('a changed host key is refused and says someone may be intercepting', async () => {
    // known_hosts names another key for the host.
    const other = (await exec('ssh-keygen', ['-y', '-f', wrongKey])).stdout.trim();
    const file = `${lab.knownHosts}-changed`;
    writeFileSync(file, `${lab.ip.h1} ${other}\n`);
    const err = await osStep({ knownHosts: file, pool: false });
    expect((err as Error).message).toMatch(/^host h1, step os: host h1 \(root@[\d.]+:22\) presented ssh-ed25519 key SHA256:\S+, not the one known for it$/);
    expect((err as StepFailedError).hint).toMatch(/intercepting/);
  });

  it('a wrong SSH key and an unreachable address are one line each, naming the host and the step', async () => {
    const wrong = await osStep({ key: wrongKey });
    expect((wrong as Error).message).toMatch(/^host h1, step os: host h1 \(root@[\d.]+:22\): SSH refused the key: /);
    expect((wrong as StepFailedError).hint).toContain('authorized_keys');
    const closed = await osStep({ port: 2 });
    expect((closed as Error).message).toMatch(/^host h1, step os: host h1 \(root@[\d.]+:2\): cannot connect over SSH: .*ECONNREFUSED/);
    const missing = await osStep({ key: '/nonexistent/id' });
    expect((missing as Error).message).toBe('host h1, step os: host h1: SSH key /nonexistent/id does not exist');
  });

  it('an unsupported OS is refused by the os step before anything is installed', async () => {
    await lab.sh('h1', `mv /etc/os-release /etc/os-release.orig && printf 'ID=centos\\nVERSION_ID="9"\\nPRETTY_NAME="CentOS Stream 9"\\n' > /etc/os-release`);
    try {
      const err = await osStep();
      expect((err as Error).message).toBe('host h1, step os: host h1: CentOS Stream 9 is not supported');
      expect((err as StepFailedError).hint).toMatch(/Debian 12, Ubuntu 22\.04, Ubuntu 24\.04/);
    } finally {
      await lab.sh('h1', 'mv -f /etc/os-release.orig /etc/os-release');
    }
    expect(await lab.sh('h1', 'command -v docker nft || echo none')).toBe('none');
  });
});
