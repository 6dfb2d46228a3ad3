#!/usr/bin/env bash
# The Docker lab: a Docker engine, a single-node Swarm on 127.0.0.1 and the locally built images the
# tests use. No container registry is reachable from the lab, so every image is built here: the bases
# from Debian's packages (debootstrap, busybox-static), the rest FROM them. Idempotent: every step checks
# first and does nothing when already done, so a warm run takes about a second.
#
# Usage:
#   . .ci/lab.sh      sets the lab up, then exports its variables into the calling shell (CI does this)
#   .ci/lab.sh        sets the lab up and prints the variables as `export` lines
#
# Network: only Debian's mirror (apt, debootstrap; MP_LAB_DEBIAN_MIRROR, default deb.debian.org) and
# loopback. apt runs with its own source list and list folder, so the machine's other apt sources
# (vendor repositories) are never contacted and its own apt state is left alone.

# Sourced: run the set-up in a child bash (its `set -e`, traps and `cd` must not leak into the caller),
# then export the lab's variables here.
if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
  bash "${BASH_SOURCE[0]}" || return $?
  export MP_REQUIRE_DOCKER=1
  export DOCKER_HOST="${DOCKER_HOST:-unix:///var/run/docker.sock}"
  export TESTCONTAINERS_RYUK_DISABLED=true
  export MP_LAB_BUSYBOX_IMAGE=mp-lab/busybox:latest
  export MP_LAB_DEBIAN_IMAGE=mp-lab/debian:bookworm
  return 0
fi

set -euo pipefail
cd "$(dirname "$0")/.."

MIRROR="${MP_LAB_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
export MP_LAB_DEBIAN_MIRROR="$MIRROR"
DOCKERD_DEADLINE_S="${MP_LAB_DOCKERD_DEADLINE_S:-60}"

now_ms() { date +%s%3N; }
T0=$(now_ms)
STEP_T=$T0
log() { echo "lab: $*" >&2; }
# Ends a step: prints what was done and how long it took.
done_step() {
  local t
  t=$(now_ms)
  log "$(printf '%-40s %6.1fs' "$1" "$(((t - STEP_T)))e-3")"
  STEP_T=$t
}
die() {
  log "error: $1"
  [[ -n "${2:-}" ]] && log "hint: $2"
  exit 1
}

# Root only for what needs it: a warm lab is usable by any member of the docker group.
need_root() {
  [[ $(id -u) -eq 0 ]] || die "$1 needs root" "run as root, e.g. sudo .ci/lab.sh"
}

# --- 1. packages -------------------------------------------------------------------------------------
# Only what is missing. A dockerd from another source (docker-ce) counts: installing docker.io over it
# would conflict.
missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v docker >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
[[ "$(dpkg-query -W -f='${Status}' busybox-static 2>/dev/null)" == "install ok installed" ]] || missing+=(busybox-static)
if ((${#missing[@]})); then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
  security="${MIRROR%/debian}/debian-security"
  aptdir=/var/lib/mp-lab/apt
  mkdir -p "$aptdir/lists/partial" "$aptdir/sources.list.d"
  cat >"$aptdir/sources.list" <<EOF
deb $MIRROR $codename main
deb $MIRROR $codename-updates main
deb $security $codename-security main
EOF
  apt_opts=(
    -o "Dir::Etc::SourceList=$aptdir/sources.list"
    -o "Dir::Etc::SourceParts=$aptdir/sources.list.d"
    -o "Dir::State::Lists=$aptdir/lists"
  )
  need_root "installing ${missing[*]}"
  log "installing ${missing[*]} from $MIRROR (log: /var/log/mp-lab-apt.log)"
  if ! { apt-get "${apt_opts[@]}" update &&
    DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install -y --no-install-recommends "${missing[@]}"; } \
    >/var/log/mp-lab-apt.log 2>&1; then
    tail -n 20 /var/log/mp-lab-apt.log >&2
    die "could not install ${missing[*]}" "see /var/log/mp-lab-apt.log; MP_LAB_DEBIAN_MIRROR picks another Debian mirror"
  fi
  done_step "install ${missing[*]}"
else
  done_step "packages present"
fi

# --- 2. engine ---------------------------------------------------------------------------------------
engine_answers() { timeout 10 docker info >/dev/null 2>&1; }
if engine_answers; then
  done_step "engine answers"
else
  # A dockerd that is still starting (or one systemd started on install) is waited for, not doubled.
  if ! pidof dockerd >/dev/null 2>&1; then
    need_root "starting dockerd"
    log "starting dockerd (log: /var/log/dockerd.log)"
    # setsid: the engine must outlive this script and the process group of whoever ran it.
    setsid dockerd >/var/log/dockerd.log 2>&1 </dev/null &
  fi
  deadline=$(($(date +%s) + DOCKERD_DEADLINE_S))
  until engine_answers; do
    if (($(date +%s) > deadline)); then
      tail -n 20 /var/log/dockerd.log >&2 || true
      die "the Docker engine did not answer within ${DOCKERD_DEADLINE_S}s" "see /var/log/dockerd.log"
    fi
    sleep 0.5
  done
  done_step "engine started"
fi

# --- 3. swarm ----------------------------------------------------------------------------------------
swarm_state=$(docker info --format '{{.Swarm.LocalNodeState}}')
case "$swarm_state" in
  active)
    [[ "$(docker info --format '{{.Swarm.ControlAvailable}}')" == "true" ]] ||
      die "this engine is in a swarm but is not a manager" "run the lab on a manager, or 'docker swarm leave --force' first"
    done_step "swarm manager already"
    ;;
  inactive)
    docker swarm init --advertise-addr 127.0.0.1 >/dev/null
    done_step "swarm init"
    ;;
  *)
    die "the swarm is in state '$swarm_state'" "inspect with 'docker info'; 'docker swarm leave --force' resets it"
    ;;
