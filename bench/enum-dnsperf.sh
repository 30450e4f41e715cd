#!/usr/bin/env bash
# ENUM answer rate, measured with dnsperf, side by side in one run:
#   - Knot DNS (knotd) serving the same answers from a static zone (the reference DNS server);
#   - tollgate with the demo policy (4 rules, 3-number list);
#   - tollgate with a 100,000-rule policy and a 1,000,000-number list.
# The same query mix goes to each: allowed (NXDOMAIN), terminated, redirected, and rejected by
# calling number (query-name label). Prints a Markdown table for docs/PERFORMANCE.md.
#
# Usage: bench/enum-dnsperf.sh [seconds per run, default 15]
# Needs: dnsperf, knot (Debian packages), a release build (built here).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-15}
for tool in dnsperf knotd; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install dnsperf knot" >&2; exit 1; }
done
cargo build --release -q -p tollgate
bin=$PWD/target/release/tollgate
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# Query mix: 25% each.
for i in $(seq 1 2500); do
  echo "0.0.1.0.5.5.5.2.1.2.1.e164.arpa. NAPTR"
  echo "1.1.1.0.5.5.5.2.1.2.1.e164.arpa. NAPTR"
  echo "2.2.1.0.5.5.5.2.1.2.1.e164.arpa. NAPTR"
  echo "0.0.1.0.5.5.5.2.1.2.1.src-13125550666.e164.arpa. NAPTR"
done > "$work/queries.txt"

# Knot DNS with the same answers in a static zone.
mkdir -p "$work/knot"
cat > "$work/knot/e164.arpa.zone" <<'ZONE'
$ORIGIN e164.arpa.
$TTL 0
@ SOA tollgate.invalid. hostmaster.tollgate.invalid. 1 3600 600 86400 0
@ NS ns.tollgate.invalid.
1.1.1.0.5.5.5.2.1.2.1 NAPTR 100 10 "u" "E2U+sip" "!^.*$!sip:intercept@127.0.0.1:5090!" .
2.2.1.0.5.5.5.2.1.2.1 NAPTR 100 10 "u" "E2U+sip" "!^.*$!sip:+12125550199@127.0.0.1:5080!" .
0.0.1.0.5.5.5.2.1.2.1.src-13125550666 NAPTR 100 10 "u" "E2U+sip" "!^.*$!sip:603@reject.tollgate.invalid!" .
ZONE
cat > "$work/knot/knot.conf" <<KNOT
server:
    listen: 127.0.0.1@5392
    rundir: $work/knot
    background-workers: 1
database:
    storage: $work/knot
template:
  - id: default
    storage: $work/knot
zone:
  - domain: e164.arpa
    file: e164.arpa.zone
log:
  - target: stderr
    any: error
KNOT
knotd -c "$work/knot/knot.conf" 2>"$work/knot/log" &
pids+=($!)

# tollgate, demo policy.
start_tollgate() { # name port [policy file]
  local dir="$work/$1"; mkdir -p "$dir"
  cat > "$dir/tollgate.toml" <<CFG
[node]
name = "$1"
state_dir = "$dir/state"
[api]
listen = "127.0.0.1:0"
[enum]
listen_udp = ["127.0.0.1:$2"]
listen_tcp = ["127.0.0.1:$2"]
CFG
  "$bin" --config "$dir/tollgate.toml" --log error serve > "$dir/out" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do grep -q "tollgate ready" "$dir/out" && break; sleep 0.1; done
  if [ -n "${3:-}" ]; then
    "$bin" --config "$dir/tollgate.toml" --log error policy install "$3" --api "$(sed -n 's/.*api=\(http[^ ]*\).*/\1/p' "$dir/out")" > /dev/null
  fi
}
start_tollgate demo 5393

# A large policy: 100,000 exact-destination rules, a million-number list, then the demo rules.
big="$work/big"; mkdir -p "$big"
python3 - "$big" <<'PY'
import sys
d = sys.argv[1]
with open(f"{d}/million.txt", "w") as f:
    for i in range(1_000_000):
        f.write(f"+1646{i:07d}\n")
with open(f"{d}/policy.toml", "w") as f:
    f.write('schema = 1\nname = "big"\n[[internal]]\nprefix = "+1212555"\n[lists]\nmillion = "million.txt"\n')
    for i in range(100_000):
        f.write(f'[[rule]]\nname = "r{i}"\ndestination = "+1718{i:07d}"\naction = "redirect"\ntarget = "+12125550199"\n')
    f.write('[[rule]]\nname = "list"\nsource = "list:million"\naction = "terminate"\ncause = 486\n')
    f.write('[[rule]]\nname = "robo"\nsource = "+13125550666"\naction = "terminate"\ncause = 603\n')
    f.write('[[rule]]\nname = "intercept"\ndestination = "+12125550111"\naction = "terminate"\n')
    f.write('[[rule]]\nname = "redirect"\ndestination = "+12125550122"\naction = "redirect"\ntarget = "+12125550199"\n')
PY
start_tollgate big 5394 "$big/policy.toml"
sleep 1

run() { # label port
  local out
  out=$(dnsperf -s 127.0.0.1 -p "$2" -d "$work/queries.txt" -l "$secs" -c 8 -T 1 -q 500 2>&1)
  local qps lat lost
  qps=$(echo "$out" | sed -n 's/.*Queries per second: *\([0-9.]*\).*/\1/p')
  lat=$(echo "$out" | sed -n 's/.*Average Latency (s): *\([0-9.]*\).*/\1/p')
  lost=$(echo "$out" | sed -n 's/.*Queries lost: *\([0-9]*\).*/\1/p')
  printf '| %s | %.0f | %.3f | %s |\n' "$1" "$qps" "$(echo "$lat * 1000" | bc -l)" "$lost"
}

echo "dnsperf -c 8 -T 1 -q 500 -l $secs, $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(date -u +%Y-%m-%d)"
echo
echo "| server | queries/s | avg latency (ms) | lost |"
echo "|---|---|---|---|"
run "knotd $(knotd --version | awk '{print $NF}') (static zone, same answers)" 5392
run "tollgate serve, demo policy (4 rules)" 5393
run "tollgate, 100,000 rules + 1,000,000-number list" 5394
