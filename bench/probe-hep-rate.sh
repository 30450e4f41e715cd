#!/usr/bin/env bash
# HEP rate (issue 18): the highest rate of HEP3 packets over UDP that `tollgate probe` takes with
# zero socket drops and zero parse errors, and that it turns into exactly the calls sent.
#
# A release `tollgate probe --hep 127.0.0.1:PORT` (its UDP port read with recvmmsg, receive
# buffer `[probe] udp_receive_buffer_mb`, records spooled as in production) receives from
# crates/probe/examples/hep_sender.rs, which sends whole calls (INVITE, 100, 180, 200, ACK,
# BYE, 200; each call its own Call-ID, caller and callee) with sendmmsg at a paced rate. The
# rate steps up (default 50,000 to 400,000 packets/s, N seconds each; each step new calls);
# after each step the script waits until the probe's counters stop moving and prints, per step:
# packets sent, HEP packets the probe counted, socket drops (the kernel's count for the port),
# HEP decode errors, SIP messages that did not parse, calls sent and calls recorded. Then the
# highest rate the sender reached with zero drops, zero errors and every call recorded (a
# sender starved of CPU sends less than it was asked to: the table shows both), the kernel's
# net.core.rmem_max and the receive buffer the socket got (tollgate_probe_udp_receive_buffer_bytes).
# It stops after two steps in a row that lose packets. Per step also the probe's CPU time
# (user + system, from /proc) and that time per packet counted: the cost of a packet, which
# says what rate one core of its own would take, whatever share of a core the probe got.
#
# Sender and probe run on the same machine (say how many cores in the write-up): the sender's
# CPU is taken from the probe's. The whole measurement holds /tmp/tollgate-e2e.lock.
#
# With --perf DIR, `perf record -F 999 -g` runs on the probe during the first step at or above
# 200,000 packets/s and DIR/probe-top.txt gets perf report's first 40 entries (self time).
#
# Usage: bench/probe-hep-rate.sh [--secs N (default 10)] [--rates "50000 100000 ..."]
#        [--buffer-mb MB (default 32)] [--perf DIR]
# Port: $BENCH_HEP_PORT (default 9467) for HEP, the API on an ephemeral port.
# Binaries: $TOLLGATE_BIN (else the release build, built here), $HEP_SENDER_BIN (else the
# hep_sender example's release build, built here).
# Needs: curl, flock; for --perf, linux-perf.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
usage() { echo "usage: $0 [--secs N] [--rates \"R1 R2 ...\"] [--buffer-mb MB] [--perf DIR]" >&2; exit 2; }
secs=10
rates="50000 100000 150000 200000 250000 300000 400000"
buffer_mb=32
perf_dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --secs) [ $# -ge 2 ] || usage; secs=$2; shift 2 ;;
    --rates) [ $# -ge 2 ] || usage; rates=$2; shift 2 ;;
    --buffer-mb) [ $# -ge 2 ] || usage; buffer_mb=$2; shift 2 ;;
    --perf) [ $# -ge 2 ] || usage; perf_dir=$2; shift 2 ;;
    -h | --help) usage ;;
    *) echo "unknown argument $1" >&2; usage ;;
  esac
done
[[ $secs =~ ^[1-9][0-9]*$ ]] || die "--secs must be a positive integer, not '$secs'"
[[ $buffer_mb =~ ^[1-9][0-9]*$ ]] || die "--buffer-mb must be a positive integer, not '$buffer_mb'"
for r in $rates; do [[ $r =~ ^[1-9][0-9]*$ ]] || die "--rates: '$r' is not a positive integer"; done
port=${BENCH_HEP_PORT:-9467}
[[ $port =~ ^[1-9][0-9]*$ ]] && [ "$port" -le 65535 ] || die "BENCH_HEP_PORT must be a port number, not '$port'"
need curl flock -- "apt-get install curl util-linux"
if [ -n "$perf_dir" ]; then
  need perf -- "apt-get install linux-perf"
  mkdir -p "$perf_dir"
  perf_dir=$(cd "$perf_dir" && pwd)
fi
bin=$(tollgate_bin 1)
if [ -n "${HEP_SENDER_BIN:-}" ]; then
  sender=$HEP_SENDER_BIN
else
  cargo build --release -q -p tollgate-probe --example hep_sender
  sender=$PWD/target/release/examples/hep_sender
fi
[ -x "$sender" ] || die "no HEP sender at $sender"
work=$(mktemp -d)
cleanup() { bench_cleanup; rm -rf "$work"; }
trap cleanup EXIT

cat >"$work/tollgate.toml" <<CFG
[node]
name = "hep-bench"
state_dir = "$work/state"
[api]
listen = "127.0.0.1:0"
[probe]
device = "hep-bench"
hep_udp = ["127.0.0.1:$port"]
hep_tcp = []
udp_receive_buffer_mb = $buffer_mb
CFG
"$bin" config check "$work/tollgate.toml" >/dev/null || die "the bench configuration does not pass config check"

exec 9>/tmp/tollgate-e2e.lock
echo "waiting for /tmp/tollgate-e2e.lock ..." >&2
flock 9

start_role "$work" probe
probe_pid=$role_pid
api=$role_api

