#!/usr/bin/env bash
# The ENUM answer rate with shared counters (issue 17), side by side with local counting,
# measured with dnsperf as bench/enum-dnsperf.sh does (-c 8 -T 1 -q 500, on the same cores, on
# 200,000 DISTINCT query names carrying the caller in the label `...src-<digits>.e164.arpa.`).
#
# The policy (schema 2) puts a velocity rule that every query reaches first: source `+1*`,
# velocity = { calls = 3, window = "<--window>s" } (default 2 s), terminate 486. The rules
# after it decide the rest: 50,000 exact-destination redirects and a +1900 prefix (terminate
# 603); anything else is allowed (NXDOMAIN). The 200,000 names, interleaved, a quarter each:
#   - allowed:    destination +1415..., a caller of its own (150,000 callers make one call each);
#   - redirected: destination +1718... (one of the 50,000 rules), a caller of its own;
#   - premium:    destination +1900..., a caller of its own;
#   - repeated:   destination +1415 5..., from one of 500 callers +1312555xxxx, 100 names each:
#                 above the limit from the fourth call in a window on (terminated 486 by velocity).
# Why a short window: dnsperf replays the 200,000 names every second or so; with "60s" every
# caller would be above the limit after the fourth pass and the mix would decay to "all
# terminated". With a 2 s window a caller of its own never has more than 3 calls in a window
# (unless the server answers over 300,000 q/s), so the answer mix stays the same throughout and
# is the same for every server measured. The cost on the answer path does not depend on the
# window: every query is counted (one VelocityTable::count) and, when shared, kept for Redis.
#
# Servers (each `tollgate engine`, release build):
#   (a) local:  one engine without [shared_counters] (counts in its own process);
#   (b) shared: one engine with [shared_counters] (interval 20 ms, history 10 s) to a
#       redis-server this script starts (127.0.0.1, a free port, --save "" --appendonly no);
#   (c) with --three: three engines sharing that Redis ((b)'s engine and two more), each loaded
#       by its own dnsperf with a third of the clients (-c 3/3/2, -q 167/167/166), the rates
#       summed. OFF by default: on a 2-core machine three engines, three dnsperf and Redis take
#       turns on the same two CPUs, and every engine decodes the other two's batches, so the sum
#       says more about the machine than about sharing. The two extra engines run in any case
#       (spot check 2 below needs them) and are stopped (SIGSTOP) while (a) and (b) are
#       measured, so they take no CPU from them.
# With --runs N the servers are measured N times, interleaved ((a), (b)[, (c)], then again); the
# table gives each server's median queries/s, its min - max, the ratio of medians to (a), and
# the CPU time (user + system, from /proc/PID/stat) the engine(s) and redis-server used during a
# run per answer dnsperf received (medians, microseconds): where the time of sharing goes.
# After each run of (b) (and (c)) the shared-counters metrics are scraped from the engine's
# /metrics: published, received, errors and dropped events during the run (differences of the
# counters), batch_events sampled in the middle of the run (the last batch's size) and the
# pending events at the end, so the reader sees that the counts really went through Redis.
#
# Before measuring, two spot checks with kdig (the script exits 1 when one fails):
#   1. one name of each kind, identical rcode and answer from (a) and (b): allowed NXDOMAIN,
#      redirected and premium NOERROR with their NAPTR; a fresh caller's fourth call 486;
#   2. sharing: a fresh caller (+13125559xxx, matched by a rule of its own with a 60 s window so
#      the check does not race the short window) calls six times, each call at the next of the
#      three shared engines in turn (two calls each, 0.2 s apart, more than two intervals): the
#      first three are allowed, the fourth to the sixth are terminated, although no engine saw
#      more than two of them. The same six calls spread over three engines that do not share
#      would all be allowed (each engine sees two).
#
# With --perf DIR, `perf record -F 999 -g -p <pid>` runs during the first run of (a), of (b) and,
# with --three, of (c) (its engine shared2), and DIR/{local,shared,three}-top.txt (perf report
# --no-children --sort dso,sym, first 40 entries) and DIR/{local,shared,three}-children.txt
# (--children, first 60) are written beside the data.
#
# Usage: bench/enum-shared-counters.sh [--runs N] [--three] [--window SECS] [--perf DIR] [seconds per run, default 15]
#   e.g. bench/enum-shared-counters.sh --runs 5 15
# Ports: four UDP/TCP ports from $BENCH_PORT_BASE (default 5412; enum-dnsperf.sh uses 5392 on),
# Redis on a free TCP port. Binary: $TOLLGATE_BIN, else the release build (built here).
# Needs: dnsperf, knot-dnsutils (kdig), redis-server and redis-tools (redis-cli), python3, bc,
# curl (Debian packages); for --perf, linux-perf.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
usage() {
  echo "usage: $0 [--runs N] [--three] [--window SECS] [--perf DIR] [seconds per run, default 15]" >&2
  exit 2
}
secs=15
runs=1
three=0
window=2
perf_dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) [ $# -ge 2 ] || usage; runs=$2; shift 2 ;;
    --runs=*) runs=${1#--runs=}; shift ;;
    --three) three=1; shift ;;
    --window) [ $# -ge 2 ] || usage; window=$2; shift 2 ;;
    --window=*) window=${1#--window=}; shift ;;
    --perf) [ $# -ge 2 ] || usage; perf_dir=$2; shift 2 ;;
    --perf=*) perf_dir=${1#--perf=}; shift ;;
    -h | --help) usage ;;
    -*) echo "unknown option $1" >&2; usage ;;
    *) secs=$1; shift ;;
  esac
