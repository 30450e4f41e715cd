#!/usr/bin/env bash
# SIP redirect rate (issue 19): INVITEs answered per second by one `tollgate engine`'s SIP
# redirect server, beside the same engine's ENUM rate, in one run.
#
# The engine (release build) has a demo-like policy: callees +1900... terminated to the
# intercept, +1718... redirected, the rest allowed; every answer is a 302 (allow -> the
# Request-URI, redirect -> the new target, intercept -> the intercept URI). SIPp is the client
# (UDP, one socket): INVITE, expect the 302, ACK; its numbers come from an injection file of
# 30,000 distinct callees (a third each: allowed, redirected, intercepted) and as many distinct
# callers, read in sequence. SIPp offers each rate (`-r`, default 1000 2000 5000 10000 20000
# calls/s) for the given seconds; the table shows, per rate: the rate SIPp achieved in sending
# (its own CallRate), the INVITEs answered per second (SIPp's successful calls over its elapsed
# time), SIPp's failed calls and retransmissions, the repeated INVITEs the engine answered from
# its retransmission window (tollgate_sip_redirect_retransmissions), the records it spooled in
# that step beside the calls placed (more records than calls: retransmissions that came after
# their answer had left the window, `retransmission_entries`, and were decided again), and the
# engine's CPU and SIPp's (utime + stime over wall time; 100 % = one core), and the datagrams the
# kernel dropped for a full receive buffer meanwhile (RcvbufErrors of /proc/net/snmp, any socket:
# SIPp's or the engine's; in brackets those at the engine's SIP sockets, from `ss -m`). Then the highest
# offered rate with zero failed calls and zero retransmissions, and the ENUM rate of the same
# engine: dnsperf (-c 8 -T 1 -q 500, unthrottled) asking NAPTR for the same 30,000 callees with
# the caller in the query-name label (`...src-<digits>.e164.arpa.`).
#
# SIPp, dnsperf and the engine share this machine's cores: at high rates SIPp itself may be the
# limit (its achieved rate falls below the offered one); the table says so rather than hiding it.
#
# Usage: bench/sip-redirect-rate.sh [--rates "R1 R2 ..."] [--no-build] [seconds per rate, default 10]
#   e.g. bench/sip-redirect-rate.sh 10;  bench/sip-redirect-rate.sh --rates "500 1000" 5
# Ports: three UDP ports from $BENCH_PORT_BASE (default 5492): ENUM, SIP (engine), SIPp.
# Binary: $TOLLGATE_BIN, else target/release/tollgate (built here unless --no-build).
# Needs: sipp (sip-tester), dnsperf, bc, curl, python3, time (Debian packages).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
usage() { echo "usage: $0 [--rates \"R1 R2 ...\"] [--no-build] [seconds per rate, default 10]" >&2; exit 2; }
secs=10
rates="1000 2000 5000 10000 20000"
build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --rates) [ $# -ge 2 ] || usage; rates=$2; shift 2 ;;
    --rates=*) rates=${1#--rates=}; shift ;;
    --no-build) build=0; shift ;;
    -h | --help) usage ;;
    -*) echo "unknown option $1" >&2; usage ;;
    *) secs=$1; shift ;;
  esac
done
[[ $secs =~ ^[1-9][0-9]*$ ]] || die "seconds per rate must be a positive integer, not '$secs'"
for r in $rates; do [[ $r =~ ^[1-9][0-9]*$ ]] || die "--rates: '$r' is not a positive integer"; done
[ -n "$rates" ] || die "--rates: no rate given"
base=${BENCH_PORT_BASE:-5492}
[[ $base =~ ^[1-9][0-9]*$ ]] && [ "$base" -le 65533 ] || die "BENCH_PORT_BASE must be a port number up to 65533, not '$base'"
p_enum=$base p_sip=$((base + 1)) p_sipp=$((base + 2))
need sipp -- "apt-get install sip-tester"
need dnsperf bc curl python3 /usr/bin/time -- "apt-get install dnsperf bc curl python3 time"
bin=$(tollgate_bin "$build")
work=$(mktemp -d)
cleanup() { bench_cleanup; rm -rf "$work"; }
trap cleanup EXIT

# The policy, and the engine with its SIP redirect server.
cat > "$work/policy.toml" <<'POLICY'
schema = 1
name = "sip-bench"

[[rule]]
name = "robocaller"
source = "+13125550666"
action = "terminate"
cause = 603

[[rule]]
name = "premium-intercept"
destination = "+1900*"
action = "terminate"

