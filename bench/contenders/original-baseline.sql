-- A bench-only re-creation of the original MiniPaaS toolkit's queue, written from its documented
-- behaviour, so issue 3's "original functions" baseline can run beside the compat wrappers
-- (sql/compat, which now sit on mp.*): one table per queue with a status column and a
-- (status, created_at) index; enqueue inserts and notifies on a channel named after the queue;
-- dequeue flips up to N pending rows to 'processing' with FOR UPDATE SKIP LOCKED (no lease, no
-- retry); ack marks rows 'done' and keeps them. Installed only into throwaway benchmark databases.

create function minipaas_queue_create(p_queue_name text) returns void
language plpgsql as $$
begin
  if p_queue_name !~ '^[a-z_][a-z0-9_]*$' then
    raise exception 'Invalid queue table name: %', p_queue_name;
  end if;
  execute format('create table if not exists %I (
      id serial primary key,
      payload jsonb not null,
      status varchar(20) not null default %L,
      created_at timestamptz not null default now(),
      processed_at timestamptz)', p_queue_name, 'pending');
  execute format('create index if not exists %I on %I (status, created_at)',
                 'idx_' || p_queue_name || '_status_created_at', p_queue_name);
end $$;

create function minipaas_queue_enqueue(p_queue_name text, p_payload jsonb)
returns table (id int, payload jsonb, status varchar, created_at timestamptz)
language plpgsql as $$
begin
  if p_queue_name !~ '^[a-z_][a-z0-9_]*$' then
    raise exception 'Invalid queue table name: %', p_queue_name;
  end if;
  execute format('insert into %I (payload) values ($1) returning id, payload, status, created_at', p_queue_name)
    into id, payload, status, created_at using p_payload;
  perform pg_notify(p_queue_name, id::text);
  return next;
end $$;

create function minipaas_queue_dequeue(p_queue_name text, p_batch_size int)
returns table (id int, payload jsonb, status varchar, created_at timestamptz)
language plpgsql as $$
begin
  if p_queue_name !~ '^[a-z_][a-z0-9_]*$' then
    raise exception 'Invalid queue table name: %', p_queue_name;
  end if;
  if p_batch_size <= 0 then
    raise exception 'Batch size must be greater than zero';
  end if;
  return query execute format(
    'with picked as (select q.id from %1$I q where q.status = %2$L order by q.created_at
                     for update skip locked limit $1)
     update %1$I t set status = %3$L from picked where t.id = picked.id
     returning t.id, t.payload, t.status, t.created_at', p_queue_name, 'pending', 'processing')
    using p_batch_size;
end $$;

create function minipaas_queue_ack(p_queue_name text, p_job_ids int[]) returns void
language plpgsql as $$
begin
  if p_queue_name !~ '^[a-z_][a-z0-9_]*$' then
    raise exception 'Invalid queue table name: %', p_queue_name;
  end if;
  execute format('update %I set status = %L, processed_at = now() where id = any ($1)', p_queue_name, 'done')
    using p_job_ids;
end $$;
