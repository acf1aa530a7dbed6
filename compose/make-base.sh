#!/usr/bin/env bash
# Builds the Perseus base image (Debian bookworm with redis-server, iptables, iproute2, etcd)
# the way the machine allows: from the public debian:bookworm-slim image when a registry
# answers, else with debootstrap + `docker import` from Debian's package archive alone.
set -euo pipefail

IMAGE="${BASE_IMAGE:-perseus-base:bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PACKAGES="redis-server,iptables,iproute2,procps,curl,ca-certificates,etcd-server,etcd-client"
here="$(cd "$(dirname "$0")" && pwd)"

if [ "${FORCE:-0}" != 1 ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "base image $IMAGE already present"
  exit 0
fi

if [ "${BASE_FROM:-auto}" != debootstrap ] && \
   { docker image inspect debian:bookworm-slim >/dev/null 2>&1 || \
     timeout 60 docker pull debian:bookworm-slim >/dev/null 2>&1; }; then
  echo "building $IMAGE from debian:bookworm-slim"
  docker build -t "$IMAGE" -f "$here/base.Dockerfile" "$here"
  exit 0
fi

echo "no image registry answers: building $IMAGE with debootstrap from $MIRROR"
command -v debootstrap >/dev/null || { echo "debootstrap is not installed (apt-get install -y debootstrap)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "debootstrap needs root: run 'sudo make base'" >&2; exit 1; }
rootfs="$(mktemp -d /tmp/perseus-rootfs.XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT
debootstrap --variant=minbase --include="$PACKAGES" bookworm "$rootfs" "$MIRROR"
# Keep the image small and make it behave like the slim image.
chroot "$rootfs" apt-get clean
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/*
tar -C "$rootfs" -c . | docker import -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' -c 'CMD ["/bin/bash"]' - "$IMAGE"
echo "built $IMAGE"
