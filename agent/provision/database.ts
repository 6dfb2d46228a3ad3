/**
 * The control plane's database on a `[database]` host: PostgreSQL from the distribution's packages,
 * listening on the host's private address with TLS and scram passwords for the cluster's nodes only,
 * and MiniPaaS's schema migrated into it. Steps `postgres` and `database`, planned here as data like
 * the others (steps.ts) and applied by run.ts.
 *
 * The password of the `minipaas` role is made on the host and stays there, in a root-only file; the
 * provisioner reads it over SSH only to hand the agents their URL (a Docker secret) and to connect
 * through an SSH tunnel. It is never in a command line, a plan, an event or the provisioner's database.
 */
import { isIP } from 'node:net';
import type { Facts, HostPlanInput, Action } from './steps.ts';
import { aptInstall, serviceCommand, sha256 } from './steps.ts';

export const PG_DIR = '/etc/minipaas/postgres';
export const PG_CONF = `${PG_DIR}/minipaas.conf`;
export const PG_HBA = `${PG_DIR}/pg_hba.conf`;
export const PASSWORD_FILE = '/etc/minipaas/database-password';
/** The role and the database MiniPaaS's agents use. */
export const DATABASE_NAME = 'minipaas';
export const DATABASE_PORT = 5432;
/** Our file, linked into every cluster's conf.d (Debian's postgresql.conf includes `conf.d`). */
const CONF_LINK = 'zz-minipaas.conf';

const HEADER = '# Written by MiniPaaS (mp provision): edits are replaced on the next run.';
const AS_POSTGRES = "su postgres -s /bin/sh -c";

/** What the `postgres` and `database` steps read, in one round trip besides the common facts. */
export const DATABASE_FACTS_SCRIPT = [
  `echo "pkg_postgresql=$(dpkg-query -W -f='\${Status}' postgresql 2>/dev/null | grep -q 'ok installed' && echo yes || echo no)"`,
  `for f in ${PG_CONF} ${PG_HBA}; do echo "sha:$f=$(sha256sum "$f" 2>/dev/null | cut -c1-64)"; done`,
  `test -s ${PG_DIR}/server.crt && test -s ${PG_DIR}/server.key && echo pg_cert=yes || echo pg_cert=no`,
  // Every installed cluster must include our file.
  `n=0; for d in /etc/postgresql/*/main/conf.d; do [ -d "$d" ] || continue; [ "$(readlink "$d/${CONF_LINK}")" = ${PG_CONF} ] || n=$((n+1)); done; echo "pg_unlinked=$n"`,
  'pg_lsclusters -h 2>/dev/null | grep -q online && echo pg_running=yes || echo pg_running=no',
  // When the running server last started, and when our files last changed: a restart is due if they are newer.
  `echo "pg_started=$(${AS_POSTGRES} "psql -tAXc \\"select extract(epoch from pg_postmaster_start_time())::bigint\\"" 2>/dev/null)"`,
  `echo "pg_conf_mtime=$(stat -c %Y ${PG_CONF} ${PG_HBA} ${PG_DIR}/server.crt 2>/dev/null | sort -n | tail -1)"`,
  `test -s ${PASSWORD_FILE} && echo db_password=yes || echo db_password=no`,
  `echo "db_role=$(${AS_POSTGRES} "psql -tAXc \\"select 'yes' from pg_roles where rolname = '${DATABASE_NAME}'\\"" 2>/dev/null)"`,
  `echo "db_database=$(${AS_POSTGRES} "psql -tAXc \\"select 'yes' from pg_database where datname = '${DATABASE_NAME}'\\"" 2>/dev/null)"`,
].join('\n');

/** Pure: the server settings MiniPaaS adds: the private address, scram, TLS, our pg_hba. */
export function postgresConf(input: HostPlanInput): string {
  const listen = isIP(input.host.address) ? `localhost,${input.host.address}` : '*';
  return [
    HEADER,
    `listen_addresses = '${listen}'`,
    `port = ${DATABASE_PORT}`,
    "password_encryption = 'scram-sha-256'",
    'ssl = on',
    `ssl_cert_file = '${PG_DIR}/server.crt'`,
    `ssl_key_file = '${PG_DIR}/server.key'`,
    `hba_file = '${PG_HBA}'`,
    '',
  ].join('\n');
}

/**
 * Pure: who may connect: local superuser by peer; the `minipaas` role from 127.0.0.1 (the provisioner's
 * SSH tunnel) and, over TLS only, from each cluster node's address; nothing else.
 */
export function postgresHba(input: HostPlanInput): string {
  const nodes = [...new Set(input.cluster)].sort();
  const host = (a: string): string => (a.includes(':') ? `${a}/128` : isIP(a) ? `${a}/32` : a);
  return [
    HEADER,
    'local   all        postgres                 peer',
    'local   all        all                      peer',
    `host    ${DATABASE_NAME}   ${DATABASE_NAME}   127.0.0.1/32   scram-sha-256`,
    ...nodes.map((a) => `hostssl ${DATABASE_NAME}   ${DATABASE_NAME}   ${host(a)}   scram-sha-256`),
    '',
  ].join('\n');
}

