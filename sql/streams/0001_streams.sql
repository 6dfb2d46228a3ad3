-- Durable streams: append-only event logs with dense per-stream positions, readers that never skip a
-- late-committing event, consumer groups with server-side offsets and leases, and retention.
-- Why this shape: positions from a global sequence are taken at insert but become visible at commit, so a
-- reader that moved past pos 11 would lose a pos 10 that commits later. Instead each publish bumps a
-- counter on the stream's own row; the row lock it takes is held until the publishing transaction ends, so
-- within one stream pos order == commit order, positions are dense, and an aborted publish rolls the
-- counter back. `mp.read` is then a plain index range scan. See sql/streams/README.md.

-- One row per stream. `last_pos` is the writer counter and, through its row lock, the writer lock.
create table mp.streams (
  id int generated always as identity primary key,
  name text not null unique,
  last_pos bigint not null default 0,
  -- Exactly what stream_create was given (validated), so an idempotent re-create can compare them.
  options jsonb not null default '{}',
  retention_seconds int,
  retention_count bigint,
  trimmed_at timestamptz not null default clock_timestamp(),
  created_at timestamptz not null default now()
);

-- No foreign key to mp.streams: the referential check would add a per-row lookup to every publish (and
-- publish_batch inserts thousands of rows at once); stream_drop deletes a stream's events itself and
-- stream ids come from an identity column, so they are never reused.
-- created_at is clock_timestamp() taken under the writer lock, so it never decreases along pos within a
-- stream (clock steps aside): age retention can then delete a prefix instead of scanning the stream.
create table mp.stream_events (
  stream_id int not null,
  pos bigint not null,
  key text,
  payload jsonb not null,
  created_at timestamptz not null default clock_timestamp(),
  primary key (stream_id, pos)
);

-- A consumer group: `next_pos` is the next pos never delivered; `committed` is the end of the contiguous
-- prefix the group has finished (every pos <= committed is processed or was trimmed).
create table mp.stream_groups (
  stream_id int not null references mp.streams (id) on delete cascade,
  grp text not null,
  next_pos bigint not null,
  committed bigint not null,
  created_at timestamptz not null default now(),
  primary key (stream_id, grp)
);

-- Ranges delivered but not yet committed. Ranges of one group never overlap: a range is created only from
-- next_pos onwards, and reclaiming or committing only ever moves or splits an existing range.
create table mp.stream_leases (
  stream_id int not null,
  grp text not null,
  from_pos bigint not null,
  to_pos bigint not null,
  member text not null,
  lease_until timestamptz not null,
  primary key (stream_id, grp, from_pos),
  foreign key (stream_id, grp) references mp.stream_groups (stream_id, grp) on delete cascade,
  check (from_pos <= to_pos)
);

-- Edit distance for "did you mean" hints; only ever runs on error paths over names of <= 48 characters.
create function mp._stream_distance(a text, b text) returns int
language plpgsql immutable as $$
declare
  prev int[];
  cur int[];
  i int;
  j int;
begin
  prev := array(select generate_series(0, length(b)));
  for i in 1 .. length(a) loop
    cur := array[i];
    for j in 1 .. length(b) loop
      cur := cur || least(prev[j + 1] + 1, cur[j] + 1,
                          prev[j] + case when substr(a, i, 1) = substr(b, j, 1) then 0 else 1 end);
    end loop;
    prev := cur;
  end loop;
  return prev[length(b) + 1];
end $$;

-- Raises MP001 for a malformed name, else MP005 naming the existing streams and the nearest one.
create function mp._stream_unknown(stream text) returns void
language plpgsql stable as $$
declare
  existing text;
  near text;
begin
  perform mp._check_name('stream', stream);
  select string_agg(name, ', ' order by name) into existing
    from (select s.name from mp.streams s order by s.name limit 20) t;
  select s.name into near from mp.streams s
   where mp._stream_distance(s.name, stream) <= greatest(2, length(stream) / 4)
   order by mp._stream_distance(s.name, stream), s.name limit 1;
  raise exception 'unknown stream "%"', stream
    using errcode = 'MP005',
          hint = coalesce('did you mean "' || near || '"? ', '')
              || format('create it with mp.stream_create(%L)', stream)
              || coalesce('; existing streams: ' || existing, '; there are no streams yet');
