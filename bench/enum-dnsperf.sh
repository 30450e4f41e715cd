#!/usr/bin/env bash
# ENUM answer rate, measured with dnsperf (-c 8 -T 1 -q 500, on the same cores), side by side in
# one run. Two tables:
#
# 1. The small mix (4 names): Knot DNS (knotd) serving the same answers from a static zone,
#    tollgate with the demo policy (4 rules, 3-number list), tollgate with a 100,000-rule policy
#    and a 1,000,000-number list.
# 2. The issue-15 mix: 200,000 DISTINCT query names, each carrying the caller in the query-name
#    label (`...src-<digits>.e164.arpa.`), a quarter each: allowed (NXDOMAIN), redirected by one
#    of 100,000 exact-destination rules, caller in the 1,000,000-number list (terminated, 486),
#    +1900 prefix (terminated, 603). NSD (RRL off) and Knot serve a static zone generated from
#    the same list; `tollgate engine` and `tollgate serve` (all roles in one process) evaluate
#    the policy. Before measuring, one name of each kind is asked of every server with kdig and
#    the answers (rcode and answer records) must be identical, else the script exits 1.
#    Prints queries/s and the tollgate/NSD and tollgate/Knot ratios, and the same for a UDP echo
#    server (crates/enum/examples/udp_echo.rs) as the floor of this machine's loopback.
#
# Usage: bench/enum-dnsperf.sh [seconds per run, default 15]
# Needs: dnsperf, knot, nsd, knot-dnsutils (kdig) (Debian packages), a release build (built here).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-15}
export PATH=$PATH:/usr/sbin
for tool in dnsperf knotd nsd kdig; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install dnsperf knot nsd knot-dnsutils" >&2; exit 1; }
done
cargo build --release -q -p tollgate
cargo build --release -q -p tollgate-enum --example udp_echo
bin=$PWD/target/release/tollgate
echo_bin=$PWD/target/release/examples/udp_echo
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
start_tollgate() { # name port [policy file [role: serve (default) or engine]]
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
[probe]
hep_udp = []
hep_tcp = []
CFG
  "$bin" --config "$dir/tollgate.toml" --log error "${4:-serve}" > "$dir/out" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 600); do grep -q "tollgate ready" "$dir/out" && break; sleep 0.1; done
  grep -q "tollgate ready" "$dir/out" || { echo "tollgate $1 not ready after 60 s:" >&2; cat "$dir/out" >&2; exit 1; }
  if [ -n "${3:-}" ]; then
    "$bin" --config "$dir/tollgate.toml" --log error policy install "$3" --api "$(sed -n 's/.*api=\(http[^ ]*\).*/\1/p' "$dir/out")" > /dev/null
  fi
}
start_tollgate demo 5393
demo_pid=${pids[-1]}

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
    f.write('[[rule]]\nname = "premium"\ndestination = "+1900*"\naction = "terminate"\ncause = 603\n')
    f.write('[[rule]]\nname = "list"\nsource = "list:million"\naction = "terminate"\ncause = 486\n')
    f.write('[[rule]]\nname = "robo"\nsource = "+13125550666"\naction = "terminate"\ncause = 603\n')
    f.write('[[rule]]\nname = "intercept"\ndestination = "+12125550111"\naction = "terminate"\n')
    f.write('[[rule]]\nname = "redirect"\ndestination = "+12125550122"\naction = "redirect"\ntarget = "+12125550199"\n')
PY
start_tollgate big 5394 "$big/policy.toml"
big_pid=${pids[-1]}
sleep 1


# The issue-15 mix: 200,000 distinct names, 50,000 of each kind, interleaved, and the static zone
# with the very same answers (allowed calls have no record: NXDOMAIN).
python3 - "$big" <<'PY'
import sys
d = sys.argv[1]
def name(dest, caller):
    return ".".join(reversed(dest.lstrip("+"))) + ".src-" + caller.lstrip("+") + ".e164.arpa."
def naptr(uri):
    return f'NAPTR 100 10 "u" "E2U+sip" "!^.*$!{uri}!" .'