/** Pure: `postgres` installs PostgreSQL, writes its TLS certificate, settings and pg_hba, and (re)starts it when they changed. */
export function planPostgres(input: HostPlanInput, facts: Facts): Action[] {
  const actions: Action[] = [];
  if (facts.pkg_postgresql !== 'yes') {
    actions.push({
      type: 'run',
      command: aptInstall('postgresql', 'openssl'),
      why: "PostgreSQL, from the distribution's packages",
    });
  }
  if (facts.pg_cert !== 'yes') {
    const san = isIP(input.host.address) ? `IP:${input.host.address}` : `DNS:${input.host.address}`;
    actions.push({
      type: 'run',
      command:
        `mkdir -p ${PG_DIR} && cd ${PG_DIR} && openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=${input.host.name} ` +
        `-addext subjectAltName=${san} -keyout server.key -out server.crt 2>/dev/null && chown postgres:postgres server.key server.crt && chmod 600 server.key`,
      why: 'a TLS certificate for PostgreSQL (its key never leaves the host)',
    });
  }
  const conf = postgresConf(input);
  const hba = postgresHba(input);
  const changed = facts[`sha:${PG_CONF}`] !== sha256(conf) || facts[`sha:${PG_HBA}`] !== sha256(hba);
  if (facts[`sha:${PG_CONF}`] !== sha256(conf)) actions.push({ type: 'write', path: PG_CONF, mode: '0644', content: conf, why: 'listen on the private address; scram; TLS' });
  if (facts[`sha:${PG_HBA}`] !== sha256(hba)) actions.push({ type: 'write', path: PG_HBA, mode: '0644', content: hba, why: 'the cluster nodes only, over TLS, with a password' });
  const unlinked = facts.pkg_postgresql !== 'yes' || Number(facts.pg_unlinked ?? '1') > 0;
  if (unlinked) {
    actions.push({
      type: 'run',
      command: `for d in /etc/postgresql/*/main/conf.d; do ln -sfn ${PG_CONF} "$d/${CONF_LINK}"; done`,
      why: "include MiniPaaS's settings in the server's configuration",
    });
  }
  // A restart, not a reload: listen_addresses and ssl files take effect only at start.
  const stale = Number(facts.pg_conf_mtime || 0) > Number(facts.pg_started || 0);
  if (actions.length > 0 || changed || facts.pg_running !== 'yes' || stale) {
    actions.push({ type: 'run', command: serviceCommand(facts, 'postgresql', 'restart'), why: 'start PostgreSQL with these settings' });
  }
  return actions;
}

/**
 * Pure: `database` makes the password (on the host), the `minipaas` role and database, then migrates
 * it. `pending` is what the provisioner found unapplied through the tunnel (every migration when the
 * role or database does not exist yet).
 */
export function planDatabase(_input: HostPlanInput, facts: Facts, pending: string[]): Action[] {
  const actions: Action[] = [];
  const newPassword = facts.db_password !== 'yes';
  if (newPassword) {
    actions.push({
      type: 'run',
      command: `mkdir -p /etc/minipaas && (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \\n' > ${PASSWORD_FILE})`,
      why: `a password for the ${DATABASE_NAME} role, in ${PASSWORD_FILE} (root only)`,
    });
  }
  // The password goes from the root-only file into psql's stdin: never on a command line.
  const setPassword = (verb: 'create role' | 'alter role', extra: string): string =>
    `{ printf '\\\\set pw '; cat ${PASSWORD_FILE}; printf '\\n${verb} ${DATABASE_NAME}${extra} password :%s;\\n' "'pw'"; } | ${AS_POSTGRES} 'psql -qX -v ON_ERROR_STOP=1'`;
  if (facts.db_role !== 'yes') {
    actions.push({ type: 'run', command: setPassword('create role', ' login'), why: `the ${DATABASE_NAME} role, with a scram password` });
  } else if (newPassword) {
    actions.push({ type: 'run', command: setPassword('alter role', ''), why: `the ${DATABASE_NAME} role's new password` });
  }
  if (facts.db_database !== 'yes') {
    actions.push({ type: 'run', command: `cd / && ${AS_POSTGRES} 'createdb -O ${DATABASE_NAME} ${DATABASE_NAME}'`, why: `the ${DATABASE_NAME} database` });
  }
  if (pending.length > 0) actions.push({ type: 'migrate', pending, why: `${pending.length} migration(s)` });
  return actions;
}

/** The URL the cluster's agents connect with: TLS required (encrypted; the certificate is the host's own). */
export function agentsUrl(address: string, password: string): string {
  const host = address.includes(':') ? `[${address}]` : address;
  return `postgres://${DATABASE_NAME}:${encodeURIComponent(password)}@${host}:${DATABASE_PORT}/${DATABASE_NAME}?sslmode=require&uselibpqcompat=true`;
}
