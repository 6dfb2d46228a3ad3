// `mp nodes ls`, `mp env`, `mp db roles` and `mp agent` (the real binary, against the real Docker engine).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as dbRoles from '../../cli/commands/db/roles.ts';
import * as envCreate from '../../cli/commands/env/create.ts';
import * as envLs from '../../cli/commands/env/ls.ts';
import * as nodesLs from '../../cli/commands/nodes/ls.ts';
import { createEmptyDatabase, freshDatabase, type TestDatabase } from '../support/database.ts';
import { describeSwarm } from '../support/docker.ts';
import { waitFor } from '../support/wait.ts';
import { captured, lines, mp, spawnMp, type CapturedContext } from './harness.ts';

let db: TestDatabase;
const contexts: CapturedContext[] = [];

beforeAll(async () => {
  db = await freshDatabase({ poolSize: 4 });
});
afterAll(async () => {
  await Promise.all(contexts.map((c) => c.close()));
  await db.drop();
});

function ctx(opts: { json?: boolean } = {}): CapturedContext {
  const c = captured(db.url, opts);
  contexts.push(c);
  return c;
}

describe('mp env', () => {
  it('create is idempotent and says which happened; ls counts operations per environment', async () => {
    const first = ctx();
    await envCreate.run(first, { name: 'qa' });
    expect(first.out()).toBe('created environment "qa"\n');
    const again = ctx({ json: true });
    await envCreate.run(again, { name: 'qa' });
    expect(JSON.parse(again.out())).toEqual({ name: 'qa', created: false });
    await db.pool.query(`select mp.submit_operation('docker.info', 'qa', '{}', '{"target": "node:nobody"}')`);

    const json = ctx({ json: true });
    await envLs.run(json, {});
    expect(JSON.parse(json.out())).toEqual([
      { name: 'qa', created_at: expect.any(String), operations: 1, active: 1, last_operation_at: expect.any(String) },
    ]);
    const text = ctx();
    await envLs.run(text, {});
    expect(lines(text.out())).toEqual([
      expect.stringMatching(/^ENV\s+CREATED\s+OPERATIONS\s+QUEUED\/RUNNING\s+LAST OPERATION$/),
      expect.stringMatching(/^qa\s+\S+Z\s+1\s+1\s+\S+Z$/),
    ]);
  });

  it('the real binary: an invalid name is one line naming the rule, exit 2, nothing written', async () => {
    const r = await mp(['env', 'create', 'Prod-EU'], db.url);
    expect(r.code).toBe(2);
    expect(lines(r.stderr)).toEqual([
      'error: invalid input for `mp env create`',
      expect.stringMatching(/^ {2}name: invalid environment name "Prod-EU": .*did you mean "prod_eu"\?$/),
      'hint: run `mp env create --help` for usage',
    ]);
    const { rows } = await db.pool.query(`select name from mp.environments order by name`);
    expect(rows).toEqual([{ name: 'qa' }]);
  });
});

describe('mp nodes ls', () => {
  it('without agents it says how to start one; with nodes it shows role, alive, last heartbeat, version, running ops', async () => {
    const empty = ctx();
    await nodesLs.run(empty, {});
    expect(empty.out()).toMatch(/^no nodes yet: start an agent with `mp agent`/);

    await db.pool.query(`select mp.node_register('node-a', 'host-a', '0.1.0', '{node:node-a,manager}', '{docker.info}', 'x1', 'manager')`);
    await db.pool.query(`select mp.node_register('node-b', 'host-b', '0.1.0', '{node:node-b}', '{docker.info}')`);
    await db.pool.query(`update mp.nodes set heartbeat_at = now() - interval '5 minutes' where name = 'node-b'`);
    await db.pool.query(`select mp.node_heartbeat('node-a', '{"cpu_percent": 12.4, "memory_percent": 40, "disk_percent": 61.2, "load1": 0.31, "cpus": 2}')`);
    const text = ctx();
    await nodesLs.run(text, {});
    expect(lines(text.out())).toEqual([
      expect.stringMatching(/^NODE\s+ROLE\s+ALIVE\s+LAST HEARTBEAT\s+VERSION\s+RUNNING OPS\s+CPU\s+MEM\s+DISK\s+LOAD\s+INCIDENTS\s+CLAIMS$/),
      expect.stringMatching(/^node-a\s+manager\s+yes\s+\d+s ago\s+0\.1\.0\s+0\s+12%\s+40%\s+61%\s+0\.31\s+\S+\s+node:node-a, manager$/),
      expect.stringMatching(/^node-b\s+no docker\s+no\s+5m0\ds ago\s+0\.1\.0\s+0\s+-\s+-\s+-\s+-\s+\S+\s+node:node-b$/),
    ]);
    const json = ctx({ json: true });
    await nodesLs.run(json, {});
    expect(JSON.parse(json.out())).toEqual([
      expect.objectContaining({ name: 'node-a', swarm_role: 'manager', alive: true, running_ops: 0, targets: ['node:node-a', 'manager'] }),
      expect.objectContaining({ name: 'node-b', swarm_role: null, alive: false }),
    ]);
    await db.pool.query(`delete from mp.nodes`);
  });
});