redirect = naptr("sip:+12125550199@127.0.0.1:5080")
listed = naptr("sip:486@reject.tollgate.invalid")
premium = naptr("sip:603@reject.tollgate.invalid")
kinds = {}
with open(f"{d}/queries200k.txt", "w") as q, open(f"{d}/e164.arpa.zone", "w") as z:
    z.write("$ORIGIN e164.arpa.\n$TTL 0\n@ SOA tollgate.invalid. hostmaster.tollgate.invalid. 1 3600 600 86400 0\n")
    z.write("@ NS ns.tollgate.invalid.\n")
    for i in range(50_000):
        caller = f"+1617{i:07d}"
        rows = [
            ("allowed", name(f"+1415{i:07d}", caller), None),
            ("redirected", name(f"+1718{2 * i:07d}", caller), redirect),
            ("listed", name(f"+1415{500_000 + i:07d}", f"+1646{20 * i:07d}"), listed),
            ("premium", name(f"+1900{i:07d}", caller), premium),
        ]
        for kind, n, rr in rows:
            q.write(f"{n} NAPTR\n")
            if rr:
                z.write(f"{n} {rr}\n")
            if i == 12_345:
                kinds[kind] = n
with open(f"{d}/spot.txt", "w") as f:
    for kind in ("allowed", "redirected", "listed", "premium"):
        f.write(f"{kind} {kinds[kind]}\n")
PY
[ "$(sort -u "$big/queries200k.txt" | wc -l)" = 200000 ] || { echo "the query file has duplicates" >&2; exit 1; }

# NSD, RRL off (Debian's NSD 4.6 is built with --enable-ratelimit; rrl-ratelimit: 0 disables it).
mkdir -p "$work/nsd"
cp "$big/e164.arpa.zone" "$work/nsd/"
cat > "$work/nsd/nsd.conf" <<NSD
server:
    ip-address: 127.0.0.1@5395
    server-count: $(nproc)
    username: ""
    chroot: ""
    zonesdir: "$work/nsd"
    database: ""
    zonelistfile: "$work/nsd/zone.list"
    xfrdfile: "$work/nsd/xfrd.state"
    xfrdir: "$work/nsd"
    pidfile: "$work/nsd/nsd.pid"
    logfile: "$work/nsd/log"
    verbosity: 0
    rrl-ratelimit: 0
remote-control:
    control-enable: no
zone:
    name: e164.arpa
    zonefile: e164.arpa.zone
NSD
nsd-checkconf "$work/nsd/nsd.conf" || { echo "nsd-checkconf rejects the configuration (rrl-ratelimit unknown?)" >&2; exit 1; }
nsd -d -c "$work/nsd/nsd.conf" 2>"$work/nsd/stderr" &
pids+=($!)

# Knot DNS with the same zone.
mkdir -p "$work/knot200k"
cp "$big/e164.arpa.zone" "$work/knot200k/"
sed -e "s|$work/knot|$work/knot200k|g" -e 's|@5392|@5396|' "$work/knot/knot.conf" > "$work/knot200k/knot.conf"
knotd -c "$work/knot200k/knot.conf" 2>"$work/knot200k/log" &
pids+=($!)

# tollgate engine (the ENUM role alone) and serve (all roles) with the big policy.
start_tollgate engine200k 5397 "$big/policy.toml" engine
start_tollgate serve200k 5398 "$big/policy.toml" serve

# The loopback floor: a UDP echo server with the engine's socket handling (QR bit set, nothing else).
"$echo_bin" 127.0.0.1:5399 > "$work/echo.out" 2>&1 &
pids+=($!)

# Wait until the static-zone servers answer (their zones load in a few seconds; tollgate waited
# for its ready line).
for port in 5392 5395 5396; do
  for _ in $(seq 1 300); do
    kdig @127.0.0.1 -p "$port" +time=1 +retry=0 e164.arpa. SOA 2>/dev/null | grep -q 'status: NOERROR' && break
    sleep 0.2
  done
done

# Spot check: one name of each kind, the same rcode and answer records from every server.
answer() { # port name -> "RCODE answer records..." (TTL left out)
  local out status
  out=$(kdig @127.0.0.1 -p "$1" +time=2 +retry=2 +norec "$2" NAPTR)
  status=$(echo "$out" | sed -n 's/.*status: \([A-Z]*\).*/\1/p')
  echo "$status $(kdig @127.0.0.1 -p "$1" +time=2 +retry=2 +norec +short "$2" NAPTR | tr '\n' ' ')"
}
mismatch=0
while read -r kind qname; do
  ref=$(answer 5395 "$qname")
  case "$kind:$ref" in
    allowed:"NXDOMAIN "*|redirected:"NOERROR 100"*|listed:"NOERROR 100"*|premium:"NOERROR 100"*) ;;
    *) echo "NSD's answer for $kind $qname is not what the zone says: $ref" >&2; mismatch=1 ;;
  esac
  for port in 5396 5397 5398; do
    got=$(answer "$port" "$qname")
    if [ "$got" != "$ref" ]; then
      echo "answers differ for $kind $qname: NSD: $ref; port $port: $got" >&2
      mismatch=1
    fi
  done
