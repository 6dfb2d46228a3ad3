-- Provisioning, continued: operations aimed at a node that is down fail instead of waiting for it.
--
-- Why: an operation with target 'node:<name>' can only be claimed by that node's agent. When the node is
-- down (no heartbeat for mp.monitoring.down_after_seconds, the same rule that opens its 'down' incident),
-- the job would sit on mp_ops until someone noticed. Instead every heartbeat of any other agent fails
-- such operations with a message naming the node and when it was last seen; `mp ops retry` queues one
-- again (and it fails again at once while the node stays down). A running one is failed only once its
-- lease lapsed: until then its agent may still be working on it (a network partition is not a crash).

create function mp.fail_operations_of_down_nodes(now timestamptz default now()) returns int
language plpgsql as $$
declare
  down_after int := coalesce((select m.down_after_seconds from mp.monitoring m), 30);
  o record;
  msg text;
  failed int := 0;
begin
  if not pg_try_advisory_xact_lock(hashtextextended('mp.fail_operations_of_down_nodes', 0)) then
    return 0;
  end if;
  for o in
    select op.id, op.status, op.job_id, n.name, n.heartbeat_at
    from mp.operations op
    join mp.nodes n on op.target = 'node:' || n.name
    where op.status in ('queued', 'running')
      and n.heartbeat_at < now - down_after * interval '1 second'
    order by op.id
    for update of op skip locked
  loop
    if exists (select 1 from mp.jobs j where j.id = o.job_id and j.locked_by is not null and j.lease_until > now) then
      continue;
    end if;
    delete from mp.jobs where id = o.job_id;
    msg := format('node %s is down since %s (no heartbeat for %s s); the operation was not run there',
                  o.name, to_char(o.heartbeat_at, 'YYYY-MM-DD HH24:MI:SS TZ'), down_after);
    update mp.operations set status = 'failed', error = msg, finished_at = now() where id = o.id;
    perform mp.op_event(o.id, 'failed', msg, 'error', jsonb_build_object('node', o.name, 'reason', 'node_down'));
    failed := failed + 1;
  end loop;
  return failed;
end $$;

-- A heartbeat with the host's metrics, then a monitoring tick, then the operations of down nodes
-- (replaces 0008's, which did the first two).
create or replace function mp.node_heartbeat(name text, metrics jsonb) returns void
language plpgsql as $$
begin
  update mp.nodes set heartbeat_at = now(), stopped_at = null, metrics = node_heartbeat.metrics, metrics_at = now()
  where nodes.name = node_heartbeat.name;
  perform mp.monitor_tick();
  perform mp.fail_operations_of_down_nodes();
end $$;

alter function mp.fail_operations_of_down_nodes(timestamptz) security definer set search_path = mp, pg_catalog;
alter function mp.node_heartbeat(text, jsonb) security definer set search_path = mp, pg_catalog;

-- Grants of this file's objects (called by mp.grant_roles()).
create function mp._grant_down_nodes() returns void
language plpgsql as $$
begin
  grant execute on function mp.fail_operations_of_down_nodes(timestamptz), mp.node_heartbeat(text, jsonb) to mp_agent;
end $$;

revoke execute on all functions in schema mp from public;

do $$
begin
  if exists (select 1 from pg_roles where rolname = 'mp_cli') and exists (select 1 from pg_roles where rolname = 'mp_agent') then
    perform mp._grant_down_nodes();
  end if;
end $$;