end $$;

-- Raises MP006 naming the stream's groups.
create function mp._stream_unknown_group(stream_id int, stream text, grp text) returns void
language plpgsql stable as $$
declare
  existing text;
begin
  select string_agg(g.grp, ', ' order by g.grp) into existing
    from mp.stream_groups g where g.stream_id = _stream_unknown_group.stream_id;
  raise exception 'unknown consumer group "%" on stream "%"', grp, stream
    using errcode = 'MP006',
          hint = format('create it with mp.group_create(%L, %L)', stream, grp)
              || coalesce('; groups of this stream: ' || existing, '; this stream has no groups yet');
end $$;

-- Raises MP004 unless `value` is a positive integer; `what` names the argument.
create function mp._stream_check_positive(what text, value bigint, context text) returns void
language plpgsql immutable as $$
begin
  if value is null or value <= 0 then
    raise exception '% must be a positive integer, got % (in %)', what, coalesce(value::text, 'null'), context
      using errcode = 'MP004', hint = format('pass %s >= 1', what);
  end if;
end $$;

-- Validates stream options and returns them with numbers normalised; MP003 on anything else.
create function mp._stream_options(options jsonb) returns jsonb
language plpgsql immutable as $$
declare
  k text;
  v jsonb;
begin
  options := coalesce(options, '{}');
  perform mp._check_options(options, array['retention_seconds', 'retention_count'], 'mp.stream_create');
  for k, v in select * from jsonb_each(options) loop
    if jsonb_typeof(v) = 'null' then
      options := options - k;
    elsif jsonb_typeof(v) <> 'number' or v::numeric <= 0 or v::numeric <> trunc(v::numeric)
          or v::numeric > 2147483647 then
      raise exception 'option "%" of mp.stream_create must be a positive integer, got %', k, v::text
        using errcode = 'MP003', hint = format('e.g. ''{"%s": 1000}''; leave it out to keep events forever', k);
    end if;
  end loop;
  return options;
end $$;

-- Creates a stream. Re-creating an existing stream with equal options is a no-op (so deploy scripts can
-- run it every time); with different options it raises MP007 rather than silently changing retention.
create function mp.stream_create(stream text, options jsonb default '{}') returns void
language plpgsql as $$
declare
  opts jsonb;
  v_old jsonb;
begin
  perform mp._check_name('stream', stream);
  opts := mp._stream_options(options);
  insert into mp.streams (name, options, retention_seconds, retention_count)
  values (stream, opts, (opts ->> 'retention_seconds')::int, (opts ->> 'retention_count')::bigint)
  on conflict (name) do nothing;
  if found then
    return;
  end if;
  select s.options into v_old from mp.streams s where s.name = stream;
  if v_old is distinct from opts then
    raise exception 'stream "%" already exists with options %', stream, v_old::text
      using errcode = 'MP007',
            hint = format('re-create it with the same options, or drop it first with mp.stream_drop(%L) (this deletes its events)', stream);
  end if;
end $$;

-- Drops a stream with its events, groups and leases. Locking the row first makes concurrent publishers
-- wait and then fail with MP005, instead of inserting orphan events.
create function mp.stream_drop(stream text) returns void
language plpgsql as $$
declare
  sid int;
begin
  select s.id into sid from mp.streams s where s.name = stream for update;
  if not found then
    perform mp._stream_unknown(stream);
  end if;
  delete from mp.stream_events e where e.stream_id = sid;
  delete from mp.streams s where s.id = sid;
end $$;

-- Applies retention to one stream as of `as_of`; returns how many events it deleted. Both rules delete a
-- prefix in pos order (created_at grows along pos, see mp.stream_events), so the kept events stay dense.
-- Internal so tests can inject the clock; mp.stream_trim is the public entry point.
create function mp._stream_trim(sid int, as_of timestamptz) returns bigint
language plpgsql as $$
declare
  s mp.streams;
  cut bigint := 0;
  young bigint;
  deleted bigint;
