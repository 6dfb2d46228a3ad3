-- Lease extension for consumer groups: mp.group_extend. Until now a member had to choose a lease longer
-- than its slowest handler, or have the batch delivered again to another member while it was still
-- working on it (queues have mp.extend_lease for the same reason). A member that extends every third of
-- its lease keeps a short lease, so the events of a member that dies still come back quickly.

-- Pushes the lease of the ranges `member` holds in group `grp` to now + `seconds` and returns how many
-- it extended. 0 means the member holds nothing (any more): its lease lapsed and a poll gave the range to
-- another member, or it was committed. With `pos`, only the range holding `pos` is extended: a member
-- may still hold an older range whose handler failed, and that one must expire to be delivered again.
-- A range whose lease expired but that no poll has taken yet is still the member's and is extended too:
-- nobody else has those events, and the member is evidently still working on them.
create function mp.group_extend(stream text, grp text, member text, seconds int, pos bigint default null)
returns int
language plpgsql as $$
declare
  sid int;
  n int;
begin
  perform mp._stream_check_positive('seconds', seconds, 'mp.group_extend');
  if member is null or member = '' or length(member) > 200 then
    raise exception 'invalid member name "%" (in mp.group_extend)', coalesce(member, 'null')
      using errcode = 'MP001', hint = 'pass the member name the events were polled with';
  end if;
  if pos is not null and pos < 1 then
    raise exception 'pos must be a pos >= 1, got % (in mp.group_extend)', pos
      using errcode = 'MP004', hint = 'pass a pos of the batch mp.poll returned, or null for every range the member holds';
  end if;
  select s.id into sid from mp.streams s where s.name = stream;
  if not found then
    perform mp._stream_unknown(stream);
  end if;
  -- The group row lock mp.poll takes. Without it, a poll that read a range as expired could hand it to
  -- another member right after this extended it, and both would hold it. With it, either the poll came
  -- first (the member no longer matches: 0) or it waits and then sees the new lease.
  perform 1 from mp.stream_groups gr where gr.stream_id = sid and gr.grp = group_extend.grp for update;
  if not found then
    perform mp._stream_unknown_group(sid, stream, group_extend.grp);
  end if;
  -- mp._now() so tests can set mp.now. Otherwise it is the transaction start, which for a call in its
  -- own transaction is when the call began, as mp.poll's clock; inside a long transaction it is earlier,
  -- so the lease ends early rather than late.
  update mp.stream_leases l
     set lease_until = mp._now() + make_interval(secs => seconds)
   where l.stream_id = sid and l.grp = group_extend.grp and l.member = group_extend.member
     and (group_extend.pos is null or group_extend.pos between l.from_pos and l.to_pos);
  get diagnostics n = row_count;
  return n;
end $$;
