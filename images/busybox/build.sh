#!/usr/bin/env bash
# Builds a 2 MB image from the static busybox of the host (apt package busybox-static): /bin/busybox
# plus a symlink per applet (sh, sleep, httpd, echo, cat, wget, nc...). For test services that need a
# shell and little else; nothing is pulled.
#
# Usage: images/busybox/build.sh [IMAGE]   (default mp-lab/busybox:latest; called by .ci/lab.sh)
set -euo pipefail

IMAGE="${1:-mp-lab/busybox:latest}"
BUSYBOX="${MP_LAB_BUSYBOX:-/bin/busybox}"
RECIPE="${MP_LAB_RECIPE:-$(sha256sum "$0" | cut -c1-16)}"

[[ -x "$BUSYBOX" ]] || { echo "error: $BUSYBOX not found; install busybox-static" >&2; exit 1; }
# The dynamic busybox (package busybox) would need the host's libc inside the image.
if ldd "$BUSYBOX" >/dev/null 2>&1; then
  echo "error: $BUSYBOX is dynamically linked; install busybox-static instead of busybox" >&2
  exit 1
fi

root=$(mktemp -d /var/tmp/mp-lab-busybox.XXXXXX)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,etc,tmp,root,var/www}
chmod 1777 "$root/tmp"
cp "$BUSYBOX" "$root/bin/busybox"
for applet in $("$BUSYBOX" --list); do
  [[ "$applet" == busybox ]] || ln -s busybox "$root/bin/$applet"
done
# httpd, id and su look users up; containers run as root, httpd may drop to nobody.
cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat >"$root/etc/group" <<'GROUP'
root:x:0:
nogroup:x:65534:
GROUP

tar -C "$root" --numeric-owner --owner=0 --group=0 -c . |
  docker import \
    --change 'ENV PATH=/bin' \
    --change 'CMD ["sh"]' \
    --change "LABEL org.minipaas.lab.recipe=$RECIPE" \
    - "$IMAGE" >/dev/null
echo "built $IMAGE ($(docker image inspect -f '{{.Size}}' "$IMAGE") bytes)"