begin
  select * into s from mp.streams where id = sid;
  if s.retention_count is not null then
    cut := s.last_pos - s.retention_count;
  end if;
  if s.retention_seconds is not null then
    -- Walks the oldest events in pos order and stops at the first young one: cost ~ rows to delete.
    select e.pos into young from mp.stream_events e
     where e.stream_id = sid and e.created_at >= as_of - make_interval(secs => s.retention_seconds)
     order by e.pos limit 1;
    cut := greatest(cut, coalesce(young - 1, s.last_pos));
  end if;
  if cut <= 0 then
    return 0;
  end if;
  delete from mp.stream_events e where e.stream_id = sid and e.pos <= cut;
  get diagnostics deleted = row_count;
  update mp.streams set trimmed_at = as_of where id = sid;
  return deleted;
end $$;

-- Applies the stream's retention now and returns how many events it deleted. Publish trims too, but only
-- every 1000 events or minute, so this is for exact retention (tests, ops, cron).
create function mp.stream_trim(stream text) returns bigint
language plpgsql as $$
declare
  sid int;
begin
  -- The writer lock: a trim never interleaves with a publish to the same stream.
  select s.id into sid from mp.streams s where s.name = stream for no key update;
  if not found then
    perform mp._stream_unknown(stream);
  end if;
  return mp._stream_trim(sid, clock_timestamp());
end $$;

-- Appends `n` events (payloads are a JSON array) under the stream's writer lock; returns the new last_pos.
-- Shared by publish and publish_batch so both lock, trim and notify the same way.
create function mp._stream_append(stream text, payloads jsonb, key text) returns bigint
language plpgsql as $$
declare
  n int := jsonb_array_length(payloads);
  sid int;
  v_last bigint;
  ret_s int;
  ret_c bigint;
  trimmed timestamptz;
  v_at timestamptz;
begin
  -- The row lock taken here is the per-stream writer lock, held until this transaction ends.
  update mp.streams s set last_pos = s.last_pos + n where s.name = stream
  returning s.id, s.last_pos, s.retention_seconds, s.retention_count, s.trimmed_at
       into sid, v_last, ret_s, ret_c, trimmed;
  if not found then
    perform mp._stream_unknown(stream);
  end if;
  -- Taken after the lock so created_at never decreases along pos.
  v_at := clock_timestamp();
  insert into mp.stream_events (stream_id, pos, key, payload, created_at)
  select sid, v_last - n + p.ord, key, p.value, v_at
    from jsonb_array_elements(payloads) with ordinality as p(value, ord);
  -- Cheap amortised retention: at most once per 1000 positions or per minute; mp.stream_trim is exact.
  if (ret_s is not null or ret_c is not null)
     and (v_last / 1000 <> (v_last - n) / 1000 or trimmed < v_at - interval '1 minute') then
    perform mp._stream_trim(sid, v_at);
  end if;
  -- Only the pos goes in the payload: NOTIFY's 8000-byte limit can never fail a publish.
  perform pg_notify('mp_stream_' || stream, v_last::text);
  return v_last;
end $$;

-- Publishes one event and returns its pos. Waits while another open transaction has published to the
-- same stream (see README: writer lock).
create function mp.publish(stream text, payload jsonb, key text default null) returns bigint
language plpgsql as $$
begin
  if payload is null then
    raise exception 'payload for stream "%" is null', stream
      using errcode = 'MP008', hint = 'pass a JSON document; use ''null''::jsonb for a JSON null';
  end if;
  return mp._stream_append(stream, jsonb_build_array(payload), key);
end $$;

-- Publishes every element of the JSON array `payloads` in one insert, all with `key`; returns their
-- positions in order. One NOTIFY for the whole batch.
create function mp.publish_batch(stream text, payloads jsonb, key text default null) returns setof bigint
language plpgsql as $$
declare
  n int;
  v_last bigint;
