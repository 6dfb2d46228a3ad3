/**
 * `mp provision --dry-run`: per host, every step with the actions it takes on a bare host, without
 * contacting any host or the database.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { run } from '../../cli/commands/provision.ts';
import { captured } from '../cli/harness.ts';

const dir = mkdtempSync(join(tmpdir(), 'mp-prov-dry-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('mp provision --dry-run', () => {
  it('prints each step and its actions per host, managers first; contacts nothing', async () => {
    writeFileSync(
      join(dir, 'minipaas.yaml'),
      [
        'project: {files: [compose.yaml]}',
        'hosts:',
        // Unroutable addresses (TEST-NET-1): a dry run must not try them.
        '  - {name: mgr-1, address: 192.0.2.2, role: manager}',
        '  - {name: wrk-1, address: 192.0.2.3, role: worker}',
        'provision:',
        '  ports: [8080]',
        '',
      ].join('\n'),
    );
    const ctx = captured(undefined);
    try {
      await run(ctx, { env: dir, acceptNewHostKeys: false, dryRun: true, detach: false, timeout: 60 });
    } finally {
      await ctx.close();
    }
    const out = ctx.out();
    expect(out).toMatch(/nothing submitted/);
    expect(out).toMatch(/no host is contacted/);
    expect(out.indexOf('mgr-1 (manager')).toBeLessThan(out.indexOf('wrk-1 (worker'));
    expect(out).toMatch(/docker:\n\s+- run: DEBIAN_FRONTEND=noninteractive apt-get update -q && .*\(the Docker engine, from the distribution's packages\)/);
    expect(out).toContain('write /etc/nftables.conf');
    expect(out).toContain('swarm init --advertise-addr 192.0.2.2');
    expect(out).toContain('swarm join 192.0.2.2:2377 as worker');
    expect(out).toContain('install the global agent service from mp/agent:latest');
    expect(out).toMatch(/wrk-1[\s\S]*agent:\n\s+- wait for the agent of wrk-1/);
  });

  it('a database host comes first, with its own steps', async () => {
    writeFileSync(
      join(dir, 'minipaas.yaml'),
      ['project: {files: [compose.yaml]}', 'hosts:', '  - {name: mgr-1, address: 192.0.2.2, role: manager}', '  - {name: db-1, address: 192.0.2.9, role: database}', ''].join('\n'),
    );
    const ctx = captured(undefined);
    await run(ctx, { env: dir, acceptNewHostKeys: false, dryRun: true, detach: false, timeout: 60 }).finally(() => ctx.close());
    const out = ctx.out();
    expect(out.indexOf('db-1 (database')).toBeLessThan(out.indexOf('mgr-1 (manager'));
    expect(out).toContain('db-1 (database, root@192.0.2.9:22): os, firewall, postgres, database');
    expect(out).toMatch(/database:\n(\s+- .*\n)*\s+- migrate the database: every migration/);

  });
});
