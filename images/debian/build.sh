#!/usr/bin/env bash
# Builds a Debian bookworm base image with debootstrap --variant=minbase (about 30 s plus download),
# since no registry is reachable. Dockerfiles `FROM debian:bookworm` build against it unchanged
# (.ci/lab.sh also tags it debian:bookworm) and can `apt-get install` from Debian's mirror.
#
# Usage: images/debian/build.sh [IMAGE]   (default mp-lab/debian:bookworm; called by .ci/lab.sh)
# Env:   MP_LAB_DEBIAN_MIRROR (default http://deb.debian.org/debian), the only address contacted.
set -euo pipefail

IMAGE="${1:-mp-lab/debian:bookworm}"
MIRROR="${MP_LAB_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY="${MIRROR%/debian}/debian-security"
RECIPE="${MP_LAB_RECIPE:-$(sha256sum "$0" | cut -c1-16)}"

command -v debootstrap >/dev/null || { echo "error: debootstrap not found; apt-get install debootstrap" >&2; exit 1; }

root=$(mktemp -d /var/tmp/mp-lab-debian.XXXXXX)
# debootstrap mounts /proc and /sys inside the target; never delete through a mount left behind.
cleanup() {
  grep -o " $root/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf --one-file-system "$root"
}
trap cleanup EXIT
debootstrap --variant=minbase bookworm "$root" "$MIRROR" >&2

# Same sources as the official image, so `apt-get update` in a Dockerfile sees updates and security fixes.
cat >"$root/etc/apt/sources.list" <<SOURCES
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb $SECURITY bookworm-security main
SOURCES
# Keep the image small, as the official one does: no downloaded .debs, no package lists.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log
# Pseudo filesystems belong to the container runtime, not the image.
if grep -q " $root/" /proc/mounts; then
  echo "error: something is still mounted under $root" >&2
  exit 1
fi
rm -rf "${root:?}"/proc/* "${root:?}"/sys/* "${root:?}"/dev/*

tar -C "$root" --numeric-owner -c . |
  docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' \
    --change "LABEL org.minipaas.lab.recipe=$RECIPE" \
    - "$IMAGE" >/dev/null
echo "built $IMAGE ($(docker image inspect -f '{{.Size}}' "$IMAGE") bytes)"