begin
  if payloads is null or jsonb_typeof(payloads) <> 'array' then
    raise exception 'payloads for stream "%" must be a JSON array, got %', stream, coalesce(jsonb_typeof(payloads), 'null')
      using errcode = 'MP008', hint = 'pass a JSON array of events, e.g. ''[{"id": 1}, {"id": 2}]''';
  end if;
  n := jsonb_array_length(payloads);
  if n = 0 then
    -- Still report a typo'd stream name rather than silently doing nothing.
    if not exists (select 1 from mp.streams s where s.name = stream) then
      perform mp._stream_unknown(stream);
    end if;
    return;
  end if;
  v_last := mp._stream_append(stream, payloads, key);
  return query select generate_series(v_last - n + 1, v_last);
end $$;

-- Up to `max` events with pos > `after`, in pos order. Never skips: every event with pos <= a committed
-- last_pos is itself committed (see the writer lock), so the next read from the last pos seen is complete.
-- Positions are dense, so the events wanted lie in (after, after + max]: the range bound keeps the work at
-- <= max rows whatever plan the planner picks (with fresh statistics it chose a bitmap scan and a sort of
-- every later event, 40 ms for 1000 rows of a 200k stream). Stable: every statement sees one snapshot.
create function mp.read(stream text, after bigint, max int)
returns table (pos bigint, payload jsonb, key text, created_at timestamptz)
language plpgsql stable as $$
declare
  sid int;
  v_last bigint;
  v_next bigint;
begin
  perform mp._stream_check_positive('max', max, 'mp.read');
  if after is null or after < 0 then
    raise exception 'after must be a pos >= 0, got % (in mp.read)', coalesce(after::text, 'null')
      using errcode = 'MP004', hint = 'pass 0 to read from the start, or the last pos you read';
  end if;
  select s.id, s.last_pos into sid, v_last from mp.streams s where s.name = stream;
  if not found then
    perform mp._stream_unknown(stream);
  end if;
  return query
    select e.pos, e.payload, e.key, e.created_at from mp.stream_events e
     where e.stream_id = sid and e.pos > after and e.pos <= after + max
     order by e.pos;
  if not found and after < v_last then
    -- Retention deleted (after, after + max]: jump to the first kept event, once.
    select e.pos into v_next from mp.stream_events e
     where e.stream_id = sid and e.pos > after order by e.pos limit 1;
    if v_next is not null then
      return query
        select e.pos, e.payload, e.key, e.created_at from mp.stream_events e
         where e.stream_id = sid and e.pos >= v_next and e.pos < v_next + max
         order by e.pos;
    end if;
  end if;
end $$;

-- Creates a consumer group. `start`: 'earliest' (first kept event), 'latest' (only events published
-- after now), or a pos as text (deliver from that pos, inclusive). MP007 if the group exists.
create function mp.group_create(stream text, grp text, start text default 'earliest') returns void
language plpgsql as $$
declare
  sid int;
  v_last bigint;
  v_first bigint;
  v_next bigint;
begin
  perform mp._check_name('group', grp);
  select s.id, s.last_pos into sid, v_last from mp.streams s where s.name = stream;
  if not found then
    perform mp._stream_unknown(stream);
  end if;
  if start = 'earliest' then
    select e.pos into v_first from mp.stream_events e where e.stream_id = sid order by e.pos limit 1;
    v_next := coalesce(v_first, v_last + 1);
  elsif start = 'latest' then
    v_next := v_last + 1;
  elsif start ~ '^[0-9]{1,18}$' and start::bigint >= 1 then
    v_next := start::bigint;
  else
    raise exception 'invalid start "%" for group "%" on stream "%"', coalesce(start, 'null'), grp, stream
      using errcode = 'MP003', hint = 'start is ''earliest'', ''latest'' or a pos >= 1 as text, e.g. ''42''';
  end if;
  insert into mp.stream_groups (stream_id, grp, next_pos, committed)
  values (sid, grp, v_next, v_next - 1)
  on conflict do nothing;
  if not found then
    raise exception 'consumer group "%" already exists on stream "%"', grp, stream
      using errcode = 'MP007',
            hint = 'use it as it is, or drop the stream to start over; mp.group_stats shows its offsets';
  end if;
end $$;

-- committed = end of the contiguous processed prefix: everything before the oldest open lease, or before
-- next_pos when nothing is leased.
create function mp._group_recompute(sid int, g text) returns void
language sql as $$
  update mp.stream_groups gr
     set committed = coalesce((select min(l.from_pos) from mp.stream_leases l
                                where l.stream_id = sid and l.grp = g), gr.next_pos) - 1
   where gr.stream_id = sid and gr.grp = g;
