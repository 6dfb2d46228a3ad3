-- A claim that comes back short registers its worker as waiting, and a full one withdraws it: a worker
-- in any language that LISTENs on mp_queue_<queue> and calls mp.claim in a loop is woken by the next
-- enqueue without calling mp.wait_for_jobs. Same claim semantics and plans as 0003 otherwise.
--
-- Why: enqueues NOTIFY only while some worker is registered in mp.queue_waiters (0002: NOTIFY takes a
-- database-wide lock at commit, so a busy system must not send one per enqueue). Only mp.wait_for_jobs
-- registered, which the README's SQL example never showed, so a plain LISTEN + claim loop slept until
-- its own poll: p50 525 ms at 200 jobs/s with a 1 s poll. The claim knows best whether its worker is
-- about to wait: it asked for `batch` jobs and got fewer.
-- * Short claim (fewer live jobs than `batch`): the worker is registered (or its registration renewed
--   once it is 20 s old). While it is fresh that is one primary-key lookup in the tiny unlogged table;
--   otherwise one write to it, which logs no WAL.
-- * Full claim: the registration is deleted, so a busy system (claims keep returning full batches) sends
--   no NOTIFY. A delete that finds nothing writes nothing.
-- * A claim that starts the wait (no registration, or one old enough that enqueues ignore it) also sends
--   NOTIFY on the queue's channel itself. Why: an enqueue that commits while this claim runs saw neither
--   this claim's registration (not committed yet) nor was seen by its candidate scan, so it sent no
--   wake-up; the claim's own NOTIFY (delivered at its commit, to its own session too) makes every
--   listener claim once more, after the registration is visible. That is what "call mp.wait_for_jobs,
--   claim once more, then wait" did by hand. It costs one NOTIFY per idle transition, not per job.
-- * mp.wait_for_jobs and mp.done_waiting keep working (the TypeScript client calls them); they are now
--   optional. A loop claiming one job at a time flips between full and short claims at low load, paying a
--   registration and a NOTIFY per job: claim batches of the worker's free slots.
-- Function signatures do not change, so the grants of 0002 and mp.grant_roles stay as they are.

create or replace function mp.ack_claim(ack_ids bigint[], queue text, worker text, batch int default 1,
                                        lease_seconds int default null, targets text[] default null)
returns table (id bigint, payload jsonb, attempt int, max_attempts int, lease_until timestamptz, enqueued_at timestamptz)
language plpgsql
-- As in 0003: generic plans, no JIT, and a claim that always walks jobs_claim in order.
set plan_cache_mode = force_generic_plan
set jit = off
set enable_sort = off
set enable_bitmapscan = off
as $$
declare
  q mp.queues := mp._queue(queue);
  t timestamptz := mp._now();
  lease interval;
  live_rows tid[];
  dead_ids bigint[];
  registered timestamptz;
begin
  if cardinality(ack_ids) > 0 then
    perform mp.ack(ack_ids);
  end if;
  if batch is null or batch <= 0 then
    raise exception 'batch size must be greater than zero, got %', coalesce(batch::text, 'null')
      using errcode = 'MP004', hint = 'claim at least 1 job';
  end if;
  if lease_seconds is not null and lease_seconds <= 0 then
    raise exception 'lease must be at least 1 second, got %', lease_seconds
      using errcode = 'MP004', hint = 'pass lease_seconds >= 1, or null for the queue default';
  end if;
  if worker is null or worker = '' then
    raise exception 'worker name is empty' using errcode = 'MP004', hint = 'name the worker, e.g. its host and pid';
  end if;
  lease := coalesce(lease_seconds, q.lease_seconds) * interval '1 second';

  select array_agg(c.row_address) filter (where not c.exhausted),
         array_agg(c.id) filter (where c.exhausted)
  into live_rows, dead_ids
  from (
    select j.ctid as row_address, j.id, (j.locked_by is not null and j.attempt >= j.max_attempts) as exhausted
    from mp.jobs j
    where j.queue = ack_claim.queue
      and j.run_at <= t
      and (j.locked_by is null or j.lease_until <= t)
      and (j.target is null or j.target = any (targets))
      and (j.serial_key is null or not exists (
        select 1 from mp.jobs s where s.queue = j.queue and s.serial_key = j.serial_key and s.id < j.id))
    order by j.priority desc, j.run_at, j.id
    limit batch
    for update of j skip locked
  ) c;

  -- Waiter bookkeeping (see the header). now(), not t: mp._wake reads the real clock too.
  if coalesce(cardinality(live_rows), 0) < batch then
    select w.since into registered from mp.queue_waiters w
    where w.queue = ack_claim.queue and w.worker = ack_claim.worker;
    if registered is null or registered < now() - interval '20 seconds' then
      insert into mp.queue_waiters (queue, worker) values (ack_claim.queue, ack_claim.worker)
      on conflict on constraint queue_waiters_pkey do update set since = now();
      -- 50 s, inside mp._wake's one minute: a registration that old may already be ignored by enqueues.
      if registered is null or registered < now() - interval '50 seconds' then
        perform pg_notify('mp_queue_' || ack_claim.queue, '');
      end if;
    end if;
  else
    delete from mp.queue_waiters w where w.queue = ack_claim.queue and w.worker = ack_claim.worker;
  end if;

  if dead_ids is not null then
    with dead as (
      delete from mp.jobs j where j.id = any (dead_ids)
      returning j.*
    )
    insert into mp.dead_jobs (id, queue, payload, priority, attempt, max_attempts, dedupe_key, serial_key, target, errors, enqueued_at, died_at)
    select d.id, d.queue, d.payload, d.priority, d.attempt, d.max_attempts, d.dedupe_key, d.serial_key, d.target,
           coalesce(d.errors, '[]') || jsonb_build_object('attempt', d.attempt, 'at', t,
             'error', 'lease expired while held by ' || d.locked_by || ' and no attempts are left'),
           d.enqueued_at, t
    from dead d;
  end if;

  if live_rows is null then
    return;
  end if;
  return query
  with claimed as (
    update mp.jobs j set
      attempt = j.attempt + 1,
      locked_by = worker,
      lease_until = t + lease,
      -- A reclaimed job records the lease its previous holder let expire: that attempt failed too.
      errors = case when j.locked_by is null then j.errors
                    else coalesce(j.errors, '[]') || jsonb_build_object('attempt', j.attempt, 'at', t,
                           'error', 'lease expired while held by ' || j.locked_by) end
    where j.ctid = any (live_rows)
    returning j.id, j.payload, j.attempt, j.max_attempts, j.lease_until, j.enqueued_at, j.priority, j.run_at
  )
  -- The TID scan visits rows in physical order; hand them out in claim order.
  select c.id, c.payload, c.attempt, c.max_attempts, c.lease_until, c.enqueued_at
  from claimed c
  order by c.priority desc, c.run_at, c.id;
end $$;
