/**
 * The `[database]` host's steps as data: which steps it runs, its firewall, PostgreSQL's settings and
 * pg_hba, and the postgres and database plans from what the host looked like. A step planned against
 * the state it produced plans nothing (idempotent); the password never appears in a plan.
 */
import { describe, expect, it } from 'vitest';
import { provisionSchema, type Host } from '../../agent/provision/inventory.ts';
import { agentsUrl, PASSWORD_FILE, PG_CONF, PG_HBA, planDatabase, planPostgres, postgresConf, postgresHba } from '../../agent/provision/database.ts';
import { describeAction, nftRuleset, sha256, stepsFor, type Facts, type HostPlanInput } from '../../agent/provision/steps.ts';

const mgr: Host = { name: 'mgr-1', address: '10.0.0.2', role: 'manager', user: 'root', port: 22, labels: {} };
const db: Host = { name: 'db-1', address: '10.0.0.9', role: 'database', user: 'root', port: 2222, labels: {} };
const settings = provisionSchema.parse({ ports: [8080] });
const input: HostPlanInput = { host: db, firstManager: mgr, cluster: ['10.0.0.3', '10.0.0.2'], settings };
const bare: Facts = { os: 'debian 12', init: 'sysv', pkg_postgresql: 'no', pg_cert: 'no', pg_running: 'no', db_password: 'no', db_role: '', db_database: '' };

/** The facts of a host once the plan for `facts` ran. */
function provisioned(extra: Facts = {}): Facts {
  return {
    ...bare,
    pkg_postgresql: 'yes',
    pg_cert: 'yes',
    pg_unlinked: '0',
    pg_running: 'yes',
    pg_started: '2000',
    pg_conf_mtime: '1000',
    [`sha:${PG_CONF}`]: sha256(postgresConf(input)),
    [`sha:${PG_HBA}`]: sha256(postgresHba(input)),
    db_password: 'yes',
    db_role: 'yes',
    db_database: 'yes',
    ...extra,
  };
}

describe('the database host', () => {
  it('runs os, firewall, postgres and database: no Docker, swarm or agent', () => {
    expect(stepsFor(settings, 'database')).toEqual(['os', 'firewall', 'postgres', 'database']);
    expect(stepsFor({ ...settings, fail2ban: true }, 'database')).toEqual(['os', 'firewall', 'fail2ban', 'postgres', 'database']);
    expect(stepsFor(settings, 'worker')).not.toContain('postgres');
  });

  it('firewall: SSH open, 5432 from the cluster nodes only, nothing else (no HTTP, Swarm or extra ports)', () => {
    const rules = nftRuleset(input);
    expect(rules).toContain('policy drop;');
    expect(rules).toContain('tcp dport { 22, 2222 } accept');
    expect(rules).toContain('elements = { 10.0.0.2, 10.0.0.3 }');
    expect(rules).toContain('ip saddr @cluster tcp dport 5432 accept');
    for (const port of ['80', '443', '8080', '2377', '4789']) expect(rules).not.toMatch(new RegExp(`\\b${port}\\b`));
  });

  it('PostgreSQL listens on localhost and the private address, scram, TLS; pg_hba lets only the cluster in over TLS', () => {
    const conf = postgresConf(input);
    expect(conf).toContain("listen_addresses = 'localhost,10.0.0.9'");
    expect(conf).toContain("password_encryption = 'scram-sha-256'");
    expect(conf).toContain('ssl = on');
    const hba = postgresHba(input);
    expect(hba).toMatch(/^hostssl minipaas +minipaas +10\.0\.0\.2\/32 +scram-sha-256$/m);
    expect(hba).toMatch(/^hostssl minipaas +minipaas +10\.0\.0\.3\/32 +scram-sha-256$/m);
    // Plain TCP only from the loopback (the provisioner's SSH tunnel); no trust or md5 line anywhere.
    expect(hba.split('\n').filter((l) => l.startsWith('host '))).toEqual([expect.stringMatching(/127\.0\.0\.1\/32 +scram-sha-256$/)]);
    expect(hba).not.toMatch(/\b(trust|md5|password)\b/);
    expect(postgresConf({ ...input, host: { ...db, address: 'db.internal' } })).toContain("listen_addresses = '*'");
  });

  it('postgres on a bare host: install, certificate, settings, include them, start; on the host it produced: nothing', () => {
    const plan = planPostgres(input, bare);
    expect(plan.map((a) => (a.type === 'write' ? `write ${a.path}` : a.type === 'run' ? a.why : a.type))).toEqual([
      "PostgreSQL, from the distribution's packages",
      'a TLS certificate for PostgreSQL (its key never leaves the host)',
      `write ${PG_CONF}`,
      `write ${PG_HBA}`,
      "include MiniPaaS's settings in the server's configuration",
      'start PostgreSQL with these settings',
    ]);
    expect(planPostgres(input, provisioned())).toEqual([]);
  });

  it('postgres restarts when the settings changed, the server is down, or it started before the files changed', () => {
    const moved = planPostgres({ ...input, cluster: [...input.cluster, '10.0.0.4'] }, provisioned());
    expect(moved.map((a) => (a.type === 'write' ? a.path : a.why))).toEqual([PG_HBA, 'start PostgreSQL with these settings']);
    expect(planPostgres(input, provisioned({ pg_running: 'no' })).map((a) => a.type)).toEqual(['run']);
    expect(planPostgres(input, provisioned({ pg_started: '500' })).map((a) => a.type)).toEqual(['run']);
    expect(planPostgres(input, provisioned({ pg_unlinked: '1' })).length).toBe(2);
  });

  it('database on a bare host: password, role, database, migrations; the password is read from its file, never written in a command', () => {
    const plan = planDatabase(input, bare, ['queues/0001_queues.sql', 'control/0001_control.sql']);
    expect(plan.map((a) => a.why)).toEqual([
      `a password for the minipaas role, in ${PASSWORD_FILE} (root only)`,
      'the minipaas role, with a scram password',
      'the minipaas database',
      '2 migration(s)',
    ]);
    const role = plan[1]!;
    expect(role.type === 'run' && role.command).toContain(`cat ${PASSWORD_FILE}`);
    expect(plan.map(describeAction).at(-1)).toBe('migrate the database: queues/0001_queues.sql, control/0001_control.sql');
    expect(planDatabase(input, provisioned(), [])).toEqual([]);
    expect(planDatabase(input, provisioned(), ['control/0013_x.sql']).map((a) => a.type)).toEqual(['migrate']);
    // A lost password file: a new password, set on the existing role.
    expect(planDatabase(input, provisioned({ db_password: 'no' }), []).map((a) => a.why)).toEqual([
      `a password for the minipaas role, in ${PASSWORD_FILE} (root only)`,
      "the minipaas role's new password",
    ]);
  });

  it("the agents' URL: the private address, TLS required with libpq's meaning, the password escaped", () => {
    const url = new URL(agentsUrl('10.0.0.9', 'a/b c'));
    expect(url.hostname).toBe('10.0.0.9');
    expect(url.port).toBe('5432');
    expect(decodeURIComponent(url.password)).toBe('a/b c');
    expect(url.searchParams.get('sslmode')).toBe('require');
    expect(url.searchParams.get('uselibpqcompat')).toBe('true');
  });
});