$$;

-- Leases up to `max` events to `member` for `lease_seconds` and returns them. An expired lease is
-- redelivered first (the same range, at most `max` of it); else the next undelivered range, never past
-- the stream's committed last_pos. The group row lock serialises pollers of one group, which is what
-- keeps ranges disjoint; pollers of different groups and publishers do not wait on each other.
create function mp.poll(stream text, grp text, member text, max int, lease_seconds int default 30)
returns table (pos bigint, payload jsonb, key text, created_at timestamptz)
language plpgsql as $$
declare
  sid int;
  g mp.stream_groups;
  v_last bigint;
  v_first bigint;
  lo bigint;
  hi bigint;
  old_hi bigint;
  old_member text;
  old_until timestamptz;
  v_at timestamptz := clock_timestamp();
begin
  perform mp._stream_check_positive('max', max, 'mp.poll');
  perform mp._stream_check_positive('lease_seconds', lease_seconds, 'mp.poll');
  if member is null or member = '' or length(member) > 200 then
    raise exception 'invalid member name "%" (in mp.poll)', coalesce(member, 'null')
      using errcode = 'MP001', hint = 'pass a non-empty member name of at most 200 characters, e.g. host-pid';
  end if;
  select s.id into sid from mp.streams s where s.name = stream;
  if not found then
    perform mp._stream_unknown(stream);
  end if;
  select * into g from mp.stream_groups gr where gr.stream_id = sid and gr.grp = poll.grp for update;
  if not found then
    perform mp._stream_unknown_group(sid, stream, poll.grp);
  end if;
  -- Read after taking the group lock (a fresh snapshot): this is a committed last_pos, so every pos up
  -- to it is committed and visible to the statements below.
  select s.last_pos into v_last from mp.streams s where s.id = sid;

  -- Retention may have deleted events the group never finished: drop or clip those leases and skip
  -- next_pos forward, so a group that fell behind does not spin on empty leases.
  select e.pos into v_first from mp.stream_events e where e.stream_id = sid order by e.pos limit 1;
  v_first := coalesce(v_first, v_last + 1);
  if g.committed + 1 < v_first then
    delete from mp.stream_leases l where l.stream_id = sid and l.grp = g.grp and l.to_pos < v_first;
    update mp.stream_leases l set from_pos = v_first
     where l.stream_id = sid and l.grp = g.grp and l.from_pos < v_first;
    g.next_pos := greatest(g.next_pos, v_first);
    update mp.stream_groups gr set next_pos = g.next_pos where gr.stream_id = sid and gr.grp = g.grp;
  end if;

  select l.from_pos, l.to_pos, l.member, l.lease_until into lo, old_hi, old_member, old_until
    from mp.stream_leases l
   where l.stream_id = sid and l.grp = g.grp and l.lease_until <= v_at
   order by l.from_pos limit 1;
  if found then
    hi := least(old_hi, lo + max - 1);
    update mp.stream_leases l
       set to_pos = hi, member = poll.member, lease_until = v_at + make_interval(secs => lease_seconds)
     where l.stream_id = sid and l.grp = g.grp and l.from_pos = lo;
    if hi < old_hi then
      -- The rest of the expired range stays expired, for the next poller.
      insert into mp.stream_leases (stream_id, grp, from_pos, to_pos, member, lease_until)
      values (sid, g.grp, hi + 1, old_hi, old_member, old_until);
    end if;
  else
    lo := g.next_pos;
    hi := least(lo + max - 1, v_last);
    if hi < lo then
      perform mp._group_recompute(sid, g.grp);
      return;
    end if;
    insert into mp.stream_leases (stream_id, grp, from_pos, to_pos, member, lease_until)
    values (sid, g.grp, lo, hi, poll.member, v_at + make_interval(secs => lease_seconds));
    update mp.stream_groups gr set next_pos = hi + 1 where gr.stream_id = sid and gr.grp = g.grp;
  end if;
  perform mp._group_recompute(sid, g.grp);
  return query
    select e.pos, e.payload, e.key, e.created_at from mp.stream_events e
     where e.stream_id = sid and e.pos between lo and hi
     order by e.pos;
