-- Shared helpers every MiniPaaS SQL file uses: name and option validation with custom SQLSTATEs.
-- Why: names become NOTIFY channels and CLI arguments, and options are jsonb so they can grow; both must
-- be checked in SQL so `psql` users get the same clear errors as the CLI.

create schema if not exists mp;

-- Raises MP001 unless `name` is a valid queue/stream/group name. `kind` only goes into the message.
create function mp._check_name(kind text, name text) returns void
language plpgsql immutable as $$
begin
  if name is null or name !~ '^[a-z_][a-z0-9_]*$' or length(name) > 48 then
    raise exception 'invalid % name: "%"', kind, coalesce(name, 'null')
      using errcode = 'MP001',
            hint = 'names match ^[a-z_][a-z0-9_]*$ and are at most 48 characters, e.g. "emails" or "order_events"';
  end if;
end $$;

-- Raises MP003 when `options` is not a JSON object or has a key outside `allowed`. `context` names the
-- function for the message, e.g. 'mp.enqueue'.
create function mp._check_options(options jsonb, allowed text[], context text) returns void
language plpgsql immutable as $$
declare
  bad text;
begin
  if options is null then
    return;
  end if;
  if jsonb_typeof(options) <> 'object' then
    raise exception '% options must be a JSON object, got %', context, jsonb_typeof(options)
      using errcode = 'MP003', hint = 'pass options like ''{"max_attempts": 5}''';
  end if;
  select k into bad from jsonb_object_keys(options) k where k <> all (allowed) order by k limit 1;
  if bad is not null then
    raise exception 'unknown option "%" for %', bad, context
      using errcode = 'MP003', hint = 'known options: ' || array_to_string(allowed, ', ');
  end if;
end $$;
