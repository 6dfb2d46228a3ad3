#!/bin/sh
# Entrypoint of the agent image: `mp` with the database URL read from a file (a Docker secret mounted
# at /run/secrets/...), so the URL never appears in the service spec, `docker inspect` or `docker
# service inspect`. With MP_AGENT_NAME set (the service sets it to {{.Node.Hostname}}), `mp agent`
# registers under that name.
#
#   DATABASE_URL_FILE=/run/secrets/mp_database_url  MP_AGENT_NAME=node-1   ->  mp agent --name node-1
#   docker run --rm -e DATABASE_URL=... mp/agent migrate                   ->  mp migrate
set -eu

if [ -n "${DATABASE_URL_FILE:-}" ]; then
  if [ ! -r "$DATABASE_URL_FILE" ]; then
    echo "error: DATABASE_URL_FILE names $DATABASE_URL_FILE, which is not readable" >&2
    echo "hint: mount the secret (mp agent install does) or pass DATABASE_URL" >&2
    exit 78
  fi
  # $(...) drops the trailing newline an `echo url | docker secret create` leaves.
  DATABASE_URL=$(cat "$DATABASE_URL_FILE")
  export DATABASE_URL
  unset DATABASE_URL_FILE
fi

if [ "${1:-}" = agent ] && [ -n "${MP_AGENT_NAME:-}" ]; then
  shift
  set -- agent --name "$MP_AGENT_NAME" "$@"
fi

exec /usr/local/bin/node /opt/minipaas/bin/mp.mjs "$@"