end $$;

-- Acknowledges the leased range holding `upto`, up to and including `upto`, and advances the group's
-- committed offset past every finished prefix. Committing a pos no lease holds is a no-op when it is at
-- or below what the group already finished or was redelivered and finished by another member.
create function mp.commit(stream text, grp text, upto bigint) returns void
language plpgsql as $$
declare
  sid int;
  g mp.stream_groups;
  lo bigint;
  hi bigint;
begin
  if upto is null or upto < 1 then
    raise exception 'upto must be a pos >= 1, got % (in mp.commit)', coalesce(upto::text, 'null')
      using errcode = 'MP004', hint = 'pass the last pos of the batch you processed';
  end if;
  select s.id into sid from mp.streams s where s.name = stream;
  if not found then
    perform mp._stream_unknown(stream);
  end if;
  select * into g from mp.stream_groups gr where gr.stream_id = sid and gr.grp = commit.grp for update;
  if not found then
    perform mp._stream_unknown_group(sid, stream, commit.grp);
  end if;
  if upto >= g.next_pos then
    raise exception 'cannot commit pos % on group "%" of stream "%": it was never delivered (next undelivered pos is %)',
        upto, g.grp, stream, g.next_pos
      using errcode = 'MP007', hint = 'commit only the last pos of a batch mp.poll returned';
  end if;
  select l.from_pos, l.to_pos into lo, hi from mp.stream_leases l
   where l.stream_id = sid and l.grp = g.grp and l.from_pos <= upto and l.to_pos >= upto;
  if not found then
    return;
  end if;
  if upto = hi then
    delete from mp.stream_leases l where l.stream_id = sid and l.grp = g.grp and l.from_pos = lo;
  else
    update mp.stream_leases l set from_pos = upto + 1
     where l.stream_id = sid and l.grp = g.grp and l.from_pos = lo;
  end if;
  perform mp._group_recompute(sid, g.grp);
end $$;

-- One row per stream (or just `stream`): what `mp stream ls` shows. `events` counts kept events, which
-- are dense (retention deletes prefixes), so it is last_pos - first_pos + 1 without a count(*).
create function mp.stream_stats(stream text default null)
returns table (name text, events bigint, first_pos bigint, last_pos bigint, retention jsonb, created_at timestamptz)
language plpgsql stable as $$
begin
  if stream is not null and not exists (select 1 from mp.streams s where s.name = stream) then
    perform mp._stream_unknown(stream);
  end if;
  return query
    select s.name, coalesce(s.last_pos - f.pos + 1, 0), f.pos, s.last_pos, s.options, s.created_at
      from mp.streams s
      left join lateral (select e.pos from mp.stream_events e where e.stream_id = s.id order by e.pos limit 1) f on true
     where stream is null or s.name = stream
     order by s.name;
end $$;

-- One row per consumer group (of every stream, or of `for_stream`): what `mp stream groups` shows. The
-- argument is not called `stream` because PostgreSQL forbids an argument named like an output column, and
-- callers (the CLI) read the `stream` column; call it positionally: mp.group_stats('orders').
create function mp.group_stats(for_stream text default null)
returns table (stream text, grp text, committed bigint, next_pos bigint, lag bigint, members text[],
               oldest_lease_until timestamptz)
language plpgsql stable as $$
begin
  if for_stream is not null and not exists (select 1 from mp.streams s where s.name = for_stream) then
    perform mp._stream_unknown(for_stream);
  end if;
  return query
    select s.name, g.grp, g.committed, g.next_pos, s.last_pos - g.committed,
           coalesce(l.members, '{}'), l.oldest
      from mp.stream_groups g
      join mp.streams s on s.id = g.stream_id
      left join lateral (select array_agg(distinct l.member order by l.member) as members, min(l.lease_until) as oldest
                           from mp.stream_leases l where l.stream_id = g.stream_id and l.grp = g.grp) l on true
     where for_stream is null or s.name = for_stream
     order by s.name, g.grp;
end $$;
