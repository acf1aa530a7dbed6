#!/usr/bin/env bash
# Builds the systems image (SYSTEMS_IMAGE, default perseus-systems:latest): the base image plus
# the Debian packages of compose/systems/packages.txt and the configs of compose/systems/. One
# image for every system that is not Perseus or etcd, so CI builds it once; docker's layer
# cache makes a rebuild with unchanged packages take seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
image="${SYSTEMS_IMAGE:-perseus-systems:latest}"
base="${BASE_IMAGE:-perseus-base:bookworm}"
docker image inspect "$base" >/dev/null 2>&1 || BASE_IMAGE="$base" compose/make-base.sh
echo "building $image (compose/systems/, packages: $(sed 's/#.*//' compose/systems/packages.txt | xargs))"
docker build -q --build-arg BASE="$base" -t "$image" -f compose/systems/Dockerfile compose/systems >/dev/null