done
[[ $secs =~ ^[1-9][0-9]*$ ]] || die "seconds per run must be a positive integer, not '$secs'"
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer, not '$runs'"
[[ $window =~ ^[1-9][0-9]*$ ]] && [ "$window" -le 86400 ] || die "--window must be 1 to 86400 seconds, not '$window'"
export PATH=$PATH:/usr/sbin
base=${BENCH_PORT_BASE:-5412}
[[ $base =~ ^[1-9][0-9]*$ ]] && [ "$base" -le 65532 ] || die "BENCH_PORT_BASE must be a port number up to 65532, not '$base'"
need dnsperf kdig -- "apt-get install dnsperf knot-dnsutils"
need redis-server redis-cli -- "apt-get install redis-server redis-tools"
need python3 bc curl -- "apt-get install python3 bc curl"
if [ -n "$perf_dir" ]; then
  need perf -- "apt-get install linux-perf"
  mkdir -p "$perf_dir"
  perf_dir=$(cd "$perf_dir" && pwd)
fi
bin=$(tollgate_bin 1)
work=$(mktemp -d)
cleanup() {
  local p
  # A stopped engine (SIGSTOP, below) would not act on SIGTERM.
  for p in "${bench_pids[@]}"; do kill -CONT "$p" 2>/dev/null || true; done
  bench_cleanup
  rm -rf "$work"
}
trap cleanup EXIT

# Redis: loopback, a free port, no persistence (nothing on disk, as the issue's reference setup).
redis_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$work/redis"
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work/redis" \
  --logfile "$work/redis/log" &
redis_pid=$!
bench_pids+=("$redis_pid")
rcli() { redis-cli -h 127.0.0.1 -p "$redis_port" "$@"; }
for _ in $(seq 1 200); do
  [ "$(rcli ping 2>/dev/null)" = PONG ] && break
  kill -0 "$redis_pid" 2>/dev/null || { cat "$work/redis/log" >&2; die "redis-server exited"; }
  sleep 0.1
done
[ "$(rcli ping 2>/dev/null)" = PONG ] || die "redis-server does not answer on 127.0.0.1:$redis_port"

# The policy, the 200,000 names and the spot-check names.
python3 - "$work" "$window" <<'PY'
import sys
d, window = sys.argv[1], int(sys.argv[2])
def name(dest, caller):
    return ".".join(reversed(dest.lstrip("+"))) + ".src-" + caller.lstrip("+") + ".e164.arpa."
with open(f"{d}/policy.toml", "w") as f:
    f.write('schema = 2\nname = "shared-counters-bench"\n')
    # The sharing spot check's callers: a 60 s window, so the check does not race the short one.
    f.write('[[rule]]\nname = "spot-velocity"\nsource = "+13125559*"\n'
            'velocity = { calls = 3, window = "60s" }\naction = "terminate"\ncause = 486\n')
    f.write(f'[[rule]]\nname = "velocity"\nsource = "+1*"\n'
            f'velocity = {{ calls = 3, window = "{window}s" }}\naction = "terminate"\ncause = 486\n')
    for i in range(50_000):
        f.write(f'[[rule]]\nname = "r{i}"\ndestination = "+1718{i:07d}"\naction = "redirect"\ntarget = "+12125550199"\n')
    f.write('[[rule]]\nname = "premium"\ndestination = "+1900*"\naction = "terminate"\ncause = 603\n')
