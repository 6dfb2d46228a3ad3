/**
 * `mp code worker|job|cron` on real files: the edit is written to the first file defining each
 * service, with comments kept; the same command twice changes no byte; bad input (a schedule that does
 * not parse, an unknown zone or policy, an unknown service, a read-only file) is one error and every
 * file stays byte for byte as it was.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as cron from '../../cli/commands/code/cron.ts';
import * as job from '../../cli/commands/code/job.ts';
import * as worker from '../../cli/commands/code/worker.ts';
import { loadEnvironment } from '../../cli/environment.ts';
import { ConfigError, MiniPaasError } from '../../sql/errors.ts';
import { captured, mp } from './harness.ts';

const work = mkdtempSync(join(tmpdir(), 'mp-code-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const COMPOSE = `# Shop services. Keep this comment.
services:
  worker:   # the emails consumer
    image: shop/api:\${VERSION}
    command: ["node", "worker.js"]
    ports:
      - "9229:9229"   # inspector, remove before prod
  emails_worker:
    image: shop/api:\${VERSION}
    deploy:
      replicas: 2
  cleanup:
    image: shop/api:\${VERSION}
    command: ["node", "cleanup.js"]
`;
const OVERRIDE = `# Production settings.
services:
  migrate:
    image: shop/api:\${VERSION}   # same image
    command: ["node", "migrate.js"]
`;

let n = 0;
/** A fresh environment directory; returns it and a snapshot function of its Compose files. */
function environment(): { dir: string; files(): string[] } {
  const dir = join(work, `env${++n}`);
  mkdirSync(dir);
  writeFileSync(join(dir, 'minipaas.yaml'), 'project:\n  files: [compose.yaml, compose.prod.yaml]\ndeploy:\n  version: "1.0"\n');
  writeFileSync(join(dir, 'compose.yaml'), COMPOSE);
  writeFileSync(join(dir, 'compose.prod.yaml'), OVERRIDE);
  return { dir, files: () => ['compose.yaml', 'compose.prod.yaml'].map((f) => readFileSync(join(dir, f), 'utf8')) };
}

async function failure(p: Promise<unknown>): Promise<MiniPaasError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(MiniPaasError);
  return err as MiniPaasError;
}