esac

# --- 4. images ---------------------------------------------------------------------------------------
# Each image carries the hash of the script that built it, so a changed recipe rebuilds and an
# unchanged one is reused.
recipe() { sha256sum "$1" | cut -c1-16; }
image_recipe() { docker image inspect -f '{{index .Config.Labels "org.minipaas.lab.recipe"}}' "$1" 2>/dev/null || true; }
ensure_image() {
  local image=$1 script=$2 want
  want=$(recipe "$script")
  if [[ "$(image_recipe "$image")" == "$want" ]]; then
    done_step "image $image present"
  else
    log "building $image"
    MP_LAB_RECIPE="$want" "$script" "$image" >&2
    done_step "image $image built"
  fi
}
ensure_image mp-lab/busybox:latest images/busybox/build.sh
ensure_image mp-lab/debian:bookworm images/debian/build.sh
# `FROM debian:bookworm` Dockerfiles build unchanged against our base; an official image someone pulled
# is never overwritten.
if ! docker image inspect debian:bookworm >/dev/null 2>&1; then
  docker tag mp-lab/debian:bookworm debian:bookworm
  done_step "tag debian:bookworm"
fi
# node:20-bookworm-slim from that base and this machine's Node.js and npm, so `FROM node:20-bookworm-slim`
# Dockerfiles (examples/hello) build unchanged. The script checks its own recipe (which includes the
# Node.js version) and leaves an official image someone pulled alone.
images/node/build.sh >&2
done_step "image node:$(node -p 'process.versions.node.split(".")[0]')-bookworm-slim"

# caddy:2 from that base and Debian's caddy package, for the routing suite (test/routing) and
# environments with routes: the ingress MiniPaaS adds runs `image: caddy:2`. Cached by recipe; an
# official image someone pulled is left alone.
images/caddy/build.sh >&2
done_step "image caddy:2"

# registry:2 from that base and Debian's docker-registry package, for `mp deploy build` pushes and the
# Swarm pulling them (test/build runs it on 127.0.0.1, which Docker reaches without TLS). Cached by
# recipe; an official image someone pulled is left alone.
images/registry/build.sh >&2
done_step "image registry:2"

# --- 5. the agent image -----------------------------------------------------------------------------
# mp/agent (images/agent/build.sh) is this checkout's sources on Node.js: it needs node_modules, and
# the script itself skips the build when its inputs (sources, lock file, Node.js) are unchanged.
if [[ -d node_modules ]]; then
  images/agent/build.sh >&2
  done_step "image mp/agent"
else
  log "skipping image mp/agent: no node_modules yet (run npm ci, then this script again)"
fi

log "$(printf 'ready in %.1fs' "$(($(now_ms) - T0))e-3")"
cat <<EOF
export MP_REQUIRE_DOCKER=1
export DOCKER_HOST=${DOCKER_HOST:-unix:///var/run/docker.sock}
export TESTCONTAINERS_RYUK_DISABLED=true
export MP_LAB_BUSYBOX_IMAGE=mp-lab/busybox:latest
export MP_LAB_DEBIAN_IMAGE=mp-lab/debian:bookworm
EOF
