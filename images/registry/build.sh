#!/usr/bin/env bash
# Builds registry:2 locally, since no registry is reachable: the lab's debian:bookworm plus Debian's
# `docker-registry` package (distribution 2.8.2 in bookworm). `mp deploy build` pushes to it and the
# lab's Swarm pulls from it (test/build); Compose files saying `image: registry:2` run unchanged here
# and wherever Docker Hub is reachable.
#
# Like the official image: the config at /etc/docker/registry/config.yml (listening on :5000, the
# filesystem driver under /var/lib/registry, a volume), `registry serve CONFIG` as the command, the
# REGISTRY_* environment overrides (REGISTRY_HTTP_ADDR, REGISTRY_AUTH_HTPASSWD_PATH, ...). Differences, on
# purpose: Debian's build of 2.8.2; the binary is also at /usr/bin/docker-registry; `htpasswd` (from
# apache2-utils) is included, so a test can write a bcrypt password file without another image
# (`docker run --rm --entrypoint htpasswd registry:2 -Bbn user secret`), as the official image did before 2.7.
#
# An image of that name without our label is someone's official image: it is never overwritten.
# Cached by content: the image carries the hash of this recipe; an unchanged hash skips the build (a
# warm run takes about 0.1 s).
#
# Usage: images/registry/build.sh [--force] [IMAGE]   (default registry:2; called by .ci/lab.sh)
set -euo pipefail

FORCE=0
if [[ "${1:-}" == --force ]]; then FORCE=1; shift; fi
IMAGE="${1:-registry:2}"
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
stage=$(mktemp -d /tmp/mp-lab-registry.XXXXXX)
log="$stage/build.log"
trap 'rm -rf "$stage"' EXIT
cat >"$stage/config.yml" <<'CONFIG'
# The official image's configuration: filesystem storage in the volume, HTTP on :5000.
version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
  delete:
    enabled: true
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
CONFIG
cat >"$stage/Dockerfile" <<'DOCKERFILE'
FROM debian:bookworm
# --no-install-recommends: no systemd units, no docs. The package's own config (under /etc/docker/registry)
# is replaced by the official image's.
RUN apt-get update && \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker-registry apache2-utils ca-certificates && \
    rm -rf /var/lib/apt/lists/* && \
    ln -s /usr/bin/docker-registry /bin/registry && \
    mkdir -p /var/lib/registry /etc/docker/registry && \
    docker-registry --version
COPY config.yml /etc/docker/registry/config.yml
VOLUME ["/var/lib/registry"]
EXPOSE 5000
ENTRYPOINT ["/usr/bin/docker-registry"]
CMD ["serve", "/etc/docker/registry/config.yml"]
DOCKERFILE
if ! docker build -q --label "$LABEL=$HASH" -t "$IMAGE" "$stage" >"$log" 2>&1; then
  cat "$log" >&2
  echo "error: docker build of $IMAGE failed" >&2
  exit 1
fi
t1=$(date +%s%3N)
[[ -n "$old" && "$old" != "$(docker image inspect -f '{{.Id}}' "$IMAGE")" ]] && docker image rm "$old" >/dev/null 2>&1 || true
size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
echo "built $IMAGE ($(docker run --rm "$IMAGE" --version | awk '{print $NF}'), $((size / 1000000)) MB, recipe $HASH) in $(((t1 - t0) / 1000)).$((((t1 - t0) % 1000) / 100)) s"
