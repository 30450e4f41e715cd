#!/usr/bin/env bash
# The lab's whole upgrade sequence from the command line, N times in a row (default 10):
#
#   tollgate lab up                     a manager pair, two engine clusters, probes, a collector
#   tollgate upgrade select 2.0.0       the release to roll out (staged on every server)
#   tollgate upgrade start --all        every cluster upgraded, one action after the other
#   tollgate upgrade rollback --all     at once: every cluster backed out again
#   tollgate lab down
#
# Each run also checks that the lab's secrets are private (configurations with tokens, the
# signing key, lab.json, every state directory and backup: no group or other access).
# Stops at the first failure, leaving that run's directory (configurations and every server's
# agent.log and role.log) in place and naming it; prints a table of the runs with the time of
# each step.
#
# Needs root (the engines serve ENUM on port 53) and the addresses 127.0.<net>.x (on Linux the
# whole of 127.0.0.0/8 is on the loopback interface).
#
#   scripts/lab-cycle.sh [N]
#   TOLLGATE=target/release/tollgate LAB_NET=77 LAB_DIR=/tmp/tollgate-lab-cycle scripts/lab-cycle.sh 3
set -uo pipefail

runs="${1:-10}"
case "$runs" in '' | *[!0-9]*) echo "usage: $0 [N]  (N: how many runs, default 10)" >&2; exit 2 ;; esac
net="${LAB_NET:-77}"
base="${LAB_DIR:-/tmp/tollgate-lab-cycle}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
tollgate="${TOLLGATE:-}"
if [ -z "$tollgate" ]; then
  for t in "$repo/target/release/tollgate" "$repo/target/debug/tollgate"; do
    if [ -x "$t" ]; then tollgate="$t"; break; fi
  done
fi
[ -n "$tollgate" ] || tollgate="$(command -v tollgate || true)"
[ -x "$tollgate" ] || { echo "no tollgate binary: build it (cargo build --release) or set TOLLGATE" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "the lab needs root (ENUM on port 53)" >&2; exit 2; }
mkdir -p "$base"

rows=()
table() {
  printf '\n%-4s %8s %8s %8s %10s %8s %8s  %s\n' run "up(s)" "select" "start" "rollback" "down" "total" result
  for r in "${rows[@]}"; do printf '%s\n' "$r"; done
}

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# Lab files that must be private: configurations and lab.json (tokens), the signing key, every
# server's state directory and agent directory (records, users, tokens, backups).
private_check() {
  local dir="$1" bad
  bad="$(find "$dir" -maxdepth 1 \( -name lab.json -o -name release.key \) -perm /077 2>/dev/null;
         find "$dir/servers" \( -name '*.toml' -path '*/servers/*' -maxdepth 2 \) -perm /077 2>/dev/null;
         find "$dir"/servers/*/state "$dir"/servers/*/agent/backups -perm /077 ! -type l 2>/dev/null)"
  if [ -n "$bad" ]; then
    echo "group/other can read:"
    echo "$bad" | head -20
    return 1
  fi
}

for i in $(seq 1 "$runs"); do
  dir="$base/run-$i"
  "$tollgate" lab down --dir "$dir" >/dev/null 2>&1 || true
  rm -rf "$dir"
  log="$base/run-$i.log"
  : >"$log"
  t0=$(now)
  declare -A took=()
  result=ok
  api="" token=""
  step() { # name, command...
    local name="$1" s e
    shift
    s=$(now)
    echo "== $name: $*" >>"$log"
    if ! "$@" >>"$log" 2>&1 </dev/null; then
      took[$name]=$(secs "$s" "$(now)")
      result="FAILED at $name"
      return 1
    fi
    took[$name]=$(secs "$s" "$(now)")
  }
  echo "run $i/$runs: lab in $dir, output in $log"
  if step up "$tollgate" lab up --dir "$dir" --net "$net"; then
    read -r api token < <(sed -n 's/.*tollgate upgrade status --api \([^ ]*\) --token \([^ ]*\).*/\1 \2/p' "$log" | tail -1)
    step select "$tollgate" upgrade select 2.0.0 --api "$api" --token "$token" &&
      step start "$tollgate" upgrade start --all --api "$api" --token "$token" &&
      step rollback "$tollgate" upgrade rollback --all --api "$api" --token "$token" &&
      { private_check "$dir" >>"$log" || { result="FAILED: private files readable by others"; false; }; }
  fi
  failed=0
  [ "$result" = ok ] || failed=1
  if [ "$failed" = 1 ]; then
    # The state as the failure left it, before the lab stops.
    [ -n "$api" ] && "$tollgate" upgrade status --api "$api" --token "$token" >>"$log" 2>&1
  fi
  keep="$result"
  if ! step down "$tollgate" lab down --dir "$dir" && [ "$keep" = ok ]; then
    keep="FAILED at down"
    failed=1
  fi
  result="$keep"
  total=$(secs "$t0" "$(now)")
  rows+=("$(printf '%-4s %8s %8s %8s %10s %8s %8s  %s' "$i" "${took[up]:--}" "${took[select]:--}" \
    "${took[start]:--}" "${took[rollback]:--}" "${took[down]:--}" "$total" "$result")")
  unset took
  if [ "$failed" = 1 ]; then
    table
    echo
    echo "run $i failed: $result"
    echo "  its output:  $log"
    echo "  its logs:    $dir/servers/*/agent.log and $dir/servers/*/agent/role.log"
    exit 1
  fi
  rm -rf "$dir"
done
table
echo
echo "$runs runs in a row: every one passed"
