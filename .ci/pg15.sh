#!/usr/bin/env bash
# The database suites again, on PostgreSQL 15: the oldest release MiniPaaS supports, and the one whose
# binaries the lab machine carries (Debian's postgresql-15, in /usr/lib/postgresql/15/bin). `npm test`
# runs on the embedded PostgreSQL 18; SQL that only 16+ accepts (hex literals) or that behaves
# differently before 18 (the cost of a disabled plan node) would pass there and break here.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=/usr/lib/postgresql/15/bin
PORT=${MP_PG15_PORT:-54415}
DIR=$(mktemp -d /tmp/mp-pg15.XXXXXX)
# initdb refuses to run as root: the cluster belongs to the postgres user the Debian package created.
chown postgres "$DIR"
as_postgres() { su postgres -s /bin/sh -c "$1"; }
as_postgres "$BIN/initdb -D $DIR/data -U postgres --auth=trust" >/dev/null
as_postgres "$BIN/pg_ctl -D $DIR/data -o '-p $PORT -k $DIR -c fsync=off -c max_connections=200' -l $DIR/server.log -w start" >/dev/null
trap 'as_postgres "$BIN/pg_ctl -D $DIR/data -m immediate stop" >/dev/null 2>&1; rm -rf "$DIR"' EXIT

# The secret suites prove a value rests nowhere in plaintext; here Debian's pg_dump 15 can read the
# server, so MP_TEST_PG_DUMP=require makes a full dump part of that search instead of an optional extra.
MP_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$PORT/postgres" MP_TEST_PG_DUMP=require npx vitest run \
  test/sql test/cli/migrate.test.ts test/cli/queue.test.ts test/cli/stream.test.ts test/agent/maintenance.test.ts \
  test/cli/secret.test.ts test/cli/secret-lifecycle.test.ts test/build/registry-auth.test.ts
