-- Provisioning and monitoring (issue 13): hosts prepared over SSH, one operation per host with a child
-- operation per step; SSH host keys accepted on first contact; host metrics with the heartbeat; alert
-- incidents raised once each. Why child operations: the progress and outcome of every step on every
-- host is a row anyone can query (mp.provisioning_v), and a failed step can be retried alone
-- (`mp ops retry <step id>` runs kind provision.step).

-- SSH host keys the provisioner accepted (`mp provision --accept-new-host-keys`), checked on every later
-- contact besides known_hosts: a changed key is refused.
create table mp.host_keys (
  host text not null,
  port int not null,
  key_type text not null,
  key_base64 text not null,
  fingerprint text not null,
  accepted_by text not null default current_user,
  accepted_at timestamptz not null default now(),
  primary key (host, port, key_type)
);

-- Records a host key on first contact; returns the key already recorded for (host, port, type), which
-- differs from `key_base64` when the host's key changed (the caller refuses it).
create function mp.host_key_accept(host text, port int, key_type text, key_base64 text, fingerprint text)
returns text
language plpgsql as $$
declare
  known text;
begin
  insert into mp.host_keys as k (host, port, key_type, key_base64, fingerprint)
  values (host_key_accept.host, host_key_accept.port, host_key_accept.key_type, host_key_accept.key_base64, host_key_accept.fingerprint)
  on conflict on constraint host_keys_pkey do nothing;
  select k.key_base64 into known from mp.host_keys k
  where k.host = host_key_accept.host and k.port = host_key_accept.port and k.key_type = host_key_accept.key_type;
  return known;
end $$;

-- Starts (or restarts) the child operation of step `step` of the provisioning operation `parent_id`,
-- run inline by the agent running the parent: the row is 'running' at once (no job of its own). A
-- second attempt of the parent reuses the step's row. Returns the step operation's id.
create function mp.provision_step_start(parent_id bigint, step text, node text, payload jsonb default '{}')
returns bigint
language plpgsql as $$
declare
  p mp.operations;
  child_id bigint;
begin
  p := mp._lock_operation(parent_id);
  select id into child_id from mp.operations o
  where o.parent_id = provision_step_start.parent_id and o.kind = 'provision.step' and o.payload ->> 'step' = step;
  if child_id is null then
    insert into mp.operations (kind, environment, target, payload, serial_key, parent_id, status, attempts, node, started_at)
    values ('provision.step', p.environment, 'provisioner', coalesce(payload, '{}') || jsonb_build_object('step', step),
            p.serial_key, parent_id, 'running', 1, node, now())
    returning id into child_id;
  else
    update mp.operations set status = 'running', attempts = attempts + 1, node = provision_step_start.node,
                             error = null, result = null, finished_at = null
    where id = child_id;
  end if;
  perform mp.op_event(child_id, 'started', format('step %s of operation %s started on %s', step, parent_id, node));
  return child_id;
end $$;

-- Ends a step operation run inline (see above): succeeded with its result, or failed with its error.
create function mp.provision_step_finish(step_id bigint, status text, result jsonb default null, error text default null)
returns void
language plpgsql as $$
begin
  if status not in ('succeeded', 'failed', 'cancelled') then
    raise exception 'a step ends succeeded, failed or cancelled, not %', status using errcode = 'MP003';
  end if;
  update mp.operations set status = provision_step_finish.status, result = provision_step_finish.result,
                           error = provision_step_finish.error, finished_at = now()
  where id = step_id and kind = 'provision.step';
  if not found then
    perform mp._unknown_operation(step_id);
  end if;
  perform mp.op_event(step_id, status,
    case status when 'failed' then coalesce(error, 'failed') else coalesce(result ->> 'summary', status) end,
    case status when 'failed' then 'error' else 'info' end, result);
end $$;

-- Provisioning progress: one line per host and step, in order. `psql -c 'table mp.provisioning_v'`.
create view mp.provisioning_v as
select p.id as operation, p.payload -> 'host' ->> 'name' as host, p.payload -> 'host' ->> 'role' as role,
       s.payload ->> 'step' as step, coalesce(s.status, 'pending') as status,
       case when s.result ->> 'changed' = 'true' then 'changed' when s.result ->> 'changed' = 'false' then 'unchanged' end as outcome,
       coalesce(s.result ->> 'summary', s.error) as detail,
       s.id as step_operation, s.started_at, s.finished_at,
       p.status as host_status, p.created_at
from mp.operations p
left join mp.operations s on s.parent_id = p.id and s.kind = 'provision.step'
where p.kind = 'provision.host'
order by p.id, s.id;

/* ---------------------------------------------------------------- metrics and alerts */

alter table mp.nodes add column metrics jsonb;
alter table mp.nodes add column metrics_at timestamptz;

