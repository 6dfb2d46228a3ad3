#!/usr/bin/env bash
# Builds caddy:2 locally, since no registry is reachable: the lab's debian:bookworm plus Debian's
# `caddy` package (2.6.2 in bookworm). Compose files saying `image: caddy:2` then deploy unchanged here
# and wherever Docker Hub is reachable (the official image has the same binary path, config folder
# /etc/caddy, data folder /data and ports).
#
# Like the official image: /usr/bin/caddy, XDG_CONFIG_HOME=/config, XDG_DATA_HOME=/data (certificates
# and the internal CA live there: mount a volume), CMD `caddy run --config /etc/caddy/Caddyfile
# --adapter caddyfile`, ports 80, 443 and 2019 exposed. Differences, on purpose: Debian's build of 2.6.2
# rather than the latest 2.x. Like the official (Alpine) image it has `wget`, which MiniPaaS uses inside the container to reach the admin API on localhost:2019 (docs/routing.md).
#
# An image of that name without our label is someone's official image: it is never overwritten.
# Cached by content: the image carries the hash of this recipe; an unchanged hash skips the build (a
# warm run takes about 0.1 s).
#
# Usage: images/caddy/build.sh [--force] [IMAGE]   (default caddy:2; called by .ci/lab.sh)
set -euo pipefail

FORCE=0
if [[ "${1:-}" == --force ]]; then FORCE=1; shift; fi
IMAGE="${1:-caddy:2}"
LABEL=org.minipaas.lab.recipe

docker image inspect debian:bookworm >/dev/null 2>&1 ||
  { echo "error: image debian:bookworm is missing; run .ci/lab.sh (it builds and tags it)" >&2; exit 1; }
HASH=$(sha256sum "$0" | cut -c1-16)

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  current=$(docker image inspect -f "{{index .Config.Labels \"$LABEL\"}}" "$IMAGE")
  if [[ -z "$current" ]]; then
    echo "$IMAGE exists and was not built by the lab (no $LABEL label): left as it is"
    exit 0
  fi
  if ((FORCE == 0)) && [[ "$current" == "$HASH" ]]; then
    echo "$IMAGE is up to date (recipe $HASH)"
    exit 0
  fi
fi

old=$(docker image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)
t0=$(date +%s%3N)
stage=$(mktemp -d /tmp/mp-lab-caddy.XXXXXX)
log="$stage/build.log"
trap 'rm -rf "$stage"' EXIT
cat >"$stage/Dockerfile" <<'DOCKERFILE'
FROM debian:bookworm
# --no-install-recommends: no systemd units, no docs. The package's default Caddyfile serves a
# welcome page on :80, as the official image's does.
RUN apt-get update && \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends caddy ca-certificates wget && \
    rm -rf /var/lib/apt/lists/* && \
    mkdir -p /config/caddy /data/caddy /etc/caddy /srv && \
    caddy version
ENV XDG_CONFIG_HOME=/config XDG_DATA_HOME=/data
EXPOSE 80 443 443/udp 2019
WORKDIR /srv
CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]
DOCKERFILE
if ! docker build -q --label "$LABEL=$HASH" -t "$IMAGE" "$stage" >"$log" 2>&1; then
  cat "$log" >&2
  echo "error: docker build of $IMAGE failed" >&2
  exit 1
fi
t1=$(date +%s%3N)
[[ -n "$old" && "$old" != "$(docker image inspect -f '{{.Id}}' "$IMAGE")" ]] && docker image rm "$old" >/dev/null 2>&1 || true
size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
echo "built $IMAGE ($(docker run --rm "$IMAGE" caddy version | cut -d' ' -f1), $((size / 1000000)) MB, recipe $HASH) in $(((t1 - t0) / 1000)).$((((t1 - t0) % 1000) / 100)) s"
