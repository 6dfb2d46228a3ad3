/**
 * `pre_deploy:` names checked by the CLI before anything is recorded: a name no Compose file defines,
 * or a service that is not a job template, is one error with the near miss or the `mp code job` to
 * run; no release, no operation. `mp job run` refuses as early when there is nothing to run.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as rollout from '../../cli/commands/deploy/rollout.ts';
import * as jobRun from '../../cli/commands/job/run.ts';
import { ConfigError, MiniPaasError, NotFoundError } from '../../sql/errors.ts';
import { loadStack } from '../../stack/index.ts';
import { checkPreDeploy } from '../../stack/pre-deploy.ts';
import { captured, mp, type CapturedContext } from '../cli/harness.ts';
import { freshDatabase, type TestDatabase } from '../support/database.ts';

const COMPOSE = `services:
  web:
    image: busybox
  migrate:
    image: busybox
    command: ["sh", "-c", "echo migrating"]
  seed:
    image: busybox
    deploy:
      labels:
        org.minipaas.kind: job
  nightly:
    image: busybox
    deploy:
      labels:
        org.minipaas.kind: cron
        org.minipaas.cron.schedule: "@daily"
`;

const spec = loadStack({ name: 'shop', files: [{ path: '/w/compose.yaml', content: COMPOSE }], env: {}, workingDir: '/w', readFile: () => '' });

function refusal(names: string[]): ConfigError {
  try {
    checkPreDeploy(spec, names, { env: 'prod', file: 'prod/minipaas.yaml' });
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('checkPreDeploy', () => {
  it('accepts job and cron templates, in any order', () => {
    expect(() => checkPreDeploy(spec, ['seed', 'nightly'], { env: 'prod', file: 'prod/minipaas.yaml' })).not.toThrow();
    expect(() => checkPreDeploy(spec, [], { env: 'prod', file: 'prod/minipaas.yaml' })).not.toThrow();
  });

  it.each<[string, string[], string, string]>([
    [
      'a misspelt job',
      ['sede'],
      "pre_deploy in prod/minipaas.yaml names 'sede', which no Compose file defines; job templates: nightly, seed",
      "did you mean 'seed'?",
    ],
    [
      'a near miss of a service that is not a job yet',
      ['migrat'],
      "pre_deploy in prod/minipaas.yaml names 'migrat', which no Compose file defines; job templates: nightly, seed",
      "did you mean 'migrate'? it is not a job template yet: mark it with `mp code job --env prod migrate`",
    ],
    [
      'a service that is not a job',
      ['seed', 'migrate'],
      "pre_deploy in prod/minipaas.yaml names 'migrate', which is not a job template: a deploy runs it as a long-running service",
      'mark it with `mp code job --env prod migrate` (label org.minipaas.kind: job), or take it out of pre_deploy',
    ],
    [
      'a name nothing is near',
      ['backfill'],
      "pre_deploy in prod/minipaas.yaml names 'backfill', which no Compose file defines; job templates: nightly, seed",
      'define it in a Compose file and mark it with `mp code job --env prod backfill`, or take it out of pre_deploy',
    ],
  ])('%s', (_name, names, message, hint) => {
    const err = refusal(names);
    expect(err.message).toBe(message);
    expect(err.hint).toBe(hint);
    expect(err.exitCode).toBe(2);
  });
});

describe('mp deploy and mp job run refuse before recording anything', () => {
  let db: TestDatabase;
  const contexts: CapturedContext[] = [];
  const work = mkdtempSync(join(tmpdir(), 'mp-predeploy-'));
  const ctx = (): CapturedContext => {
    const c = captured(db.url);
    contexts.push(c);
    return c;
  };
  const counts = async (): Promise<{ releases: number; operations: number }> =>
    (await db.pool.query(`select (select count(*)::int from mp.releases) releases, (select count(*)::int from mp.operations) operations`)).rows[0];

  function environment(name: string, preDeploy: string): string {
    const dir = join(work, name);
    mkdirSync(dir);
    writeFileSync(join(dir, 'minipaas.yaml'), `project:\n  files: [compose.yaml]\npre_deploy: ${preDeploy}\n`);
    writeFileSync(join(dir, 'compose.yaml'), COMPOSE);
    return dir;
  }

  beforeAll(async () => {
    db = await freshDatabase({ poolSize: 4 });
  });
  afterAll(async () => {
    await Promise.all(contexts.map((c) => c.close()));
    await db?.drop();
    rmSync(work, { recursive: true, force: true });
  });

  it('pre_deploy: [migrat]: one error naming the near miss and how to mark it; no release, no operation', async () => {
    const dir = environment('typo', '[migrat]');
    const err = await rollout.run(ctx(), { env: dir, dryRun: false, detach: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toBe(`pre_deploy in ${join(dir, 'minipaas.yaml')} names 'migrat', which no Compose file defines; job templates: nightly, seed`);
    expect((err as ConfigError).hint).toBe(`did you mean 'migrate'? it is not a job template yet: mark it with \`mp code job --env ${dir} migrate\``);
    // --dry-run is refused the same way.
    await expect(rollout.run(ctx(), { env: dir, dryRun: true, detach: false })).rejects.toMatchObject({ code: 'PRE_DEPLOY' });
    expect(await counts()).toEqual({ releases: 0, operations: 0 });
  });

  it('the binary: a service that is not a job exits 2 with one error and one hint line', async () => {
    const dir = environment('notjob', '[web]');
    const res = await mp(['deploy', '--env', dir, '--detach'], db.url);
    expect(res.code).toBe(2);
    expect(res.stderr.split('\n').filter(Boolean)).toEqual([
      `error: pre_deploy in ${join(dir, 'minipaas.yaml')} names 'web', which is not a job template: a deploy runs it as a long-running service`,
      `hint: mark it with \`mp code job --env ${dir} web\` (label org.minipaas.kind: job), or take it out of pre_deploy`,
    ]);
    expect(await counts()).toEqual({ releases: 0, operations: 0 });
  }, 60_000);

  it('mp job run with no deployed release: not found, nothing enqueued', async () => {
    const dir = environment('nothing', '[]');
    const err = await jobRun.run(ctx(), { env: dir, job: 'seed', args: [], detach: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as MiniPaasError).message).toBe("environment nothing has no deployed release to run 'seed' from");
    expect(await counts()).toEqual({ releases: 0, operations: 0 });
  });
});
