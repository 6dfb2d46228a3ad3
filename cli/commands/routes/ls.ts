/**
 * `mp routes ls --env DIR`: each route the environment says (minipaas.yaml `routes:`) beside what the
 * stack's Caddy serves now (its live config, read through the admin API inside its container), and
 * whatever Caddy serves that the environment does not say.
 */
import { z } from 'zod';
import { ingressContainer, readCaddyConfig } from '../../../agent/routing/admin.ts';
import { servedRoutes } from '../../../agent/routing/caddy-config.ts';
import { parseRoutes } from '../../../agent/routing/routes.ts';
import { MiniPaasError } from '../../../sql/errors.ts';
import type { Context } from '../../context.ts';
import { environmentDocker } from '../../deploys.ts';
import { loadEnvironment } from '../../environment.ts';
import { printRows, toJson, type Column } from '../../output.ts';

export const options = z.object({ env: z.string().min(1, 'name the environment directory, e.g. --env prod') }).strict();
export type Options = z.output<typeof options>;

interface Line {
  route: string;
  says: string;
  serves: string;
  state: string;
}

const COLUMNS: Column<Line>[] = [{ key: 'route' }, { key: 'says', heading: 'ENVIRONMENT' }, { key: 'serves', heading: 'CADDY' }, { key: 'state' }];

export async function run(ctx: Context, opts: Options): Promise<void> {
  const env = loadEnvironment(opts.env);
  const routes = parseRoutes(env.settings.routes);
  const docker = await environmentDocker(env.settings, '`mp routes ls`');
  let served: ReturnType<typeof servedRoutes> = [];
  let caddy = 'running';
  try {
    served = servedRoutes(await readCaddyConfig(docker, await ingressContainer(docker, env.spec.name)));
  } catch (err) {
    if (!(err instanceof MiniPaasError)) throw err;
    caddy = err.message;
  }
  const keyOf = (s: { listen: string; host: string; path: string; tls: boolean }): string => {
    const port = Number(s.listen.split(':').pop());
    const scheme = s.tls ? 'https' : 'http';
    return `${scheme}://${s.host}${port === (s.tls ? 443 : 80) ? '' : `:${port}`}${s.path}`;
  };
  const live = new Map(served.map((s) => [keyOf(s), s.upstream]));
  const lines: Line[] = routes.map((r) => {
    const says = `tasks.${r.service}:${r.targetPort}`;
    const serves = live.get(r.key);
    live.delete(r.key);
    return { route: r.key, says: `${r.service}:${r.targetPort}`, serves: serves ?? '-', state: serves === undefined ? 'not served (deploy routing)' : serves === says ? 'ok' : 'differs (deploy routing)' };
  });
  for (const [route, upstream] of live) lines.push({ route, says: '-', serves: upstream, state: 'not in the environment' });
  if (ctx.json) {
    ctx.stdout.write(`${toJson({ environment: env.name, stack: env.spec.name, caddy, routes: lines })}\n`);
    return;
  }
  ctx.stdout.write(`routes of ${env.name} (stack ${env.spec.name}); Caddy: ${caddy}\n`);
  printRows(ctx, lines, COLUMNS, 'no routes: add one with `mp code route --env DIR URL service:port`');
}
