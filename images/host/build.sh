#!/usr/bin/env bash
# Builds the provisioning lab's images, each skipped when an image with the same recipe hash exists:
#   mp-lab/host:bookworm        a bare Debian 12 host with sshd (Dockerfile, entrypoint.sh)
#   mp-lab/apt-cacher:bookworm  apt-cacher-ng, so repeated runs fetch Debian packages once
# Both FROM debian:bookworm, the lab's debootstrap image (images/debian/build.sh; .ci/lab.sh tags it).
#
# Usage: images/host/build.sh [--force]     Env: MP_LAB_HOST_IMAGE, MP_LAB_APT_CACHER_IMAGE
set -euo pipefail
cd "$(dirname "$0")"
FORCE=0
[[ "${1:-}" == --force ]] && FORCE=1
docker image inspect debian:bookworm >/dev/null 2>&1 ||
  { echo "error: image debian:bookworm is missing; run .ci/lab.sh (it builds and tags it)" >&2; exit 1; }
base=$(docker image inspect -f '{{.Id}}' debian:bookworm)

build() { # image dockerfile files...
  local image=$1 dockerfile=$2; shift 2
  local hash
  hash=$( { echo "$base"; sha256sum build.sh "$dockerfile" "$@"; } | sha256sum | cut -c1-16)
  local current
  current=$(docker image inspect -f '{{index .Config.Labels "org.minipaas.build-hash"}}' "$image" 2>/dev/null || true)
  if ((FORCE == 0)) && [[ "$current" == "$hash" ]]; then
    echo "$image is up to date (inputs $hash)"
    return
  fi
  local t0=$SECONDS log
  log=$(mktemp)
  if ! docker build -q --label "org.minipaas.build-hash=$hash" -f "$dockerfile" -t "$image" . >"$log" 2>&1; then
    cat "$log" >&2; rm -f "$log"
    echo "error: docker build of $image failed" >&2
    exit 1
  fi
  rm -f "$log"
  echo "built $image (inputs $hash) in $((SECONDS - t0)) s"
}
build "${MP_LAB_HOST_IMAGE:-mp-lab/host:bookworm}" Dockerfile entrypoint.sh
build "${MP_LAB_APT_CACHER_IMAGE:-mp-lab/apt-cacher:bookworm}" apt-cacher.Dockerfile
