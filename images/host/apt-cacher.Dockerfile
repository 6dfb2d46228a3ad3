# apt-cacher-ng for the provisioning lab: lab hosts fetch Debian packages through it, so repeated runs
# do not download docker.io and its dependencies again (its cache is the volume mp-lab-apt-cache).
FROM debian:bookworm
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends apt-cacher-ng \
 && rm -rf /var/lib/apt/lists/*
EXPOSE 3142
CMD ["sh", "-c", "mkdir -p /var/run/apt-cacher-ng && chown apt-cacher-ng /var/run/apt-cacher-ng /var/cache/apt-cacher-ng && exec su -s /bin/sh apt-cacher-ng -c 'exec /usr/sbin/apt-cacher-ng -c /etc/apt-cacher-ng ForeGround=1'"]
