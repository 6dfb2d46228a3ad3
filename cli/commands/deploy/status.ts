/**
 * `mp deploy status --env DIR`: the last release, each service's tasks and update state as the engine
 * reports them, and drift: fields where what runs differs from that release (someone ran `docker
 * service update` by hand, or a deploy is still converging).
 */
import { z } from 'zod';
import { observeStack, planStack } from '../../../agent/deploy/index.ts';
import { applyPins } from '../../../agent/deploy/images.ts';
import { canaryServices } from '../../../agent/executors/canary-start.ts';
import { listCanaries } from '../../../sql/control/canaries.ts';
import { latestRelease } from '../../../sql/control/releases.ts';
import { listRegistryAuths, withRegistryAuthLabels } from '../../../sql/control/registry-auth.ts';
import { control } from '../../operations.ts';
import { NotFoundError } from '../../../sql/errors.ts';
import type { Context } from '../../context.ts';
import { environmentDocker } from '../../deploys.ts';
import { environmentDir, environmentNameOf, readSettings } from '../../environment.ts';
import { printRows, toJson, type Column } from '../../output.ts';

export const options = z.object({ env: z.string().min(1) }).strict();
export type Options = z.output<typeof options>;

interface Line {
  service: string;
  tasks: string;
  update: string;
  drift: string;
}

const COLUMNS: Column<Line>[] = [{ key: 'service' }, { key: 'tasks', right: true }, { key: 'update' }, { key: 'drift' }];

export async function run(ctx: Context, opts: Options): Promise<void> {
  const dir = environmentDir(opts.env);
  const name = environmentNameOf(dir);
  const pool = ctx.db().pool;
  const release = (await latestRelease(pool, name, 'succeeded')) ?? (await latestRelease(pool, name));
  if (!release) throw new NotFoundError('UNKNOWN_RELEASE', `environment ${name} has no releases yet`, `\`mp deploy --env ${opts.env}\` makes the first`);
  const docker = await environmentDocker(readSettings(dir), '`mp deploy status`');
  // The deploy labels services with their registry credentials' version: not drift.
  const desired = withRegistryAuthLabels(applyPins(release.spec, release.images ?? {}), await listRegistryAuths(control(ctx), name));
  const observed = await observeStack(docker, desired.name, desired);
  const plan = planStack(desired, observed);
  const tasks = await docker.listTasks({ serviceIds: observed.services.map((s) => s.id) });
  const lines: Line[] = desired.services.map((s) => {
    const svc = observed.services.find((o) => o.name === s.name);
    if (!svc) return { service: s.name, tasks: '-', update: '', drift: 'missing: not running in the swarm' };
    const own = tasks.filter((t) => t.serviceId === svc.id && t.desiredState === 'running');
    const running = own.filter((t) => t.state === 'running').length;
    const desiredCount = svc.mode === 'global' ? own.length : svc.mode.endsWith('job') ? 0 : (svc.replicas ?? 1);
    const action = plan.actions.find((a) => a.type === 'update-service' && a.name === s.name);
    const drift = action && action.type === 'update-service' ? action.changes.map((c) => c.path).join(', ') : '';
    return { service: s.name, tasks: svc.mode.endsWith('job') ? 'job' : `${running}/${desiredCount}`, update: svc.updateStatus?.state ?? '', drift };
  });
  const extra = observed.services.filter((o) => !desired.services.some((s) => s.name === o.name));
  for (const svc of extra) lines.push({ service: svc.name, tasks: '', update: '', drift: 'not in the release (left over)' });
  // Canaries run beside the stack, outside its namespace: read apart (docs/routing.md "Canary").
  const canaries = await Promise.all(
    (await listCanaries(pool, name, { unfinished: true })).map(async (c) => {
      const [svc] = await canaryServices(docker, c.id);
      const own = svc ? (await docker.listTasks({ serviceIds: [svc.id] })).filter((t) => t.desiredState === 'running') : [];
      return {
        canary: Number(c.id),
        service: c.service,
        swarm_service: svc?.name ?? null,
        status: c.status,
        tasks: `${own.filter((t) => t.state === 'running').length}/${c.replicas}`,
        image: c.image?.ref ?? null,
        beside_release: c.baseVersion,
        since: c.createdAt,
      };
    }),
  );
  if (ctx.json) {
    ctx.stdout.write(`${toJson({ environment: name, release: release.version, status: release.status, services: lines, canaries })}\n`);
    return;
  }
  ctx.stdout.write(`environment ${name}: release ${release.version} (${release.kind}, ${release.status}), stack ${release.stack}\n`);
  printRows(ctx, lines, COLUMNS, 'the release has no services');
  for (const c of canaries) {
    ctx.stdout.write(
      `canary ${c.canary} of ${c.service}: ${c.status}, ${c.swarm_service ?? 'no service'} ${c.tasks} running, image ${c.image ?? '(not pinned yet)'}, beside release ${c.beside_release}; \`mp deploy promote|abort --env ${opts.env} ${c.service}\` ends it\n`,
    );
  }
}
