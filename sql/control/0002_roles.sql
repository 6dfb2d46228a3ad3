-- Roles: what the CLI, the agents and apps may each do, enforced by PostgreSQL.
-- * mp_cli: submit intents and read status. It runs the control functions (SECURITY DEFINER) and reads
--   the views; it has no privilege on mp.operations' rows and cannot claim, so it cannot act for an agent.
-- * mp_agent: claim, report and heartbeat. It uses the queue functions on queue mp_ops (owned by it).
-- * mp_app: its own queues and streams only. Row-level security hides every queue and stream whose
--   owner role the app's role is not a member of; an app cannot see or touch mp_ops or mp_events.
-- The role that runs the migrations owns the tables, so it (the platform itself) bypasses RLS and pays
-- nothing for it on the hot path. `mp db roles` calls mp.grant_roles() to create the roles and grants.

alter table mp.queues add column owner text not null default current_user;
alter table mp.streams add column owner text not null default current_user;
update mp.queues set owner = 'mp_agent' where name = 'mp_ops';
update mp.streams set owner = 'mp_agent' where name = 'mp_events';

-- True when `who` is a member of role `owner` (false for a role that does not exist).
create function mp._member_of(owner text, who name) returns boolean
language sql stable as $$
  select exists (select 1 from pg_roles r where r.rolname = owner and pg_has_role(who, r.oid, 'member'))
$$;

-- True when `who` is a member of the role that owns queue `q`. SECURITY DEFINER so that it reads
-- mp.queues past RLS; `who` is the caller's current_user, passed in by the policy.
create function mp._may_use_queue(q text, who name) returns boolean
language sql stable security definer set search_path = mp, pg_catalog as $$
  select exists (select 1 from mp.queues where queues.name = q and mp._member_of(queues.owner, who))
$$;

create function mp._may_use_stream(sid int, who name) returns boolean
language sql stable security definer set search_path = mp, pg_catalog as $$
  select exists (select 1 from mp.streams where streams.id = sid and mp._member_of(streams.owner, who))
$$;

alter table mp.queues enable row level security;
create policy queues_owner on mp.queues
  using (mp._member_of(owner, current_user))
  with check (owner = current_user);
alter table mp.jobs enable row level security;
create policy jobs_owner on mp.jobs using (mp._may_use_queue(queue, current_user));
alter table mp.dead_jobs enable row level security;
create policy dead_jobs_owner on mp.dead_jobs using (mp._may_use_queue(queue, current_user));
alter table mp.finished_jobs enable row level security;
create policy finished_jobs_owner on mp.finished_jobs using (mp._may_use_queue(queue, current_user));

alter table mp.streams enable row level security;
create policy streams_owner on mp.streams
  using (mp._member_of(owner, current_user))
  with check (owner = current_user);
alter table mp.stream_events enable row level security;
create policy stream_events_owner on mp.stream_events using (mp._may_use_stream(stream_id, current_user));
alter table mp.stream_groups enable row level security;
create policy stream_groups_owner on mp.stream_groups using (mp._may_use_stream(stream_id, current_user));
alter table mp.stream_leases enable row level security;
create policy stream_leases_owner on mp.stream_leases using (mp._may_use_stream(stream_id, current_user));

-- Control functions run as their owner: callers get exactly these entry points, not the tables.
alter function mp.submit_operation(text, text, jsonb, jsonb) security definer set search_path = mp, pg_catalog;
alter function mp.cancel_operation(bigint) security definer set search_path = mp, pg_catalog;
alter function mp.retry_operation(bigint) security definer set search_path = mp, pg_catalog;
alter function mp.environment_create(text) security definer set search_path = mp, pg_catalog;
alter function mp.agent_alive_for(text, int) security definer set search_path = mp, pg_catalog;
alter function mp.op_start(bigint, text) security definer set search_path = mp, pg_catalog;
alter function mp.op_finish(bigint, int, text, jsonb, text) security definer set search_path = mp, pg_catalog;
alter function mp.op_event(bigint, text, text, text, jsonb) security definer set search_path = mp, pg_catalog;
alter function mp.node_register(text, text, text, text[], text[], text, text, jsonb) security definer set search_path = mp, pg_catalog;
alter function mp.node_heartbeat(text) security definer set search_path = mp, pg_catalog;
alter function mp.node_stopped(text) security definer set search_path = mp, pg_catalog;

