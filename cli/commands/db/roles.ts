/** `mp db roles`: creates the roles mp_cli, mp_agent and mp_app (or refreshes their grants) and shows them. */
import { z } from 'zod';
import { ConflictError } from '../../../sql/errors.ts';
import type { Context } from '../../context.ts';
import { printRows, type Column } from '../../output.ts';

export const options = z.object({}).strict();
export type Options = z.output<typeof options>;

/** What each role may do (`sql/control/0002_roles.sql`). */
const MAY: Record<string, string> = {
  mp_cli: 'submit, cancel and retry operations; read status (cannot claim)',
  mp_agent: 'claim operations on mp_ops, report steps, heartbeat',
  mp_app: 'its own queues and streams only',
};

/** One role, as `--json` prints it. */
export interface RoleRow {
  role: string;
  may: string;
  members: string[];
}

const COLUMNS: Column<RoleRow & { members_text: string }>[] = [
  { key: 'role' },
  { key: 'may', heading: 'MAY' },
  { key: 'members_text', heading: 'MEMBERS (login roles)' },
];

/**
 * Runs `mp.grant_roles()` (creates missing NOLOGIN group roles, grants what each may do; safe to run
 * again after new migrations), then lists the roles with their members. Needs a role allowed to create
 * roles (the database owner, or CREATEROLE).
 *
 * @example
 *   $ mp db roles
 *   ROLE      MAY                                                   MEMBERS (login roles)
 *   mp_cli    submit, cancel and retry operations; read status ...  alice
 *   hint: give a person or a server a login in one of them: create role alice login password '...' in role mp_cli
 */
export async function run(ctx: Context, _opts: Options): Promise<void> {
  const db = ctx.db();
  try {
    await db.query(`select mp.grant_roles()`);
  } catch (err) {
    if ((err as { code?: string }).code === '42501') {
      throw new ConflictError(
        'ROLES_PERMISSION',
        `cannot create or grant the MiniPaaS roles as this user: ${(err as Error).message}`,
        'run `mp db roles` as the database owner (the role that ran `mp migrate`) or a role with CREATEROLE',
      );
    }
    throw err;
  }
  const rows = await db.query<{ role: string; members: string[] }>(
    `select r.rolname as role,
            coalesce(array_agg(m.rolname::text order by m.rolname) filter (where m.rolname is not null), '{}'::text[]) as members
     from pg_roles r
     left join pg_auth_members am on am.roleid = r.oid
     left join pg_roles m on m.oid = am.member
     where r.rolname in ('mp_cli', 'mp_agent', 'mp_app')
     group by r.rolname
     order by r.rolname`,
  );
  const roles = rows.map((r) => ({ role: r.role, may: MAY[r.role] ?? '', members: r.members }));
  if (ctx.json) {
    ctx.stdout.write(`${JSON.stringify(roles)}\n`);
    return;
  }
  printRows(ctx, roles.map((r) => ({ ...r, members_text: r.members.join(', ') || '-' })), COLUMNS, 'no roles');
  ctx.stdout.write(
    "hint: give a person or a server a login in one of them: create role alice login password '...' in role mp_cli\n",
  );
}
