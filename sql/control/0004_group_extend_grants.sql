-- Grants mp.group_extend (sql/streams/0002_group_extend.sql) to mp_agent and mp_app with the rest of the
-- stream API. mp.grant_roles() grants the queue and stream functions by name, and its list predates
-- group_extend, so it is redefined here: the definition of 0003 with 'group_extend' added to that list.
-- Where the roles exist already it runs at once, so apps may extend leases without a new `mp db roles`.

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

-- Only where `mp db roles` made all three roles: a migration must not create them (the migrator checks
-- the same before it re-grants).
do $$
begin
  if (select count(*) from pg_roles where rolname in ('mp_cli', 'mp_agent', 'mp_app')) = 3 then
    perform mp.grant_roles();
  end if;
end $$;
