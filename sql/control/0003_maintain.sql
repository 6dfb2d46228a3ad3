-- Hot-table compaction by the platform's roles: `mp queue compact`, and every agent every 10 minutes,
-- rewrite mp.jobs with VACUUM (FULL) when it is mostly empty (sql/queues/compact.ts says when and why).
-- * VACUUM FULL needs the table's owner, or from PostgreSQL 17 on the MAINTAIN privilege. mp_cli and
--   mp_agent get MAINTAIN on mp.jobs only (not on the other tables, and never mp_app). On PostgreSQL 16
--   and older only the owner (the role that ran the migrations) can compact; the others are told so.
--   MAINTAIN also allows LOCK TABLE, REINDEX and CLUSTER on mp.jobs: a member of mp_cli could stall the
--   queues with a lock, as it already could by submitting work; it still cannot read or change a row.
-- * Deciding needs the live row count of the whole table, which mp_cli may not read and RLS hides
--   from mp_agent in part (an undercount could rewrite a big table under an exclusive lock), so
--   mp.measure_jobs counts as the owner.
-- * mp.grant_roles() is redefined (as in 0002, plus the compaction grants, and mp.group_extend of
--   sql/streams/0002 in the queue and stream API) and the grants are given at
--   once when the roles exist already, so agents that migrate first compact without a new `mp db roles`.

-- Heap bytes, index bytes and live rows of mp.jobs. Rows are counted up to `max_rows` (null: all): a
-- count of a huge backlog would scan all of it just to learn "too many to rewrite".
create function mp.measure_jobs(max_rows int) returns table (table_bytes bigint, index_bytes bigint, live_rows bigint)
language sql security definer set search_path = mp, pg_catalog as $$
  select pg_relation_size('mp.jobs'), pg_indexes_size('mp.jobs'),
         (select count(*) from (select 1 from mp.jobs limit max_rows) j)
$$;

-- Grants mp_cli and mp_agent, those of them that exist, what compacting mp.jobs needs.
create function mp._grant_maintain() returns void
language plpgsql as $$
declare
  r text;
begin
  foreach r in array array['mp_cli', 'mp_agent'] loop
    continue when not exists (select 1 from pg_roles where rolname = r);
    execute format('grant execute on function mp.measure_jobs(int) to %I', r);
    -- Dynamic: MAINTAIN is not a privilege before PostgreSQL 17.
    if current_setting('server_version_num')::int >= 170000 then
      execute format('grant maintain on mp.jobs to %I', r);
    end if;
  end loop;
end $$;

create or replace function mp.grant_roles() returns void
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
                           'group_create', 'poll', 'commit', 'group_extend', 'stream_stats', 'group_stats')
             or p.proname like '\_%')
        and p.proname not in ('_op_job_died', '_grant_maintain')
    loop
      execute format('grant execute on function %s to %I', f, r);
    end loop;
    execute format('grant select, insert, update, delete on mp.queues, mp.jobs, mp.dead_jobs, mp.finished_jobs, mp.queue_waiters,
                    mp.streams, mp.stream_events, mp.stream_groups, mp.stream_leases to %I', r);
  end loop;

  -- CLI and agents: compact the hot table (`mp queue compact`, the agents' maintenance).
  perform mp._grant_maintain();
end $$;

-- PUBLIC may execute every new function (a per-schema default privilege cannot revoke that global
-- default, so the one in 0002 does nothing): revoke it here.
revoke execute on function mp.measure_jobs(int), mp._grant_maintain() from public;

select mp._grant_maintain();