done < "$big/spot.txt"
[ "$mismatch" = 0 ] || exit 1
spot=$(while read -r kind qname; do echo "- $kind: \`$qname\` -> $(answer 5395 "$qname")"; done < "$big/spot.txt")

measure() { # port query-file -> "qps latency-ms lost"
  local out qps lat lost
  out=$(dnsperf -s 127.0.0.1 -p "$1" -d "$2" -l "$secs" -c 8 -T 1 -q 500 2>&1)
  qps=$(echo "$out" | sed -n 's/.*Queries per second: *\([0-9.]*\).*/\1/p')
  lat=$(echo "$out" | sed -n 's/.*Average Latency (s): *\([0-9.]*\).*/\1/p')
  lost=$(echo "$out" | sed -n 's/.*Queries lost: *\([0-9]*\).*/\1/p')
  echo "${qps:-0} $(echo "${lat:-0} * 1000" | bc -l) ${lost:-?}"
}
run() { # label port
  local m
  m=$(measure "$2" "$work/queries.txt")
  set -- "$1" $m
  printf '| %s | %.0f | %.3f | %s |\n' "$1" "$2" "$3" "$4"
}
echo "load average before the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "dnsperf -c 8 -T 1 -q 500 -l $secs, $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(date -u +%Y-%m-%d)"
echo
echo "| server | queries/s | avg latency (ms) | lost |"
echo "|---|---|---|---|"
run "knotd $(knotd --version | awk '{print $NF}') (static zone, same answers)" 5392
run "tollgate serve, demo policy (4 rules)" 5393
run "tollgate, 100,000 rules + 1,000,000-number list" 5394

# The small-mix instances are done: they take no CPU from the servers measured next.
kill "$demo_pid" "$big_pid" 2>/dev/null || true
echo
echo "200,000 distinct names (a quarter each: allowed, redirected by one of 100,000 exact rules, caller in the 1,000,000-number list, +1900 prefix); answers checked identical for one name of each kind"
echo
echo "| server | queries/s | avg latency (ms) | lost | / NSD | / Knot |"
echo "|---|---|---|---|---|---|"
read -r nsd_qps nsd_lat nsd_lost <<< "$(measure 5395 "$big/queries200k.txt")"
read -r knot_qps knot_lat knot_lost <<< "$(measure 5396 "$big/queries200k.txt")"
read -r eng_qps eng_lat eng_lost <<< "$(measure 5397 "$big/queries200k.txt")"
read -r srv_qps srv_lat srv_lost <<< "$(measure 5398 "$big/queries200k.txt")"
read -r echo_qps echo_lat echo_lost <<< "$(measure 5399 "$big/queries200k.txt")"
row() { printf '| %s | %.0f | %.3f | %s | %.2f | %.2f |\n' "$1" "$2" "$3" "$4" "$(echo "$2 / $nsd_qps" | bc -l)" "$(echo "$2 / $knot_qps" | bc -l)"; }
row "nsd $(nsd -v 2>&1 | awk 'NR==1{print $NF}') (static zone, rrl-ratelimit: 0, server-count: $(nproc))" "$nsd_qps" "$nsd_lat" "$nsd_lost"
row "knotd $(knotd --version | awk '{print $NF}') (same zone)" "$knot_qps" "$knot_lat" "$knot_lost"
row "tollgate engine, 100,000 rules + 1,000,000-number list + prefix rule" "$eng_qps" "$eng_lat" "$eng_lost"
row "tollgate serve (all roles), same policy" "$srv_qps" "$srv_lat" "$srv_lost"
row "UDP echo, the engine's socket handling (loopback floor, crates/enum/examples/udp_echo.rs)" "$echo_qps" "$echo_lat" "$echo_lost"
echo
echo "Spot check (rcode and answer, identical from NSD, Knot, tollgate engine and serve):"
echo "$spot"
echo
echo "load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
