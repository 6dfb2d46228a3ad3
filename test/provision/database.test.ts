/**
 * The control plane's database on a `[database]` host (an INI inventory, as the original role used):
 * `mp provision` installs PostgreSQL there from Debian's packages, listening on the private address with
 * TLS and scram passwords for the cluster's nodes only, migrates it through an SSH tunnel, and hands its
 * URL to the manager's agent as a Docker secret. The agent then heartbeats into that database, over TLS.
 * A host outside the cluster cannot reach 5432; the password is in no row or event of the provisioner's
 * database and in no service spec. A second run changes nothing.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startAgent, type RunningAgent } from '../../agent/agent.ts';
import { connectDocker } from '../../agent/docker/engine.ts';
import { run as runProvision } from '../../cli/commands/provision.ts';
import { loadMigrations } from '../../sql/migrate.ts';
import { captured } from '../cli/harness.ts';
import { freshDatabase, type TestDatabase } from '../support/database.ts';
import { describeDocker } from '../support/docker.ts';
import { startHostLab, type HostLab } from '../support/host-lab.ts';
import { waitFor } from '../support/wait.ts';

const exec = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..');

describeDocker('a [database] host: the control plane on PostgreSQL that mp provision installs', () => {
  let lab: HostLab<'db' | 'mgr' | 'out'>;
  let db: TestDatabase;
  let agent: RunningAgent | undefined;
  let envDir = '';
  const timings: Record<string, number> = {};

  /** psql on the database host, as its superuser, in the minipaas database. */
  const psql = (sql: string): Promise<string> => lab.sh('db', `cd / && su postgres -s /bin/sh -c ${JSON.stringify(`psql -d minipaas -tAXc "${sql.replace(/"/g, '\\"')}"`)}`);

  beforeAll(async () => {
    await exec(join(ROOT, 'images/agent/build.sh'), [], { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 });
    lab = await startHostLab('dbh', ['db', 'mgr', 'out'] as const);
    db = await freshDatabase();
    envDir = mkdtempSync(join(tmpdir(), 'mp-dbh-env-'));
    const line = (name: string, address: string): string => `${name} ansible_host=${address} ansible_ssh_private_key_file=${lab.keyFile}`;
    writeFileSync(join(envDir, 'hosts.ini'), ['[managers]', line(lab.names.mgr, lab.ip.mgr), '', '[database]', line(lab.names.db, lab.ip.db), ''].join('\n'));
    writeFileSync(
      join(envDir, 'minipaas.yaml'),
      ['project: {files: [compose.yaml]}', 'inventory: hosts.ini', 'provision:', '  daemon: {storage-driver: vfs}', `  known_hosts: ${lab.knownHosts}`, ''].join('\n'),
    );
    // No MP_AGENTS_DATABASE_URL: the agents get the database host's URL.
    delete process.env.MP_AGENTS_DATABASE_URL;
    agent = await startAgent({ pool: db.pool, docker: connectDocker(), name: `mpt-dbh-prov`, provisioner: true, manager: false, heartbeatMs: 2_000 });
  }, 600_000);

  afterAll(async () => {
    console.log(`database host timings: ${JSON.stringify(timings)}`);
    await agent?.stop();
    await lab?.stop();
    await db?.drop();
  }, 300_000);

  it('provisions the database host and the manager; the manager agent heartbeats into the new database over TLS', async () => {
    const ctx = captured(db.url);
    const t0 = Date.now();
    try {
      await runProvision(ctx, { env: envDir, acceptNewHostKeys: true, dryRun: false, detach: false, timeout: 1200 });
    } finally {
      console.log(ctx.out());
      await ctx.close();
    }
    timings.first_run_s = Math.round((Date.now() - t0) / 1000);
    expect(ctx.out()).toMatch(new RegExp(`${lab.names.db}: operation \\d+ \\(database; steps os, firewall, postgres, database\\)`));
    expect(ctx.out()).toMatch(/provisioned 2 of 2 hosts/);

    // Migrated: every migration this code ships.
    expect(Number(await psql('select count(*) from mp.migrations'))).toBe((await loadMigrations()).length);
    // The manager's agent registered in the provisioned database, not in the provisioner's.
    await waitFor('the manager agent alive in the database host', async () => (await psql(`select name from mp.nodes_v where alive`)).split('\n').includes(lab.names.mgr) || undefined, {
      timeoutMs: 120_000,
      intervalMs: 1000,
    });
    expect((await db.pool.query(`select 1 from mp.nodes where name = $1`, [lab.names.mgr])).rowCount).toBe(0);
    // Its connections come from the manager's private address, every one over TLS.
    const ssl = await psql(`select count(*) || ' ' || bool_and(s.ssl) from pg_stat_ssl s join pg_stat_activity a using (pid) where a.usename = 'minipaas' and a.client_addr = '${lab.ip.mgr}'`);
    expect(ssl).toMatch(/^[1-9]\d* true$/);
    // Scram, and the password only in a root-only file on the host.
    expect(await psql(`select left(rolpassword, 14) from pg_authid where rolname = 'minipaas'`)).toBe('SCRAM-SHA-256$');
    expect(await lab.sh('db', 'stat -c "%a %U" /etc/minipaas/database-password')).toBe('600 root');
  }, 1_300_000);

  it('the password is in no row or event of the provisioner and in no service spec; 5432 only from the cluster', async () => {
    const password = await lab.sh('db', 'cat /etc/minipaas/database-password');
    expect(password).toMatch(/^[0-9a-f]{48}$/);
    const dump = await db.pool.query<{ text: string }>(
      `select coalesce(string_agg(t, ' '), '') as text from (
         select payload::text || coalesce(result::text, '') || coalesce(error, '') as t from mp.operations
         union all select payload::text from mp.stream_events) x`,
    );
    expect(dump.rows[0]!.text.length).toBeGreaterThan(1000);
    expect(dump.rows[0]!.text).not.toContain(password);
    const spec = await lab.sh('mgr', 'docker service inspect mp-agent');
    expect(spec).toContain('DATABASE_URL_FILE=/run/secrets/mp_database_url');
    expect(spec).not.toContain(password);

    expect(await lab.probe('mgr', lab.ip.db, 5432)).toBe('open');
    expect(await lab.probe('out', lab.ip.db, 5432)).toBe('closed');
    expect(await lab.probe('out', lab.ip.db, 22)).toBe('open');
  }, 60_000);

  it('a second mp provision reports every step unchanged', async () => {
    const ctx = captured(db.url);
    const t0 = Date.now();
    try {
      await runProvision(ctx, { env: envDir, acceptNewHostKeys: false, dryRun: false, detach: false, timeout: 600 });
    } finally {
      await ctx.close();
    }
    timings.second_run_s = Math.round((Date.now() - t0) / 1000);
    expect(ctx.out()).toContain('all unchanged');
    const changed = await db.pool.query(
      `select host, step, detail from mp.provisioning_v where operation > (select max(id) - 2 from mp.operations where kind = 'provision.host') and outcome <> 'unchanged'`,
    );
    expect(changed.rows).toEqual([]);
  }, 700_000);
});
