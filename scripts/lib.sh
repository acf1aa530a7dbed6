#!/usr/bin/env bash
# Shared by the scripts and the Makefile: which Compose to run and how to find a service's
# container. Source it (`. scripts/lib.sh`) or run a function: `scripts/lib.sh cid client`.
#   COMPOSE  the Compose v2 plugin when present, else docker-compose v1 (1.29); kept if set
#   PROJECT  the Compose project (COMPOSE_PROJECT_NAME, default perseus)
#   cid SVC  the service's container id, running or not, one-off `run` containers excluded
#            (by label: `compose ps` differs between v1 and v2)
#   leftovers          the project's containers, networks and volumes (empty when clean)
#   node_url pN        node pN's published address on this machine (http://127.0.0.1:808N)
#   kv pN OP KEY [VALUE]  one keys request (`lab kv`: get, put, create): prints STATUS VALUE
#            ERRORCODE REASON MESSAGE, the first four one word each (`-` when absent), for
#            `read -r code value ecode reason _`; `000 - - -` when the node does not answer
#   acceptor_state HOST ACCEPTOR  ACCEPTOR's state (member, recovering, ...) as the node of
#            HOST sees it (`chaos status HOST --get acceptor.ACCEPTOR`); `none` when unnamed
#   wait_until SECS CMD...  true once CMD succeeds (tried once a second), false after SECS
#   written NODE OP KEY WHEN  PUT (OP put or create) v1 into KEY via NODE: prints the answer
#            and says `fail` unless it is 201
#   never_404_nor_created NODE KEY [REASON]  GET KEY via NODE answers v1 or a 503 (with REASON
#            when given, e.g. no-quorum), never 404, and a create of KEY is refused; says so
#            through the caller's `ok` and `fail`
#   need CMD [PACKAGE] installs PACKAGE (default CMD) with apt-get when CMD (a command, or a
#            file when it starts with /) is missing and we are root on Debian/Ubuntu;
#            otherwise stops with the one command to run
#   progress_start FEED TOTAL LABEL SECS_PER_STEP  on a terminal, a progress bar with elapsed
#            and remaining time (`lab progress`) fed through the file FEED; then `progress_say` prints a
#            line above it, `progress_now TEXT` names the step, `progress_step` counts one and
#            `progress_end` removes the bar. Without a terminal: no bar, `progress_say` is echo.

compose_command() {
  if docker compose version >/dev/null 2>&1; then echo "docker compose"; else echo docker-compose; fi
}

COMPOSE="${COMPOSE:-$(compose_command)}"
PROJECT="${COMPOSE_PROJECT_NAME:-perseus}"
export COMPOSE

cid() {
  docker ps -aq --filter "label=com.docker.compose.project=$PROJECT" \
    --filter "label=com.docker.compose.service=$1" --filter "label=com.docker.compose.oneoff=False"
}

node_url() { echo "http://127.0.0.1:808${1#p}"; }

kv() {
  local node=$1
  shift
  "${LAB:-target/release/lab}" kv "$1" "$(node_url "$node")" "${@:2}" || echo "000 - - - no answer"
}

acceptor_state() {
  "${CHAOS_CLI:-target/release/chaos}" --project "$PROJECT" --get "acceptor.$2" status "$1" 2>/dev/null
}

wait_until() {
  local t0=$SECONDS
  while [ $((SECONDS - t0)) -lt "$1" ]; do
    "${@:2}" && return 0
    sleep 1
  done
  return 1
}

written() {
  local r code
  r="$(kv "$1" "$2" "$3" v1)"; echo "PUT v1 via $1 ($4): $r"
  read -r code _ <<<"$r"
  [ "$code" = 201 ] || fail "PUT v1 via $1 answered $code"
}

never_404_nor_created() {
  local r code value ecode reason
  r="$(kv "$1" get "$2")"; echo "GET via $1: $r"
  read -r code value ecode reason _ <<<"$r"
  case "$code" in
    200) [ "$value" = v1 ] && ok "GET answered v1" || fail "GET answered 200 without v1" ;;
    503) [ -z "${3:-}" ] || [ "$reason" = "$3" ] && ok "GET answered 503 ($reason, errorCode $ecode)" ||
      fail "GET answered 503 $reason, not $3" ;;
    *) fail "GET via $1 answered $code (must be v1 or a 503, never 404)" ;;
  esac
  r="$(kv "$1" create "$2" v2)"; echo "create via $1: $r"
  read -r code _ <<<"$r"
  [ "$code" = 201 ] && fail "a second create of $2 was acknowledged" || ok "the create was refused ($code)"
}

# leftovers: the project's containers, networks and volumes still present (empty when clean).
leftovers() {
  local what
  for what in "ps -aq" "network ls -q" "volume ls -q"; do
    # shellcheck disable=SC2086
    docker $what --filter "label=com.docker.compose.project=$PROJECT"
  done
}

# A command on the PATH, or (a name starting with /) a file.
have() { case "$1" in /*) [ -e "$1" ] ;; *) command -v "$1" >/dev/null 2>&1 ;; esac; }

need() {
  local cmd="$1" pkg="${2:-$1}"
  have "$cmd" && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "$cmd is missing: installing $pkg (apt-get install $pkg)"
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg")
    # A fresh machine may have no package lists yet: update once and try again.
    "${apt[@]}" >/dev/null 2>&1 || { apt-get update -qq && "${apt[@]}"; } || {
      echo "installing $pkg failed" >&2
      return 1
    }
    have "$cmd"
  else
    echo "$cmd is missing: run  sudo apt-get install -y $pkg  and try again" >&2
    return 1
  fi
}

PROGRESS_FEED="" PROGRESS_PID=""
progress_start() {
  local lab="${LAB:-target/release/lab}"
  [ -t 2 ] && [ -x "$lab" ] || return 0
  PROGRESS_FEED="$1"
  : >"$PROGRESS_FEED"
  "$lab" progress --feed "$PROGRESS_FEED" --total "$2" --label "$3" --per-step "$4" &
  PROGRESS_PID=$!
}
progress_say() { if [ -n "$PROGRESS_FEED" ]; then echo "$*" >>"$PROGRESS_FEED"; else echo "$*"; fi; }
progress_now() { [ -z "$PROGRESS_FEED" ] || echo "now $*" >>"$PROGRESS_FEED"; }
progress_step() { [ -z "$PROGRESS_FEED" ] || echo done >>"$PROGRESS_FEED"; }
progress_end() {
  [ -n "$PROGRESS_PID" ] || return 0
  echo end >>"$PROGRESS_FEED"
  wait "$PROGRESS_PID" 2>/dev/null || true
  PROGRESS_FEED="" PROGRESS_PID=""
}

# Run as a command: `scripts/lib.sh FUNCTION ARGS...`.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  "$@"
fi