# counters: prints "hep socket_drops hep_errors malformed calls" from the probe's metrics.
counters() {
  local m
  m=$(curl -sf --max-time 10 "$api/metrics")
  awk '
    $1 == "tollgate_probe_hep_packets_total" { h = $2 }
    $1 == "tollgate_probe_socket_drops_total" { d = $2 }
    $1 == "tollgate_probe_hep_errors_total" { e = $2 }
    $1 == "tollgate_probe_sip_malformed_total" { m = $2 }
    $1 == "tollgate_probe_calls_total" { c = $2 }
    END { printf "%d %d %d %d %d\n", h, d, e, m, c }' <<<"$m"
}
# cpu_ticks PID: user + system CPU time of a process, clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# settle: waits until the probe's counters are the same twice 1.5 s apart (the socket-drop
# count is refreshed every second), then prints them.
settle() {
  local a b
  a=$(counters)
  while :; do
    sleep 1.5
    b=$(counters)
    [ "$a" = "$b" ] && break
    a=$b
  done
  echo "$b"
}

rows=()
best=0
first_call=0
bad_in_row=0
profiled=0
read -r h0 d0 e0 m0 c0 < <(settle)
hz=$(getconf CLK_TCK)
for rate in $rates; do
  t0=$(cpu_ticks "$probe_pid")
  perf_pid=""
  if [ -n "$perf_dir" ] && [ "$profiled" = 0 ] && [ "$rate" -ge 200000 ]; then
    perf record -F 999 -g -p "$probe_pid" -o "$perf_dir/probe.perf.data" -- sleep "$secs" >/dev/null 2>&1 &
    perf_pid=$!
    profiled=1
  fi
  out=$("$sender" --to "127.0.0.1:$port" --rate "$rate" --secs "$secs" --first-call "$first_call" --run "b$$")
  [ -n "$perf_pid" ] && wait "$perf_pid" 2>/dev/null || true
  sent=$(sed -n 's/.*sent=\([0-9]*\).*/\1/p' <<<"$out")
  calls=$(sed -n 's/.*calls=\([0-9]*\).*/\1/p' <<<"$out")
  achieved=$(sed -n 's/.* rate=\([0-9]*\).*/\1/p' <<<"$out")
  send_errors=$(sed -n 's/.*send_errors=\([0-9]*\).*/\1/p' <<<"$out")
  first_call=$((first_call + calls))
  read -r h1 d1 e1 m1 c1 < <(settle)
  t1=$(cpu_ticks "$probe_pid")
  # The probe's CPU time for the step, and per packet it counted (µs): what one core would
  # take at full speed, whatever share of a core the probe got.
  cpu=$(awk -v t=$((t1 - t0)) -v hz="$hz" 'BEGIN { printf "%.2f", t / hz }')
  per_packet=$(awk -v c="$cpu" -v n=$((h1 - h0)) 'BEGIN { if (n) printf "%.2f", c * 1e6 / n; else print "-" }')
  hep=$((h1 - h0)) drops=$((d1 - d0)) errors=$((e1 - e0)) malformed=$((m1 - m0)) recorded=$((c1 - c0))
  h0=$h1 d0=$d1 e0=$e1 m0=$m1 c0=$c1
  ok=no
  if [ "$drops" = 0 ] && [ "$errors" = 0 ] && [ "$malformed" = 0 ] && [ "$hep" = "$sent" ] && [ "$recorded" = "$calls" ] && [ "$send_errors" = 0 ]; then
    ok=yes
    # The rate the sender reached, not the one asked of it (a starved sender falls short).
    [ "$achieved" -gt "$best" ] && best=$achieved
    bad_in_row=0
  else
    bad_in_row=$((bad_in_row + 1))
  fi
  row="| $rate | $achieved | $sent | $hep | $drops | $errors | $malformed | $calls | $recorded | $cpu | $per_packet | $ok |"
  echo "$row" >&2
  rows+=("$row")
  [ "$bad_in_row" -ge 2 ] && break
done

buffer=$(metric "$api" tollgate_probe_udp_receive_buffer_bytes)
rmem=$(cat /proc/sys/net/core/rmem_max)
cores=$(nproc)
stop_pid "$probe_pid"

echo
echo "HEP3/UDP to tollgate probe, $secs s per step, sender and probe on the same machine ($cores cores, $(uname -r)); $(date -u +%Y-%m-%d)"
echo
echo "| offered packets/s | sent packets/s | packets sent | HEP counted | socket drops | HEP errors | SIP malformed | calls sent | calls recorded | probe CPU s | probe CPU µs/packet | all counted |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "highest rate sent with zero drops, zero parse errors and every call recorded: $best packets/s"
echo "net.core.rmem_max: $rmem bytes; udp_receive_buffer_mb = $buffer_mb; the socket got $buffer bytes (SO_RCVBUF as read back, twice the grant)"
if [ -n "$perf_dir" ] && [ -s "$perf_dir/probe.perf.data" ]; then
  perf report -i "$perf_dir/probe.perf.data" --no-children --sort dso,sym -g none --stdio 2>/dev/null |
    grep -v '^#' | grep -v '^$' | head -40 >"$perf_dir/probe-top.txt" || true
  echo "profile: $perf_dir/probe-top.txt"
fi