[[rule]]
name = "reroute"
destination = "+1718*"
action = "redirect"
target = "+12125550199"
POLICY
mkdir -p "$work/engine"
cat > "$work/engine/tollgate.toml" <<CFG
[node]
name = "sip-bench"
state_dir = "$work/engine/state"
[api]
listen = "127.0.0.1:0"
[enum]
listen_udp = ["127.0.0.1:$p_enum"]
listen_tcp = ["127.0.0.1:$p_enum"]
[enum.intercepts]
default = "sip:intercept@127.0.0.1:5090"
[sip_redirect]
listen_udp = ["127.0.0.1:$p_sip"]
[[sip_redirect.clients]]
name = "sipp"
addresses = ["127.0.0.0/8"]
[sip_redirect.answers]
allow = { kind = "redirect", code = 302, contact = "{ruri}" }
redirect = { kind = "redirect", code = 302, contact = "sip:{target}@127.0.0.1:5080" }
terminate = { kind = "redirect", code = 302, contact = "{intercept}" }
reject = { kind = "final" }
[probe]
hep_udp = []
hep_tcp = []
CFG
start_role "$work/engine" engine
engine_pid=$role_pid
engine_api=$role_api
"$bin" --config "$work/engine/tollgate.toml" --log error policy install "$work/policy.toml" --api "$engine_api" > /dev/null

# 30,000 distinct callees (a third each: allowed, redirected, intercepted), distinct callers;
# the SIPp injection file and dnsperf's query file ask for the same calls.
python3 - "$work" <<'PY'
import sys
d = sys.argv[1]
with open(f"{d}/calls.csv", "w") as calls, open(f"{d}/queries.txt", "w") as queries:
    calls.write("SEQUENTIAL\n")
    for i in range(10_000):
        caller = f"+1617{i:07d}"
        for callee in (f"+1415{i:07d}", f"+1718{i:07d}", f"+1900{i:07d}"):
            calls.write(f"{caller};{callee};\n")
            name = ".".join(reversed(callee.lstrip("+"))) + ".src-" + caller.lstrip("+") + ".e164.arpa."
            queries.write(f"{name} NAPTR\n")
PY