describe('mp code worker|job|cron', () => {
  it('the original example marks both services, keeps the comments, and a second run changes no byte', async () => {
    const env = environment();
    const ctx = captured(undefined);
    await worker.run(ctx, { env: env.dir, services: ['worker', 'emails_worker'] });
    const [compose, override] = env.files();
    expect(override).toBe(OVERRIDE);
    expect(compose).toContain('# Shop services. Keep this comment.\nservices:\n  worker:   # the emails consumer\n');
    expect(compose).not.toContain('9229');
    expect(ctx.out()).toMatch(/^worker, emails_worker: a worker\n/);
    expect(ctx.err()).toBe('note: worker: ports removed (a worker publishes none; a service that answers requests is not a worker)\n');
    const mtime = statSync(join(env.dir, 'compose.yaml')).mtimeMs;

    const again = captured(undefined);
    await worker.run(again, { env: env.dir, services: ['worker', 'emails_worker'] });
    expect(env.files()).toEqual([compose, override]);
    expect(statSync(join(env.dir, 'compose.yaml')).mtimeMs).toBe(mtime);
    expect(again.out()).toBe('worker, emails_worker: a worker (already so; nothing changed)\n');
    expect(again.err()).toBe('');

    const spec = loadEnvironment(env.dir).spec;
    for (const key of ['worker', 'emails_worker']) {
      const s = spec.services.find((x) => x.key === key)!.spec;
      expect(s.Labels?.['org.minipaas.kind']).toBe('worker');
      expect(s.TaskTemplate?.RestartPolicy?.Condition).toBe('on-failure');
      expect(s.EndpointSpec?.Ports ?? []).toEqual([]);
    }
    expect(spec.services.find((x) => x.key === 'emails_worker')!.spec.Mode).toEqual({ Replicated: { Replicas: 2 } });
  });

  it('mp code job edits only the second file, which defines the service; the deploy would not start it', async () => {
    const env = environment();
    await job.run(captured(undefined), { env: env.dir, services: ['migrate'], timeout: 300 });
    const [compose, override] = env.files();
    expect(compose).toBe(COMPOSE);
    expect(override).toBe(`${OVERRIDE}    deploy:\n      labels:\n        org.minipaas.kind: job\n        org.minipaas.job.timeout: "300"\n      restart_policy:\n        condition: none\n`);
    const spec = loadEnvironment(env.dir).spec;
    expect(spec.services.map((s) => s.key)).not.toContain('migrate');
    expect(spec.jobs).toMatchObject([{ key: 'migrate', kind: 'job', timeoutSeconds: 300, replicas: 1 }]);
  });

  it('mp code cron writes the schedule and policies; the environment loads it as that schedule', async () => {
    const env = environment();
    const ctx = captured(undefined);
    await cron.run(ctx, { env: env.dir, services: ['cleanup'], cron: '*/5 * * * *', overlap: 'replace', tz: 'Europe/Berlin', catchUp: 'none' });
    expect(ctx.out().split('\n')[0]).toBe('cleanup: a cron job (*/5 * * * *)');
    const once = env.files();
    expect(once[0]).toContain(
      '    command: ["node", "cleanup.js"]\n    deploy:\n      labels:\n        org.minipaas.kind: cron\n        org.minipaas.cron.schedule: "*/5 * * * *"\n' +
        '        org.minipaas.cron.timezone: Europe/Berlin\n        org.minipaas.cron.overlap: replace\n        org.minipaas.cron.catch-up: none\n      restart_policy:\n        condition: none\n',
    );
    await cron.run(captured(undefined), { env: env.dir, services: ['cleanup'], cron: '*/5 * * * *', overlap: 'replace', tz: 'Europe/Berlin', catchUp: 'none' });
    expect(env.files()).toEqual(once);
    expect(loadEnvironment(env.dir).spec.jobs).toMatchObject([
      { key: 'cleanup', kind: 'cron', schedule: { expression: '*/5 * * * *', timezone: 'Europe/Berlin', overlap: 'replace', catchUp: 'none' } },
    ]);
    // A CRON_TZ= prefix is the zone label; options left out keep what the file says.
    await cron.run(captured(undefined), { env: env.dir, services: ['cleanup'], cron: 'CRON_TZ=Asia/Tokyo @hourly' });
    expect(loadEnvironment(env.dir).spec.jobs).toMatchObject([
      { key: 'cleanup', schedule: { expression: '@hourly', timezone: 'Asia/Tokyo', overlap: 'replace', catchUp: 'none' } },
    ]);
  });

  it.each<[string, Partial<cron.Options>, string, string]>([
    [
      'a field out of range',
      { cron: '*/5 25 * * *' },
      "--cron: invalid cron expression '*/5 25 * * *': hour field '25' is out of range (0-23)",
      'fields are minute (0-59), hour (0-23), day of month (1-31), month (1-12 or jan-dec), weekday (0-7 or sun-sat); macros: @yearly @monthly @weekly @daily @hourly',
    ],
    ['too few fields', { cron: '*/5 * *' }, "--cron: '*/5 * *' has 3 fields; a cron expression has five (minute hour day month weekday)", 'e.g. "*/5 * * * *" (every 5 minutes) or @hourly'],
    ['an unknown time zone', { tz: 'Europe/Berln' }, "--tz: unknown time zone 'Europe/Berln'", "did you mean 'Europe/Berlin'?"],
    ['an unknown CRON_TZ= zone', { cron: 'CRON_TZ=Moon/Base 0 3 * * *' }, "--cron: unknown time zone 'Moon/Base'", 'use an IANA zone name such as Europe/Berlin or UTC'],
    ['two zones', { cron: 'CRON_TZ=UTC 0 3 * * *', tz: 'Europe/Berlin' }, '--cron says CRON_TZ=UTC but --tz says Europe/Berlin', 'give the zone once, with --tz'],
    ['an unknown overlap policy', { overlap: 'skip' }, "--overlap: unknown overlap policy 'skip'; allowed: allow, forbid, replace", 'use one of allow, forbid, replace'],
    ['a misspelt overlap policy', { overlap: 'forbidd' }, "--overlap: unknown overlap policy 'forbidd'; allowed: allow, forbid, replace", "did you mean 'forbid'?"],
    ['an unknown catch-up policy', { catchUp: 'all' }, "--catch-up: unknown catch-up policy 'all'; allowed: latest, none", 'use one of latest, none'],
    [
      'an unknown service beside a known one',
      { services: ['cleanup', 'reports'] },
      "service 'reports' is not defined in compose.yaml or compose.prod.yaml; defined services: cleanup, emails_worker, migrate, worker",
      'add the service to a Compose file first, or pass a service that exists',
    ],
    [
      'a misspelt service',
      { services: ['migrat'] },
      "service 'migrat' is not defined in compose.yaml or compose.prod.yaml; defined services: cleanup, emails_worker, migrate, worker",
      "did you mean 'migrate'?",
    ],
  ])('refuses %s and leaves every file byte for byte', async (_name, bad, message, hint) => {
    const env = environment();
    const before = env.files();
    const err = await failure(cron.run(captured(undefined), { env: env.dir, services: ['cleanup'], cron: '*/5 * * * *', ...bad }));
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toBe(message);
    expect(err.hint).toBe(hint);
    expect(env.files()).toEqual(before);
  });

  it('a service minipaas.yaml routes to is refused: a worker answers no requests', async () => {
    const env = environment();
    writeFileSync(join(env.dir, 'minipaas.yaml'), 'project:\n  files: [compose.yaml, compose.prod.yaml]\nroutes:\n  http://localhost:8000: worker:8080\n');
    const before = env.files();
    const err = await failure(worker.run(captured(undefined), { env: env.dir, services: ['emails_worker', 'worker'] }));
    expect(err.message).toBe(`${join(env.dir, 'minipaas.yaml')} routes http://localhost:8000 to worker:8080; a worker answers no requests`);
    expect(err.hint).toBe(`remove the route first (\`mp code route --env ${env.dir} --rm http://localhost:8000\`), or leave worker a service`);
    await expect(job.run(captured(undefined), { env: env.dir, services: ['worker'] })).rejects.toThrow(/a job template is not a running service$/);
    expect(env.files()).toEqual(before);
  });

  it('a read-only file: one error, nothing written (not the other file either)', async () => {
    const env = environment();
    chmodSync(join(env.dir, 'compose.prod.yaml'), 0o444);
    const before = env.files();
    const err = await failure(job.run(captured(undefined), { env: env.dir, services: ['cleanup', 'migrate'] }));
    expect(err.message).toBe(`${join(env.dir, 'compose.prod.yaml')} is read-only (mode 0444); nothing was written`);
    expect(env.files()).toEqual(before);
  });

  it('the binary: exit 2 with one error and one hint line, files unchanged; --cron is required', async () => {
    const env = environment();
    const before = env.files();
    const bad = await mp(['code', 'cron', '--env', env.dir, 'cleanup', '--cron', '61 * * * *']);
    expect(bad.code).toBe(2);
    expect(bad.stderr.split('\n').filter(Boolean)).toEqual([
      "error: --cron: invalid cron expression '61 * * * *': minute field '61' is out of range (0-59)",
      'hint: fields are minute (0-59), hour (0-23), day of month (1-31), month (1-12 or jan-dec), weekday (0-7 or sun-sat); macros: @yearly @monthly @weekly @daily @hourly',
    ]);
    const missing = await mp(['code', 'cron', '--env', env.dir, 'cleanup']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--cron <expression>' not specified/);
    expect(env.files()).toEqual(before);
    const ok = await mp(['code', 'worker', '--env', env.dir, 'worker', 'emails_worker']);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^worker, emails_worker: a worker\n/);
  }, 60_000);
});