spot = {}
with open(f"{d}/queries.txt", "w") as q:
    for i in range(50_000):
        rows = [
            ("allowed", name(f"+1415{i:07d}", f"+1617{i:07d}")),
            ("redirected", name(f"+1718{i:07d}", f"+1618{i:07d}")),
            ("premium", name(f"+1900{i:07d}", f"+1619{i:07d}")),
            ("repeated", name(f"+1415{500_000 + i:07d}", f"+1312555{i % 500:04d}")),
        ]
        for kind, n in rows:
            q.write(f"{n} NAPTR\n")
            if i == 12_345:
                spot[kind] = n
with open(f"{d}/spot.txt", "w") as f:
    for kind in ("allowed", "redirected", "premium"):
        f.write(f"{kind} {spot[kind]}\n")
PY
[ "$(sort -u "$work/queries.txt" | wc -l)" = 200000 ] || die "the query file has duplicates"

# engine NAME PORT SHARED(0/1): starts `tollgate engine` (UDP and TCP on PORT) and installs the
# policy; sets pid[NAME] and api[NAME].
declare -A pid api
engine() {
  local dir="$work/$1"
  mkdir -p "$dir"
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
  if [ "$3" = 1 ]; then
    cat >> "$dir/tollgate.toml" <<CFG
[shared_counters]
url = "redis://127.0.0.1:$redis_port/0"
namespace = "bench"
interval = "20ms"
history = "10s"
CFG
  fi
  start_role "$dir" engine
  pid[$1]=$role_pid
  api[$1]=$role_api
  "$bin" --config "$dir/tollgate.toml" --log error policy install "$work/policy.toml" --api "$role_api" >/dev/null ||
    die "policy install on $1 failed"
}
p_local=$base p_shared=$((base + 1)) p_shared2=$((base + 2)) p_shared3=$((base + 3))
engine local "$p_local" 0
engine shared "$p_shared" 1
engine shared2 "$p_shared2" 1
engine shared3 "$p_shared3" 1
for e in shared shared2 shared3; do
  for _ in $(seq 1 100); do
    [ "$(metric "${api[$e]}" tollgate_shared_counters_up)" = 1 ] && break
    sleep 0.1
  done
  [ "$(metric "${api[$e]}" tollgate_shared_counters_up)" = 1 ] || die "engine $e does not exchange with Redis (tollgate_shared_counters_up is not 1): $(cat "$work/$e/out")"
done

# answer PORT NAME: "RCODE answer records..." (TTL left out), from ONE query (each query is a
# call the velocity rules count; no retry, which would count twice).
answer() {
  local out
  out=$(kdig @127.0.0.1 -p "$1" +time=3 +retry=0 +norec "$2" NAPTR) || true
  awk '/status:/ { s = $0; sub(/.*status: /, "", s); sub(/[^A-Z].*/, "", s) }
       /^;; ANSWER SECTION:/ { a = 1; next }
       a && /^$/ { a = 0 }
       a && !/^;/ { r = $5; for (i = 6; i <= NF; i++) r = r " " $i; rs = rs r " " }
       END { print (s == "" ? "NO-ANSWER" : s) " " rs }' <<< "$out"
}
# kind_of ANSWER: what the answer means in this policy.
kind_of() {
  case "$1" in
    "NXDOMAIN "*) echo allowed ;;
    *"sip:+12125550199@"*) echo redirected ;;
    *"sip:603@"*) echo premium ;;
    *"sip:486@"*) echo terminated ;;
    *) echo "unexpected: $1" ;;
  esac
}
# Spot check 1: one name of each kind from (a) and (b), and a fresh caller's fourth call.
failed=0
spot=""
while read -r kind qname; do
  a=$(answer "$p_local" "$qname")
  b=$(answer "$p_shared" "$qname")
  if [ "$(kind_of "$a")" != "$kind" ] || [ "$a" != "$b" ]; then
    echo "spot check: $kind $qname: local: $a; shared: $b" >&2
    failed=1
  fi
  spot+="- $kind: \`$qname\` -> $a"$'\n'