# The UAC: INVITE, the 302, ACK (the ACK of a non-2xx answer: same branch, the answer's To tag).
cat > "$work/uac-302.xml" <<'XML'
<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="tollgate SIP redirect bench">
  <send retrans="500">
    <![CDATA[

      INVITE sip:[field1]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[field0]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[field1]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:[field0]@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="302" timeout="5000"/>
  <send>
    <![CDATA[

      ACK sip:[field1]@[remote_ip]:[remote_port] SIP/2.0
      [last_Via:]
      From: <sip:[field0]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
</scenario>
XML

# One call by hand first: the engine must answer 302 (else the configuration is wrong and every
# rate below would only measure failures).
sipp -sf "$work/uac-302.xml" -inf "$work/calls.csv" -m 1 -i 127.0.0.1 -p "$p_sipp" \
  -timeout 15 -timeout_error -nostdin -trace_err -error_file "$work/check-errors.log" \
  "127.0.0.1:$p_sip" > "$work/check.out" 2>&1 ||
  { cat "$work/check-errors.log" "$work/engine/out" >&2 2>/dev/null; die "the engine did not answer a test INVITE with 302"; }

clk=$(getconf CLK_TCK)
# cpu_ticks PID: utime + stime of the process, clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# column FILE NAME: the value of column NAME in the last line of SIPp's statistics file.
column() {
  awk -F';' -v n="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == n) c = i } END { print (c ? $c : "") }' "$1"
}
# epoch FIELD: the epoch seconds at the end of a SIPp time field ("date time epoch").
epoch() { awk '{ print $NF }' <<< "$1"; }
records() { metric "$engine_api" tollgate_spool_records || echo 0; }
# udp_drops: datagrams the kernel dropped for a full socket receive buffer (every UDP socket).
udp_drops() { awk '$1 == "Udp:" && !h { for (i = 1; i <= NF; i++) c[$i] = i; h = 1; next } $1 == "Udp:" { print $c["RcvbufErrors"] }' /proc/net/snmp; }
# engine_drops: of those, the drops at the engine's SIP sockets (ss's skmem "d" counter, summed).
engine_drops() {
  ss -Huam src "127.0.0.1:$p_sip" | { grep -o 'skmem:([^)]*)' || true; } | sed -n 's/.*,d\([0-9]*\))$/\1/p' | awk '{ s += $1 } END { print s + 0 }'
}
repeats() { metric "$engine_api" tollgate_sip_redirect_retransmissions || echo 0; }

echo "load average before the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "SIPp $(sipp -v 2>/dev/null | awk '/SIPp v/ { sub(/[.]$/, "", $2); print $2; exit }'), UDP, INVITE -> 302 -> ACK, $secs s per rate; $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(date -u +%Y-%m-%d)"
echo
echo "| offered calls/s | SIPp sent calls/s | answered/s | failed calls | SIPp retransmissions | engine: repeats answered from the window | records spooled (calls) | engine CPU | SIPp CPU | UDP buffer drops (at the engine) |"
echo "|---|---|---|---|---|---|---|---|---|---|"
best=""
for rate in $rates; do
  calls=$((rate * secs))
  stats="$work/stats-$rate.csv"
  rec0=$(records)
  rep0=$(repeats)
  drop0=$(udp_drops)
  edrop0=$(engine_drops)
  t0=$(cpu_ticks "$engine_pid")
  w0=$(now)
  /usr/bin/time -f "%U %S" -o "$work/sipp-cpu-$rate" \
    sipp -sf "$work/uac-302.xml" -inf "$work/calls.csv" -m "$calls" -r "$rate" -l "$((rate * 2))" \
    -i 127.0.0.1 -p "$p_sipp" -timeout "$((secs * 3 + 30))" -nostdin \
    -trace_stat -stf "$stats" -fd 1 -trace_err -error_file "$work/errors-$rate.log" \
    "127.0.0.1:$p_sip" > "$work/sipp-$rate.out" 2>&1 || true
  w1=$(now)
  t1=$(cpu_ticks "$engine_pid")
  # The last records may still be on their way to the spool: wait for them (at most 10 s).
  for _ in $(seq 1 50); do [ "$(records)" -ge "$((rec0 + calls))" ] && break; sleep 0.2; done
  rec1=$(records)
  rep1=$(repeats)
  drop1=$(udp_drops)
  edrop1=$(engine_drops)
  ok=$(column "$stats" "SuccessfulCall(C)")
  failed=$(column "$stats" "FailedCall(C)")
  retrans=$(column "$stats" "Retransmissions(C)")
  sent_rate=$(column "$stats" "CallRate(C)")
  elapsed=$(echo "$(epoch "$(column "$stats" "CurrentTime")") - $(epoch "$(column "$stats" "StartTime")")" | bc -l)
  answered=$(awk -v n="${ok:-0}" -v e="$elapsed" 'BEGIN { if (e > 0) printf "%.0f", n / e; else print 0 }')
  cpu=$(awk -v t="$((t1 - t0))" -v c="$clk" -v w="$(echo "$w1 - $w0" | bc -l)" 'BEGIN { printf "%.0f %%", 100 * t / c / w }')
  sipp_cpu=$(awk -v w="$(echo "$w1 - $w0" | bc -l)" 'NF == 2 && $1 ~ /^[0-9.]+$/ { printf "%.0f %%", 100 * ($1 + $2) / w; found = 1 } END { if (!found) print "?" }' "$work/sipp-cpu-$rate")
  printf '| %s | %.0f | %s | %s | %s | %s | %s (%s) | %s | %s | %s |\n' "$rate" "${sent_rate:-0}" "$answered" "${failed:-?}" "${retrans:-?}" \
    "$((rep1 - rep0))" "$((rec1 - rec0))" "$calls" "$cpu" "$sipp_cpu" "$((drop1 - drop0)) ($((edrop1 - edrop0)))"
  if [ "${failed:-1}" = 0 ] && [ "${retrans:-1}" = 0 ] && [ "${ok:-0}" = "$calls" ]; then best=$rate; fi
done
echo
if [ -n "$best" ]; then
  echo "highest offered rate with every call answered, no failure and no retransmission: $best calls/s"
else
  echo "no offered rate had every call answered without failures or retransmissions"
fi

# The same engine over ENUM.
q0=$(cpu_ticks "$engine_pid")
w0=$(now)
out=$(dnsperf -s 127.0.0.1 -p "$p_enum" -d "$work/queries.txt" -l "$secs" -c 8 -T 1 -q 500 2>&1)
w1=$(now)
q1=$(cpu_ticks "$engine_pid")
qps=$(echo "$out" | sed -n 's/.*Queries per second: *\([0-9.]*\).*/\1/p')
lost=$(echo "$out" | sed -n 's/.*Queries lost: *\([0-9]*\).*/\1/p')
cpu=$(awk -v t="$((q1 - q0))" -v c="$clk" -v w="$(echo "$w1 - $w0" | bc -l)" 'BEGIN { printf "%.0f %%", 100 * t / c / w }')
echo
echo "ENUM, the same engine and callees: dnsperf -c 8 -T 1 -q 500 -l $secs (unthrottled): $(printf '%.0f' "${qps:-0}") queries/s, ${lost:-?} lost, engine CPU $cpu"
echo "peak resident set of the engine: $(peak_rss_mib "$engine_pid") MiB"
echo "load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