-- Events of one operation after a stream position, for `mp ops tail` under the mp_cli role.
create function mp.operation_events(op_id bigint, after bigint default 0)
returns table (pos bigint, payload jsonb, created_at timestamptz)
language sql stable security definer set search_path = mp, pg_catalog as $$
  select e.pos, e.payload, e.created_at from mp.stream_events e
  where e.stream_id = (select id from mp.streams where name = 'mp_events') and e.key = op_id::text and e.pos > after
  order by e.pos
$$;

-- PostgreSQL lets PUBLIC execute every new function; here nothing is public.
revoke execute on all functions in schema mp from public;
alter default privileges in schema mp revoke execute on functions from public;

-- Creates the roles mp_cli, mp_agent and mp_app (NOLOGIN groups: grant them to login roles) when they
-- are missing, and grants each what it may do. Safe to run again after new migrations.
create function mp.grant_roles() returns void
language plpgsql as $$
declare
  r text;
  f text;
begin
  foreach r in array array['mp_cli', 'mp_agent', 'mp_app'] loop
    if not exists (select 1 from pg_roles where rolname = r) then
      execute format('create role %I nologin', r);
    end if;
    execute format('grant usage on schema mp to %I', r);
  end loop;

  -- CLI: submit intents, read status.
  foreach f in array array[
    'mp.submit_operation(text, text, jsonb, jsonb)', 'mp.cancel_operation(bigint)', 'mp.retry_operation(bigint)',
    'mp.environment_create(text)', 'mp.agent_alive_for(text, int)', 'mp.operation_events(bigint, bigint)',
    'mp._now()'] loop
    execute format('grant execute on function %s to mp_cli', f);
  end loop;
  grant select on mp.operations, mp.nodes, mp.environments, mp.operations_v, mp.nodes_v, mp.migrations to mp_cli;

  -- Agents: the control calls, and the queue functions on mp_ops (which mp_agent owns).
  foreach f in array array[
    'mp.op_start(bigint, text)', 'mp.op_finish(bigint, int, text, jsonb, text)', 'mp.op_event(bigint, text, text, text, jsonb)',
    'mp.node_register(text, text, text, text[], text[], text, text, jsonb)', 'mp.node_heartbeat(text)', 'mp.node_stopped(text)',
    'mp.operation_events(bigint, bigint)'] loop
    execute format('grant execute on function %s to mp_agent', f);
  end loop;
  grant select on mp.operations, mp.nodes, mp.environments, mp.operations_v, mp.nodes_v, mp.migrations to mp_agent;

  -- Agents and apps: the queue and stream API; RLS limits each to the queues and streams it owns.
  foreach r in array array['mp_agent', 'mp_app'] loop
    for f in
      select p.oid::regprocedure::text from pg_proc p
      where p.pronamespace = 'mp'::regnamespace
        and (p.proname in ('queue_create', 'enqueue', 'enqueue_batch', 'claim', 'ack', 'ack_claim', 'fail', 'extend_lease',
                           'wait_for_jobs', 'done_waiting',
                           'release', 'retry_dead', 'purge', 'queue_stats', 'prune_finished',
                           'stream_create', 'stream_drop', 'stream_trim', 'publish', 'publish_batch', 'read',
                           'group_create', 'poll', 'commit', 'stream_stats', 'group_stats')
             or p.proname like '\_%')
        and p.proname not in ('_op_job_died')
    loop
      execute format('grant execute on function %s to %I', f, r);
    end loop;
    execute format('grant select, insert, update, delete on mp.queues, mp.jobs, mp.dead_jobs, mp.finished_jobs, mp.queue_waiters,
                    mp.streams, mp.stream_events, mp.stream_groups, mp.stream_leases to %I', r);
  end loop;
end $$;

-- An agent that dead-letters an mp_ops job (in mp.claim) fails the operation through this trigger.
alter function mp._op_job_died() security definer set search_path = mp, pg_catalog;
