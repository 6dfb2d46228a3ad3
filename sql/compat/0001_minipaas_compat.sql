-- Compatibility with the original MiniPaaS SQL package: the `minipaas_queue_*` and `minipaas_stream_*`
-- functions in the public schema, same names, signatures, result columns and error messages, so apps
-- written for it keep working unchanged. They are thin wrappers over mp.* queues and streams.
--
-- Differences an app can notice, all in its favour:
-- * A dequeued job is leased, not held forever: if its consumer dies without acking, it is handed out
--   again after the lease (one hour for queues made here, so slow consumers are not doubled up).
-- * Stream ids are dense per-stream positions, and consume never skips a late-committing event.
-- * Finished jobs are deleted at ack instead of kept with status 'done' (mp.queue_create can keep them).

create function public._minipaas_check_name(kind text, p_name text) returns void
language plpgsql immutable as $$
begin
  if p_name is null or p_name !~ '^[a-z_][a-z0-9_]*$' then
    raise exception 'Invalid % table name: %', kind, coalesce(p_name, 'null')
      using errcode = 'MP001', hint = 'names match ^[a-z_][a-z0-9_]*$';
  end if;
end $$;

create function public._minipaas_check_batch(p_batch_size int) returns void
language plpgsql immutable as $$
begin
  if p_batch_size is null or p_batch_size <= 0 then
    raise exception 'Batch size must be greater than zero' using errcode = 'MP004';
  end if;
end $$;

create function public.minipaas_queue_create(p_queue_name text) returns void
language plpgsql as $$
begin
  perform public._minipaas_check_name('queue', p_queue_name);
  if not exists (select 1 from mp.queues where name = p_queue_name) then
    perform mp.queue_create(p_queue_name, '{"lease_seconds": 3600}');
  end if;
end $$;

-- Notifies on the channel named after the queue with the new id, as the original did, so apps that
-- LISTEN there keep waking (mp.enqueue itself only wakes waiting mp workers).
create function public.minipaas_queue_enqueue(p_queue_name text, p_payload jsonb)
returns table (id int, payload jsonb, status varchar, created_at timestamptz)
language plpgsql as $$
declare
  v_id int;
begin
  perform public._minipaas_check_name('queue', p_queue_name);
  v_id := mp.enqueue(p_queue_name, p_payload)::int;
  perform pg_notify(p_queue_name, v_id::text);
  return query select v_id, p_payload, 'pending'::varchar, mp._now();
end $$;

-- Claims up to p_batch_size pending jobs, oldest first; their status becomes 'processing'.
create function public.minipaas_queue_dequeue(p_queue_name text, p_batch_size int)
returns table (id int, payload jsonb, status varchar, created_at timestamptz)
language plpgsql as $$
begin
  perform public._minipaas_check_name('queue', p_queue_name);
  perform public._minipaas_check_batch(p_batch_size);
  return query
    select c.id::int, c.payload, 'processing'::varchar, c.enqueued_at
    from mp.claim(p_queue_name, 'minipaas_compat', p_batch_size) c
    order by c.id;
end $$;

-- Marks the given jobs of this queue done.
create function public.minipaas_queue_ack(p_queue_name text, p_job_ids int[]) returns void
language plpgsql as $$
begin
  perform public._minipaas_check_name('queue', p_queue_name);
  perform mp._queue(p_queue_name);
  perform mp.ack(array(select j.id from mp.jobs j where j.queue = p_queue_name and j.id = any (p_job_ids::bigint[])));
end $$;

create function public.minipaas_stream_create(p_stream_name text) returns void
language plpgsql as $$
begin
  perform public._minipaas_check_name('stream', p_stream_name);
  if not exists (select 1 from mp.streams where name = p_stream_name) then
    perform mp.stream_create(p_stream_name);
  end if;
end $$;

create function public.minipaas_stream_delete(p_stream_name text) returns void
language plpgsql as $$
begin
  perform public._minipaas_check_name('stream', p_stream_name);
  if exists (select 1 from mp.streams where name = p_stream_name) then
    perform mp.stream_drop(p_stream_name);
  end if;
end $$;

create function public.minipaas_stream_publish(p_stream_name text, p_payload jsonb)
returns table (id bigint, payload jsonb, created_at timestamptz)
language plpgsql as $$
declare
  v_pos bigint;
begin
  perform public._minipaas_check_name('stream', p_stream_name);
  v_pos := mp.publish(p_stream_name, p_payload);
  return query
    select e.pos, e.payload, e.created_at from mp.stream_events e
    join mp.streams s on s.id = e.stream_id
    where s.name = p_stream_name and e.pos = v_pos;
end $$;

-- Up to p_batch_size events after p_last_id, in order; the returned id is the cursor to pass back.
create function public.minipaas_stream_consume(p_stream_name text, p_last_id bigint, p_batch_size int)
returns table (id bigint, payload jsonb, created_at timestamptz)
language plpgsql stable as $$
begin
  perform public._minipaas_check_name('stream', p_stream_name);
  perform public._minipaas_check_batch(p_batch_size);
  return query select r.pos, r.payload, r.created_at from mp.read(p_stream_name, coalesce(p_last_id, 0), p_batch_size) r;
end $$;
