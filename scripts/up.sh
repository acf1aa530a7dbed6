#!/usr/bin/env bash
# `make up SYSTEM=s`: starts the three hosts of system s (any of model/src/system.rs; perseus
# by default) and waits until all serve. What a system is made of (compose profile,
# services, image) comes from `chaos --target s describe` (model/src/system.rs), so adding a
# system needs no change here. Builds the systems image first when the system runs from it.
# Perseus also gets its repair step (a node left in an old namespace after a crash).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
system="${1:-perseus}"
eval "$(target/release/chaos --target "$system" describe)"
if [ "$image" = "${SYSTEMS_IMAGE:-perseus-systems:latest}" ]; then
  scripts/systems-image.sh
fi
# shellcheck disable=SC2086  # the service list is one word per service
$COMPOSE ${profile:+--profile "$profile"} up -d $services
if [ "$cluster" = perseus ]; then
  $COMPOSE --profile chaos run --rm -T chaos --target perseus --wait 0 start
fi
scripts/wait-healthy.sh "$system"
