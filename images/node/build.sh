#!/usr/bin/env bash
# Builds node:<major>-bookworm-slim (node:20-bookworm-slim on this machine kind) locally, since no
# registry is reachable: the lab's debian:bookworm plus the Node.js binary that runs this script
# (process.execPath; it runs in bookworm, same glibc) and the npm package shipped with it (npm and npx
# in /usr/local/bin, as in the official image). Dockerfiles saying `FROM node:20-bookworm-slim` then
# build unchanged here and wherever Docker Hub is reachable.
#
# Differences from the official image, on purpose: no yarn, no corepack, no docker-entrypoint.sh (it
# only prepends `node` when the first argument is a flag). Like it: node and npm in /usr/local/bin, a
# `node` user (uid and gid 1000, home /home/node), NODE_VERSION set, CMD ["node"].
#
# An image of that name without our label is someone's official image: it is never overwritten.
# Cached by content: the image carries the hash of this recipe, the Node.js binary's version and the
# npm version; an unchanged hash skips the build (a warm run takes about 0.2 s).
#
# Usage: images/node/build.sh [--force] [IMAGE]   (default node:<major>-bookworm-slim; called by .ci/lab.sh)
# Env:   NODE (default: node on PATH)
set -euo pipefail

FORCE=0
if [[ "${1:-}" == --force ]]; then FORCE=1; shift; fi
NODE_BIN=$("${NODE:-node}" -p 'process.execPath')
NODE_VERSION=$("$NODE_BIN" -p 'process.versions.node')
MAJOR=${NODE_VERSION%%.*}
IMAGE="${1:-node:$MAJOR-bookworm-slim}"
NPM_DIR="$(dirname "$(dirname "$NODE_BIN")")/lib/node_modules/npm"
LABEL=org.minipaas.lab.recipe

docker image inspect debian:bookworm >/dev/null 2>&1 ||
  { echo "error: image debian:bookworm is missing; run .ci/lab.sh (it builds and tags it)" >&2; exit 1; }
npm_version=none
if [[ -f "$NPM_DIR/package.json" ]]; then
  npm_version=$("$NODE_BIN" -p "require('$NPM_DIR/package.json').version")
else
  # Still a usable image for `node app.js`; only `RUN npm ...` steps would fail, and say so.
  echo "warning: no npm package at $NPM_DIR; building $IMAGE without npm" >&2
fi

# The recipe: this script, the binary's version and build (a different build of the same version would
# be a different file, hence its size too) and npm's version. Hashing the 95 MB binary would cost 0.3 s.
HASH=$({
  sha256sum "$0" | cut -d' ' -f1
  echo "$NODE_VERSION $(stat -c %s "$NODE_BIN") npm $npm_version"
} | sha256sum | cut -c1-16)

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

# The image this build replaces, removed afterwards so rebuilds leave no dangling 200 MB images behind.
old=$(docker image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)
t0=$(date +%s%3N)
stage=$(mktemp -d /tmp/mp-lab-node.XXXXXX)
log="$stage/build.log"
trap 'rm -rf "$stage"' EXIT
cat >"$stage/Dockerfile" <<DOCKERFILE
FROM debian:bookworm
# The same user as the official image, so Dockerfiles saying USER node work.
RUN groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node
ENV NODE_VERSION=$NODE_VERSION
COPY node /usr/local/bin/node
COPY npm/ /usr/local/lib/node_modules/npm/
RUN if [ -f /usr/local/lib/node_modules/npm/bin/npm-cli.js ]; then \\
      ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm && \\
      ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx; \\
    fi && node --version
CMD ["node"]
DOCKERFILE
mkdir -p "$stage/npm"
# The context is streamed as one tar (the binary and npm are not copied to disk first); node and npm
# get owner root, as the official image's files have.
npm_source=("-C" "$stage" npm)
[[ -d "$NPM_DIR" ]] && npm_source=("-C" "$(dirname "$NPM_DIR")" npm)
context() {
  tar -c --owner=0 --group=0 \
    -C "$stage" Dockerfile \
    -C "$(dirname "$NODE_BIN")" --transform "s,^$(basename "$NODE_BIN")\$,node," "$(basename "$NODE_BIN")" \
    "${npm_source[@]}"
}
if ! context | docker build -q --label "$LABEL=$HASH" -t "$IMAGE" - >"$log" 2>&1; then
  cat "$log" >&2
  echo "error: docker build of $IMAGE failed" >&2
  exit 1
fi
t1=$(date +%s%3N)
# Refused (and harmless) when another tag or a container still uses it.
[[ -n "$old" && "$old" != "$(docker image inspect -f '{{.Id}}' "$IMAGE")" ]] && docker image rm "$old" >/dev/null 2>&1 || true
size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
echo "built $IMAGE (node $NODE_VERSION, npm $npm_version, $((size / 1000000)) MB, recipe $HASH) in $(((t1 - t0) / 1000)).$((((t1 - t0) % 1000) / 100)) s"