done < "$work/spot.txt"
for port in $p_local $p_shared; do
  got=""
  for i in 1 2 3 4; do
    got+="$(kind_of "$(answer "$port" "$((i + 1)).0.0.0.5.5.5.5.1.4.1.src-1408555$port.e164.arpa.")") "
  done
  if [ "$got" != "allowed allowed allowed terminated " ]; then
    echo "spot check: a fresh caller's four calls at port $port: $got (expected allowed x3, then terminated)" >&2
    failed=1
  fi
done
spot+="- a fresh caller's four calls at (a) and at (b): allowed, allowed, allowed, terminated (486)"$'\n'
# Spot check 2: one caller's six calls spread over the three shared engines.
spread_ports=("$p_shared" "$p_shared2" "$p_shared3")
spread=""
for i in 0 1 2 3 4 5; do
  port=${spread_ports[$((i % 3))]}
  spread+="$(kind_of "$(answer "$port" "$((i + 1)).0.0.0.5.5.5.5.1.4.1.src-13125559001.e164.arpa.")") "
  sleep 0.2
done
if [ "$spread" != "allowed allowed allowed terminated terminated terminated " ]; then
  echo "spot check: six calls of +13125559001 over the three shared engines: $spread(expected allowed x3, then terminated x3)" >&2
  failed=1
fi
spot+="- +13125559001 calls six times, at engine shared, shared2, shared3, shared, shared2, shared3 (0.2 s apart): $spread(each engine saw two calls; the limit is 3)"$'\n'
[ "$failed" = 0 ] || die "spot check failed (above)"

# The extra engines take no CPU while (a) and (b) are measured.
pause_extra() { kill -STOP "${pid[shared2]}" "${pid[shared3]}"; }
resume_extra() { kill -CONT "${pid[shared2]}" "${pid[shared3]}"; }
pause_extra

# dnsperf_run PORT CLIENTS OUTSTANDING OUT: one dnsperf run, its output in OUT.
dnsperf_run() {
  dnsperf -s 127.0.0.1 -p "$1" -d "$work/queries.txt" -l "$secs" -c "$2" -T 1 -q "$3" > "$4" 2>&1 || true
}
qps_of() { sed -n 's/.*Queries per second: *\([0-9.]*\).*/\1/p' "$1" | head -n 1; }
codes_of() { sed -n 's/.*Response codes: *//p' "$1" | head -n 1; }
lost_of() { sed -n 's/.*Queries lost: *\([0-9]*\).*/\1/p' "$1" | head -n 1; }
done_of() { sed -n 's/.*Queries completed: *\([0-9]*\).*/\1/p' "$1" | head -n 1; }
# cpu_ticks PID...: the CPU time (user + system, clock ticks) the processes used so far.
cpu_ticks() {
  local p t=0 f
  for p in "$@"; do
    # The fields after the command name (which is in parentheses): utime and stime are 12 and 13.
    f=$(sed 's/.*) //' "/proc/$p/stat")
    t=$((t + $(awk '{ print $12 + $13 }' <<< "$f")))
  done
  echo "$t"
}
hz=$(getconf CLK_TCK)
# us_per ticks answers: CPU microseconds per answer.
us_per() { awk -v t="$1" -v n="$2" -v hz="$hz" 'BEGIN { if (n + 0 == 0) print "-"; else printf "%.2f\n", t / hz * 1e6 / n }'; }

# Shared-counters metrics of an engine: "published received errors dropped pending".
shared_metrics() {
  local m v out=""
  for m in published_events received_events errors dropped_events pending_events; do
    v=$(metric "$1" "tollgate_shared_counters_$m")
    out+="${v:-0} "
  done
  echo "$out"
}
# mid_sample API OUT: batch_events half-way through the run, written to OUT (in the background).
mid_sample() {
  sleep "$(echo "$secs / 2" | bc -l)"
  local v
  v=$(metric "$1" tollgate_shared_counters_batch_events)
  echo "${v:-?}" > "$2"
}