describe('mp db roles', () => {
  it('creates the roles (again: it is idempotent) and lists them with their members and a hint', async () => {
    // grant_roles creates cluster-wide roles; another test file may be doing the same at this moment.
    const runRoles = async (c: CapturedContext): Promise<void> => {
      await dbRoles.run(c, {}).catch(async () => await dbRoles.run(c, {}));
    };
    const json = ctx({ json: true });
    await runRoles(json);
    const roles = JSON.parse(json.out()) as dbRoles.RoleRow[];
    expect(roles.map((r) => r.role)).toEqual(['mp_agent', 'mp_app', 'mp_cli']);
    const text = ctx();
    await runRoles(text);
    expect(lines(text.out())[0]).toMatch(/^ROLE\s+MAY\s+MEMBERS \(login roles\)$/);
    expect(lines(text.out()).at(-1)).toBe(
      "hint: give a person or a server a login in one of them: create role alice login password '...' in role mp_cli",
    );
  });
});

describe('mp agent refuses a database it does not match', () => {
  it('an unmigrated database: exit 4 with a hint to run `mp migrate`, nothing registered', async () => {
    const empty = await createEmptyDatabase();
    try {
      const r = await mp(['agent', '--name', 'early'], empty.url);
      expect(r.code).toBe(4);
      expect(lines(r.stderr)).toEqual([
        expect.stringMatching(/^error: the database lacks \d+ migrations this agent needs: queues\/0001_queues\.sql, /),
        'hint: run `mp migrate` against it first (agents never migrate by themselves)',
      ]);
    } finally {
      await empty.drop();
    }
  });

  it('an invalid --name or --concurrency is refused before connecting (exit 2)', async () => {
    const r = await mp(['agent', '--name', 'bad name', '--concurrency', '0'], 'postgres://nobody@127.0.0.1:1/nowhere');
    expect(r.code).toBe(2);
    expect(lines(r.stderr)).toEqual([
      'error: invalid input for `mp agent`',
      expect.stringMatching(/^ {2}--name: invalid node name "bad name"/),
      '  --concurrency: must be a positive integer, got "0"',
      'hint: run `mp agent --help` for usage',
    ]);
  });
});

describeSwarm('mp agent (the real binary) on the real Docker engine + Swarm', () => {
  it('registers, runs an operation submitted by `mp ops submit`, and on SIGTERM stops cleanly with exit 0', async () => {
    await db.pool.query(`select mp.environment_create('agentenv')`);
    const agent = spawnMp(['agent', '--name', 'spawned-agent', '--concurrency', '2'], { env: { DATABASE_URL: db.url } });
    try {
      await waitFor('the agent to register', () => agent.out().includes('registered'), { timeoutMs: 30_000 });
      expect(lines(agent.out())[0]).toBe('agent spawned-agent registered; claims node:spawned-agent, manager; Ctrl-C stops it');
      const { rows } = await db.pool.query(`select name, alive, swarm_role from mp.nodes_v where name = 'spawned-agent'`);
      expect(rows).toEqual([{ name: 'spawned-agent', alive: true, swarm_role: 'manager' }]);

      const r = await mp(['ops', 'submit', 'docker.info', '--env', 'agentenv', '--target', 'node:spawned-agent'], db.url);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/started on spawned-agent\n/);
      expect(agent.err()).toMatch(/agent info: agent registered \{"name":"spawned-agent"/);
    } finally {
      agent.child.kill('SIGTERM');
    }
    expect(await agent.exited).toBe(0);
    expect(lines(agent.out()).at(-1)).toBe('agent spawned-agent stopped');
    const { rows } = await db.pool.query(`select alive from mp.nodes_v where name = 'spawned-agent'`);
    expect(rows).toEqual([{ alive: false }]);
  });
});
