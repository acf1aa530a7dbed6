#!/usr/bin/env bash
# End-to-end check of `make watch` as a person would use it, through tmux (a 100x30 pane):
# the three node charts appear, the kill key for a1 drops n1 to 0 with a marker while n2/n3
# serve, the start key brings n1 back, q writes a results folder with a report whose fault
# windows are the ones the screen showed. Needs the cluster up (make up) and tmux.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v tmux >/dev/null || { echo "watch-check: tmux is not installed (apt-get install tmux)" >&2; exit 2; }
session="perseus-watch-$$"
out="results/watch-check-$(date -u +%Y%m%dT%H%M%SZ)"
screen() { tmux capture-pane -p -t "$session"; }
fail() { echo "watch-check: $*" >&2; screen >&2 || true; tmux kill-session -t "$session" 2>/dev/null || true; exit 1; }
# Waits up to $2 s for the screen to match the regex $1.
wait_for() {
  local i
  for ((i = 0; i < $2 * 2; i++)); do screen | grep -Eq "$1" && return 0; sleep 0.5; done
  fail "after $2 s the screen does not show /$1/"
}

tmux new-session -d -s "$session" -x 100 -y 30 \
  "target/release/watch --duration 120 --out $out; echo WATCH-EXITED \$?; sleep 30"
wait_for 'n1 [0-9]+/s' 5
wait_for 'n3 [1-9][0-9]*/s' 8
echo "watch-check: three node charts shown"; screen | head -3
tmux send-keys -t "$session" 1 k
wait_for 'a1 kill for' 10
wait_for 'n1 0/s' 5
screen | grep -Eq 'n2 [1-9][0-9]*/s' || fail "n2 stopped while a1 was killed"
screen | grep -q 'kill a1' || fail "no kill marker"
echo "watch-check: kill a1 -> n1 at 0, n2/n3 serving"
sleep 3
tmux send-keys -t "$session" s
wait_for 'no fault in force' 30
wait_for 'n1 [1-9][0-9]*/s' 10
echo "watch-check: start a1 -> n1 serving again"
sleep 2
tmux send-keys -t "$session" q
wait_for 'WATCH-EXITED 0' 40
tmux kill-session -t "$session" 2>/dev/null || true
[ -s "$out/report.md" ] || fail "no report in $out"
grep -q kill "$out/report.md" || fail "the report has no kill window"
echo "watch-check: report written to $out/report.md"