perf_start() { # pid name
  perf record -F 999 -g -p "$1" -o "$perf_dir/$2.perf.data" > "$work/perf-$2.log" 2>&1 &
  perf_pid=$!
  bench_pids+=("$perf_pid")
  for _ in $(seq 1 50); do [ -s "$perf_dir/$2.perf.data" ] && break; sleep 0.1; done
  sleep 0.2
}
perf_stop() {
  kill -INT "$perf_pid" 2>/dev/null || true
  wait "$perf_pid" 2>/dev/null || true
}
perf_reports() { # name
  local mode n file
  for mode in --no-children --children; do
    if [ "$mode" = --no-children ]; then n=40 file=$1-top.txt; else n=60 file=$1-children.txt; fi
    perf report -i "$perf_dir/$1.perf.data" "$mode" --sort dso,sym -g none --stdio 2>>"$work/perf-report.log" |
      awk -v n="$n" 'NR == 1 || /^#/ { if (!shown) print; next } /^$/ { next } shown < n { print; shown++ }' \
        > "$perf_dir/$file" || true
  done
}

servers=(local shared)
if [ "$three" = 1 ]; then servers+=(three); fi
declare -A label=(
  [local]="(a) tollgate engine, local counting (no [shared_counters])"
  [shared]="(b) tollgate engine, [shared_counters] to one Redis (interval 20 ms)"
  [three]="(c) three engines sharing one Redis, three dnsperf (-c 3/3/2), rates summed"
)
declare -A qps_runs codes cpu_runs redis_runs
metric_rows=""
echo "load average before the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "dnsperf -c 8 -T 1 -q 500 -l $secs on 200,000 distinct names, $runs run(s) each, interleaved; $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)); $(redis-server --version | awk '{print $1, $2, $3}'); $(date -u '+%Y-%m-%d %H:%M UTC')"
for r in $(seq 1 "$runs"); do
  for s in "${servers[@]}"; do
    out="$work/run-$s-$r"
    case "$s" in
      local | shared)
        [ "$s" = local ] && port=$p_local || port=$p_shared
        before=$(shared_metrics "${api[$s]}")
        cpu0=$(cpu_ticks "${pid[$s]}")
        rcpu0=$(cpu_ticks "$redis_pid")
        mid_sample "${api[$s]}" "$out.batch" &
        sampler=$!
        profile=0
        if [ -n "$perf_dir" ] && [ "$r" = 1 ]; then profile=1; perf_start "${pid[$s]}" "$s"; fi
        dnsperf_run "$port" 8 500 "$out"
        if [ "$profile" = 1 ]; then perf_stop; fi
        wait "$sampler" || true
        answers=$(done_of "$out")
        cpu_runs[$s]+="$(us_per $(($(cpu_ticks "${pid[$s]}") - cpu0)) "$answers") "
        redis_runs[$s]+="$(us_per $(($(cpu_ticks "$redis_pid") - rcpu0)) "$answers") "
        q=$(qps_of "$out")
        codes[$s]=$(codes_of "$out")
        if [ "$s" = shared ]; then
          sleep 0.2 # the last batch of the run goes out
          read -r p0 v0 e0 d0 _ <<< "$before"
          read -r p1 v1 e1 d1 pend <<< "$(shared_metrics "${api[$s]}")"
          metric_rows+="| (b) run $r | $((p1 - p0)) | $((v1 - v0)) | $((e1 - e0)) | $((d1 - d0)) | $(cat "$out.batch") | $pend | $(lost_of "$out") |"$'\n'
        fi
        ;;
      three)
        resume_extra
        sleep 2 # the two extra engines catch up with the stream (read what (b) appended)
        declare -A before3=()
        for e in shared shared2 shared3; do before3[$e]=$(shared_metrics "${api[$e]}"); done
        cpu0=$(cpu_ticks "${pid[shared]}" "${pid[shared2]}" "${pid[shared3]}")
        rcpu0=$(cpu_ticks "$redis_pid")
        mid_sample "${api[shared2]}" "$out.batch" &
        sampler=$!
        profile=0
        if [ -n "$perf_dir" ] && [ "$r" = 1 ]; then profile=1; perf_start "${pid[shared2]}" three; fi
        dnsperf_run "$p_shared" 3 167 "$out.1" &
        d1=$!
        dnsperf_run "$p_shared2" 3 167 "$out.2" &
        d2=$!
        dnsperf_run "$p_shared3" 2 166 "$out.3"
        wait "$d1" "$d2" "$sampler" || true
        if [ "$profile" = 1 ]; then perf_stop; fi
        answers=$(($(done_of "$out.1") + $(done_of "$out.2") + $(done_of "$out.3")))
        cpu_runs[$s]+="$(us_per $(($(cpu_ticks "${pid[shared]}" "${pid[shared2]}" "${pid[shared3]}") - cpu0)) "$answers") "
        redis_runs[$s]+="$(us_per $(($(cpu_ticks "$redis_pid") - rcpu0)) "$answers") "
        q=$(awk -v a="$(qps_of "$out.1")" -v b="$(qps_of "$out.2")" -v c="$(qps_of "$out.3")" 'BEGIN { printf "%.2f", a + b + c }')
        codes[$s]=$(codes_of "$out.3")
        sleep 0.2
        for e in shared shared2 shared3; do
          read -r p0 v0 e0 d0 _ <<< "${before3[$e]}"
          read -r p1 v1 e1 d1x pend <<< "$(shared_metrics "${api[$e]}")"
          batch="-"
          [ "$e" = shared2 ] && batch=$(cat "$out.batch")
          metric_rows+="| (c) run $r, $e | $((p1 - p0)) | $((v1 - v0)) | $((e1 - e0)) | $((d1x - d0)) | $batch | $pend | - |"$'\n'
        done
        pause_extra
        ;;
    esac
    qps_runs[$s]+="${q:-0} "
  done