-- Where alerts go and when they fire, per cluster (one row; `mp provision` writes it from minipaas.yaml
-- monitoring:). The webhook URL can carry a token (Telegram's does): only agents read this table.
create table mp.monitoring (
  id boolean primary key default true check (id),
  webhook text,
  webhook_fields jsonb not null default '{}',
  cpu_percent real not null default 90,
  memory_percent real not null default 90,
  disk_percent real not null default 90,
  load_per_cpu real not null default 2,
  -- A node is down after this long without a heartbeat (agents beat every 5 s).
  down_after_seconds int not null default 30,
  updated_at timestamptz not null default now()
);

-- One row per incident: opened when a condition starts (node down, a metric over its threshold),
-- closed when it clears. One alert operation per incident, however long it lasts.
create table mp.incidents (
  id bigint generated by default as identity primary key,
  node text not null,
  condition text not null check (condition in ('down', 'cpu', 'memory', 'disk', 'load')),
  message text not null,
  opened_at timestamptz not null default now(),
  closed_at timestamptz,
  alert_operation bigint references mp.operations (id)
);
create unique index incidents_open on mp.incidents (node, condition) where closed_at is null;

create function mp.monitoring_configure(settings jsonb) returns void
language plpgsql as $$
begin
  insert into mp.monitoring as m (id, webhook, webhook_fields, cpu_percent, memory_percent, disk_percent, load_per_cpu, down_after_seconds)
  values (true, settings ->> 'webhook', coalesce(settings -> 'webhook_fields', '{}'),
          coalesce((settings ->> 'cpu_percent')::real, 90), coalesce((settings ->> 'memory_percent')::real, 90),
          coalesce((settings ->> 'disk_percent')::real, 90), coalesce((settings ->> 'load_per_cpu')::real, 2),
          coalesce((settings ->> 'down_after_seconds')::int, 30))
  on conflict (id) do update set webhook = excluded.webhook, webhook_fields = excluded.webhook_fields,
    cpu_percent = excluded.cpu_percent, memory_percent = excluded.memory_percent, disk_percent = excluded.disk_percent,
    load_per_cpu = excluded.load_per_cpu, down_after_seconds = excluded.down_after_seconds, updated_at = now();
end $$;

-- Opens and closes incidents from the nodes' heartbeats and metrics as of `now`, and queues one
-- `alert.post` operation per opened (and per closed) incident when a webhook is configured. Runs under a
-- transaction-level advisory lock taken with try: agents call it with every heartbeat, one does the work.
create function mp.monitor_tick(now timestamptz default now()) returns int
language plpgsql as $$
declare
  m mp.monitoring;
  n record;
  c record;
  opened int := 0;
  inc mp.incidents;
  op_id bigint;
begin
  if not pg_try_advisory_xact_lock(hashtextextended('mp.monitor_tick', 0)) then
    return 0;
  end if;
  select * into m from mp.monitoring;
  if not found then
    m := row(true, null, '{}', 90, 90, 90, 2, 30, now())::mp.monitoring;
  end if;
  for n in
    select x.name, x.metrics, x.stopped_at,
           x.heartbeat_at < now - m.down_after_seconds * interval '1 second' or x.stopped_at is not null as down
    from mp.nodes x
  loop
    for c in
      select * from (values
        ('down', n.down, format('node %s is down: no heartbeat since %s', n.name,
                                to_char((select heartbeat_at from mp.nodes where name = n.name), 'YYYY-MM-DD HH24:MI:SS TZ'))),
        ('cpu', not n.down and (n.metrics ->> 'cpu_percent')::real > m.cpu_percent,
                format('node %s: CPU %s%% (threshold %s%%)', n.name, n.metrics ->> 'cpu_percent', m.cpu_percent)),
        ('memory', not n.down and (n.metrics ->> 'memory_percent')::real > m.memory_percent,
                format('node %s: memory %s%% used (threshold %s%%)', n.name, n.metrics ->> 'memory_percent', m.memory_percent)),
        ('disk', not n.down and (n.metrics ->> 'disk_percent')::real > m.disk_percent,
                format('node %s: disk %s%% used (threshold %s%%)', n.name, n.metrics ->> 'disk_percent', m.disk_percent)),
        ('load', not n.down and (n.metrics ->> 'load1')::real > m.load_per_cpu * greatest((n.metrics ->> 'cpus')::real, 1),
                format('node %s: load %s on %s CPUs (threshold %s per CPU)', n.name, n.metrics ->> 'load1', n.metrics ->> 'cpus', m.load_per_cpu))
      ) as t(condition, active, message)
    loop
      select * into inc from mp.incidents i where i.node = n.name and i.condition = c.condition and i.closed_at is null;
      if coalesce(c.active, false) and inc.id is null then
        insert into mp.incidents (node, condition, message, opened_at) values (n.name, c.condition, c.message, now)
        returning * into inc;
        opened := opened + 1;
        if m.webhook is not null then
          op_id := mp.submit_operation('alert.post', null, jsonb_build_object('incident', inc.id, 'state', 'opened'),
                                       jsonb_build_object('target', 'any', 'serial_key', 'alerts'));
          update mp.incidents set alert_operation = op_id where id = inc.id;
        end if;
      elsif not coalesce(c.active, false) and inc.id is not null then
        update mp.incidents set closed_at = now where id = inc.id;
        if m.webhook is not null then
          perform mp.submit_operation('alert.post', null, jsonb_build_object('incident', inc.id, 'state', 'closed'),
                                      jsonb_build_object('target', 'any', 'serial_key', 'alerts'));
        end if;
      end if;
    end loop;
  end loop;
  return opened;
end $$;

-- A heartbeat with the host's metrics (agent/metrics.ts), then a monitoring tick.
create function mp.node_heartbeat(name text, metrics jsonb) returns void
language plpgsql as $$
begin
  update mp.nodes set heartbeat_at = now(), stopped_at = null, metrics = node_heartbeat.metrics, metrics_at = now()
  where nodes.name = node_heartbeat.name;
  perform mp.monitor_tick();
end $$;

-- What the alert poster needs: the incident and where to post it. Agents only.
create function mp.alert_details(incident bigint)
returns table (node text, condition text, message text, opened_at timestamptz, closed_at timestamptz, webhook text, webhook_fields jsonb)
language sql stable as $$
  select i.node, i.condition, i.message, i.opened_at, i.closed_at, m.webhook, m.webhook_fields
  from mp.incidents i left join mp.monitoring m on true where i.id = incident
$$;

-- Nodes with their metrics, for `mp nodes ls` and psql. `down`: past the monitoring's down_after_seconds.
create view mp.nodes_metrics_v as
select n.name, n.swarm_role,
       n.stopped_at is null and n.heartbeat_at > now() - coalesce((select down_after_seconds from mp.monitoring), 30) * interval '1 second' as alive,
       now() - n.heartbeat_at as since_heartbeat,
       (n.metrics ->> 'cpu_percent')::real as cpu_percent, (n.metrics ->> 'memory_percent')::real as memory_percent,
       (n.metrics ->> 'disk_percent')::real as disk_percent, (n.metrics ->> 'load1')::real as load1,
       (n.metrics ->> 'cpus')::int as cpus, n.metrics ->> 'docker' as docker, n.metrics ->> 'swarm' as swarm,
       n.metrics_at,
       (select string_agg(i.condition, ',' order by i.condition) from mp.incidents i where i.node = n.name and i.closed_at is null) as incidents
from mp.nodes n;

alter function mp.host_key_accept(text, int, text, text, text) security definer set search_path = mp, pg_catalog;
alter function mp.provision_step_start(bigint, text, text, jsonb) security definer set search_path = mp, pg_catalog;
alter function mp.provision_step_finish(bigint, text, jsonb, text) security definer set search_path = mp, pg_catalog;
alter function mp.monitoring_configure(jsonb) security definer set search_path = mp, pg_catalog;
alter function mp.monitor_tick(timestamptz) security definer set search_path = mp, pg_catalog;
alter function mp.node_heartbeat(text, jsonb) security definer set search_path = mp, pg_catalog;
alter function mp.alert_details(bigint) security definer set search_path = mp, pg_catalog;

-- Grants of this file's objects (called by mp.grant_roles()).
create function mp._grant_provisioning() returns void
language plpgsql as $$
begin
  grant execute on function mp.monitoring_configure(jsonb) to mp_cli;
  grant execute on function mp.host_key_accept(text, int, text, text, text), mp.provision_step_start(bigint, text, text, jsonb),
    mp.provision_step_finish(bigint, text, jsonb, text), mp.monitor_tick(timestamptz), mp.node_heartbeat(text, jsonb),
    mp.alert_details(bigint) to mp_agent;
  grant select on mp.provisioning_v, mp.nodes_metrics_v, mp.incidents, mp.host_keys to mp_cli, mp_agent;
end $$;

revoke execute on function mp.host_key_accept(text, int, text, text, text), mp.provision_step_start(bigint, text, text, jsonb),
  mp.provision_step_finish(bigint, text, jsonb, text), mp.monitoring_configure(jsonb), mp.monitor_tick(timestamptz),
  mp.node_heartbeat(text, jsonb), mp.alert_details(bigint), mp._grant_provisioning() from public;

do $$
begin
  if exists (select 1 from pg_roles where rolname = 'mp_cli') and exists (select 1 from pg_roles where rolname = 'mp_agent') then
    perform mp._grant_provisioning();
  end if;
end $$;
