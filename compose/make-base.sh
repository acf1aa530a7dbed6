#!/usr/bin/env bash
# Builds the Perseus base image (Debian bookworm with redis-server, iptables, iproute2, etcd)
# the way the machine allows: from the public debian:bookworm-slim image when a registry
# answers, else with debootstrap + `docker import` from a Debian mirror alone — DEBIAN_MIRROR,
# or the mirror this machine's apt already uses (/etc/apt/sources.list, sources.list.d/*.list,
# deb822 sources.list.d/*.sources). debootstrap is installed with apt when missing (as root).
# FORCE=1 rebuilds an existing image; BASE_FROM=debootstrap skips the registry.
set -euo pipefail

IMAGE="${BASE_IMAGE:-perseus-base:bookworm}"
SUITE=bookworm
PACKAGES="redis-server,iptables,iproute2,procps,curl,ca-certificates,etcd-server,etcd-client"
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/../scripts/lib.sh"

# debian_mirror [SOURCE FILES...]: DEBIAN_MIRROR when set, else the URI of the first `deb`
# source whose suites include $SUITE, else (on a Debian machine) of the first whose suite is a
# plain codename (not -security/-updates). Prints nothing when there is none.
debian_mirror() {
  if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
  local files=("$@") f debian=0
  [ ${#files[@]} -gt 0 ] ||
    files=(/etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources)
  grep -qsx 'ID=debian' "${OS_RELEASE:-/etc/os-release}" && debian=1
  for f in "${files[@]}"; do
    [ -f "$f" ] || continue
    case "$f" in
      *.sources) # deb822 stanzas separated by blank lines: print "URI SUITE" pairs
        awk 'function flush(  n, m, i, j, u, s) {
               if (types ~ /(^| )deb( |$)/ && !off) {
                 n = split(uris, u, " "); m = split(suites, s, " ")
                 for (i = 1; i <= n; i++) for (j = 1; j <= m; j++) print u[i], s[j]
               }
               types = uris = suites = ""; off = 0
             }
             /^[[:space:]]*#/ { next }
             /^[[:space:]]*$/ { flush(); next }
             tolower($1) == "types:" { $1 = ""; types = $0 }
             tolower($1) == "uris:" { $1 = ""; uris = $0 }
             tolower($1) == "suites:" { $1 = ""; suites = $0 }
             tolower($1) == "enabled:" && tolower($2) == "no" { off = 1 }
             END { flush() }' "$f" ;;
      *) # one line per source: deb [options] URI SUITE COMPONENTS...
        sed -nE 's/^[[:space:]]*deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+)[[:space:]]+([^[:space:]]+).*/\2 \3/p' "$f" ;;
    esac
  done | awk -v suite="$SUITE" -v debian="$debian" '
    $2 == suite && !exact { exact = $1 }
    $2 ~ /^[a-z]+$/ && !plain { plain = $1 }
    END { if (exact) print exact; else if (debian && plain) print plain }'
}

if [ "${MIRROR_ONLY:-0}" = 1 ]; then # print the mirror debootstrap would use, and stop
  debian_mirror "$@"
  exit 0
fi

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

mirror="$(debian_mirror)"
if [ -z "$mirror" ]; then
  echo "no image registry answers and no Debian $SUITE mirror is known: set DEBIAN_MIRROR=<URL of a Debian archive> and run make again" >&2
  exit 1
fi
echo "no image registry answers: building $IMAGE with debootstrap from $mirror"
need debootstrap
[ "$(id -u)" = 0 ] || { echo "debootstrap needs root: run 'sudo make base'" >&2; exit 1; }
rootfs="$(mktemp -d /tmp/perseus-rootfs.XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" "$mirror"
# Keep the image small and make it behave like the slim image.
chroot "$rootfs" apt-get clean
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/*
tar -C "$rootfs" -c . | docker import -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' -c 'CMD ["/bin/bash"]' - "$IMAGE"
echo "built $IMAGE"