done

# spread "N N ...": "min max median" (the median of an even count: the mean of the middle two).
spread() {
  tr ' ' '\n' <<< "$1" | awk 'NF' | sort -g |
    awk 'BEGIN { OFMT = "%.6f" } { v[NR] = $1 } END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print v[1], v[NR], m }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "-"; else printf "%.2f\n", a / b }'; }
read -r _ _ local_qps <<< "$(spread "${qps_runs[local]}")"
echo
echo "| server | queries/s (median) | min - max | / (a) | all runs | engine CPU us/answer | Redis CPU us/answer |"
echo "|---|---|---|---|---|---|---|"
for s in "${servers[@]}"; do
  read -r qmin qmax qmed <<< "$(spread "${qps_runs[$s]}")"
  all=$(tr ' ' '\n' <<< "${qps_runs[$s]}" | awk 'NF { printf "%s%.0f", sep, $1; sep = ", " }')
  read -r _ _ cmed <<< "$(spread "${cpu_runs[$s]}")"
  read -r _ _ rmed <<< "$(spread "${redis_runs[$s]}")"
  printf '| %s | %.0f | %.0f - %.0f | %s | %s | %.2f | %.2f |\n' "${label[$s]}" "$qmed" "$qmin" "$qmax" "$(ratio "$qmed" "$local_qps")" "$all" "$cmed" "$rmed"
done
read -r _ _ shared_qps <<< "$(spread "${qps_runs[shared]}")"
echo
awk -v a="$local_qps" -v b="$shared_qps" 'BEGIN {
  d = (a - b) / a * 100
  printf "goal (shared counting within 10 %% of local counting): %s: (b) answers %.1f %% %s than (a) (medians)\n",
    d <= 10 ? "PASS" : "FAIL", d < 0 ? -d : d, d < 0 ? "more" : "fewer" }'
echo
echo "Answers in the last run (dnsperf's response codes; NOERROR: redirected, premium and velocity-terminated):"
for s in "${servers[@]}"; do echo "- ${label[$s]%%,*}: ${codes[$s]}"; done
echo
echo "Shared-counters metrics per run (from /metrics: differences over the run; batch_events half-way through it; pending after it):"
echo
echo "| run | published | received | errors | dropped | batch_events | pending | dnsperf lost |"
echo "|---|---|---|---|---|---|---|---|"
printf '%s' "$metric_rows"
echo
echo "Redis after the runs: stream bench:events $(rcli xlen bench:events) entries, used_memory $(rcli info memory | sed -n 's/^used_memory_human:\([^\r]*\).*/\1/p'), $(rcli info stats | sed -n 's/^total_commands_processed:\([0-9]*\).*/\1/p') commands processed"
echo
echo "Spot checks (kdig, before measuring):"
printf '%s' "$spot"
if [ -n "$perf_dir" ]; then
  profiled=(local shared)
  if [ "$three" = 1 ]; then profiled+=(three); fi
  for s in "${profiled[@]}"; do perf_reports "$s"; done
  echo
  echo "Profiles of the first run of (a), (b) and (c: engine shared2) (perf record -F 999 -g): $perf_dir/{$(IFS=,; echo "${profiled[*]}")}.perf.data, -top.txt, -children.txt"
fi
echo
echo "load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
