#!/usr/bin/env bash
# SIP messages per second from one large capture, side by side in one run on one core:
#   - tshark -q -z sip,stat (Wireshark's SIP dissector and statistics);
#   - tollgate probe --pcap --totals --json (parse, track dialogs, count).
# The capture is made here with SIPp (caller -> callee on loopback, ~6 messages per call) and
# tcpdump, and kept in target/bench/ for later runs. Memory: the peak RSS on a tenth of the
# file and on the whole file shows whether it stays flat.
#
# Usage: bench/probe-pcap.sh [calls, default 170000 (about 1M messages)]
# Needs: sip-tester, tcpdump, tshark, wireshark-common (editcap), root (tcpdump), a release
# build (built here).
set -euo pipefail
cd "$(dirname "$0")/.."
calls=${1:-170000}
for tool in sipp tcpdump tshark editcap capinfos taskset; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install sip-tester tcpdump tshark" >&2; exit 1; }
done
cargo build --release -q -p tollgate
bin=$PWD/target/release/tollgate
mkdir -p target/bench
pcap=target/bench/sip-$calls-calls.pcap
e2e=crates/tollgate/tests/e2e
caller=127.0.56.1
callee=127.0.56.2

if [ ! -s "$pcap" ]; then
  echo "making $pcap with SIPp ($calls calls) ..." >&2
  work=$(mktemp -d)
  sipp -sf "$e2e/uas.xml" -i $callee -p 5080 -mp 6600 -nostdin >/dev/null 2>&1 &
  uas=$!
  tcpdump -i lo -n -U --immediate-mode -B 262144 -s 0 -w "$pcap" "udp and host $caller and host $callee and port 5080" 2>"$work/tcpdump.log" &
  dump=$!
  until grep -q "listening on" "$work/tcpdump.log"; do sleep 0.1; done
  sipp -sf "$e2e/uac.xml" -s 4155550100 -key from 2125550001 -i $caller -p 5070 -mp 6700 \
    -r 2000 -l 5000 -m "$calls" -timeout 600 -nostdin $callee:5080 >/dev/null 2>&1 || echo "sipp: some calls failed (kept in the capture)" >&2
  sleep 1
  kill -INT $dump; wait $dump 2>/dev/null || true
  kill $uas 2>/dev/null; wait $uas 2>/dev/null || true
  grep -E "captured|dropped" "$work/tcpdump.log" >&2 || true
  rm -rf "$work"
fi
tenth=target/bench/sip-$calls-calls-tenth.pcap
frames=$(capinfos -M -c "$pcap" | awk -F': *' '/Number of packets/ {print $2}')
[ -s "$tenth" ] || editcap -r "$pcap" "$tenth" "1-$((frames / 10))" >/dev/null

measure() { # prints "seconds max_rss_kib" of a command run on CPU 0, output to $2
  local out=$1; shift
  /usr/bin/time -f "%e %M" -o "$out.time" taskset -c 0 "$@" >"$out" 2>/dev/null
  cat "$out.time"
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

read -r t_secs t_rss < <(measure "$work/tollgate.json" "$bin" --log error probe --pcap "$pcap" --totals --json)
messages=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["messages"])' "$work/tollgate.json")
read -r _ t_rss_tenth < <(measure "$work/tenth.json" "$bin" --log error probe --pcap "$tenth" --totals --json)
read -r w_secs w_rss < <(measure "$work/tshark.txt" tshark -r "$pcap" -q -z sip,stat)
w_messages=$(awk -F': ' '/Number of SIP messages/ {print $2}' "$work/tshark.txt")
read -r _ w_rss_tenth < <(measure "$work/tshark-tenth.txt" tshark -r "$tenth" -q -z sip,stat)

size=$(du -m "$pcap" | cut -f1)
echo
echo "$(basename "$pcap"): $frames frames, $size MiB; tollgate counted $messages SIP messages, tshark $w_messages; one core (taskset -c 0)"
echo
echo "| tool | seconds | SIP messages/s | peak RSS, tenth of the file (MiB) | peak RSS, whole file (MiB) |"
echo "|---|---|---|---|---|"
awk -v m="$messages" -v s="$w_secs" -v a="$w_rss_tenth" -v b="$w_rss" 'BEGIN { printf "| tshark -z sip,stat | %.2f | %.0f | %.0f | %.0f |\n", s, m / s, a / 1024, b / 1024 }'
awk -v m="$messages" -v s="$t_secs" -v a="$t_rss_tenth" -v b="$t_rss" 'BEGIN { printf "| tollgate probe --pcap | %.2f | %.0f | %.0f | %.0f |\n", s, m / s, a / 1024, b / 1024 }'
awk -v a="$w_secs" -v b="$t_secs" 'BEGIN { printf "\ntollgate / tshark speed: %.1fx\n", a / b }'
