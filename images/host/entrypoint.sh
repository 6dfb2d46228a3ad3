#!/bin/sh
# Starts a lab host: its own SSH host keys, the test's public key, the lab's apt proxy, then sshd.
set -eu
mkdir -p /run/sshd
ssh-keygen -A >/dev/null
if [ -n "${AUTHORIZED_KEY:-}" ]; then
  printf '%s\n' "$AUTHORIZED_KEY" >/root/.ssh/authorized_keys
  chmod 600 /root/.ssh/authorized_keys
fi
if [ -n "${APT_PROXY:-}" ]; then
  printf 'Acquire::http::Proxy "%s";\n' "$APT_PROXY" >/etc/apt/apt.conf.d/01lab-proxy
fi
exec /usr/sbin/sshd -D -e
