#!/usr/bin/env bash
# Every answered query stored exactly once, end to end, under load: a `tollgate engine` process
# (demo policy, UDP on loopback) answers dnsperf at a fixed rate (default 20,000 queries/s for
# 5 minutes) over many distinct numbers, and ships its records over HTTP to a `tollgate
# collector` process on the same machine (SQLite, or PostgreSQL with --store postgres).
# Every second the engine's metrics are sampled: the backlog the shipper reports
# (tollgate_shipper_backlog_bytes, and tollgate_shipper_backlog_records when the binary exports
# it) and the records not yet acknowledged by the collector, counted from the counters
# (tollgate_spool_records - tollgate_shipper_records). When dnsperf is done the script waits
# until the engine's spool has drained (every record written acknowledged), then counts what
# the collector stored (rows of the raw table, and the Analytics total through the API) and
# compares it with what the engine answered (tollgate_enum_queries) and what dnsperf saw
# answered ("Queries completed"). Stored must equal answered exactly: the script prints both
# and exits 1 if they differ (or if records were refused or not written). Also: the collector's
# rate, the records answered over the time from the first query until the spool drained.
# Prints Markdown.
#
# Usage: bench/enum-ingest-e2e.sh [--seconds S] [--qps Q] [--numbers N] [--store KIND] [--no-build]
#   --seconds S   how long dnsperf sends (default 300)
#   --qps Q       dnsperf's rate, -Q (default 20000)
#   --numbers N   distinct called numbers in the query file (default 200000); a quarter of
#                 the queries also carry a calling number (src- label), 10,000 distinct
#   --store KIND  sqlite (default) or postgres (a database made and dropped here; server URL
#                 from TOLLGATE_BENCH_PG, default postgres://tollgate:tollgate@127.0.0.1:5432)
#   --drain S     longest wait for the backlog to drain after dnsperf ends (default 900)
#   --no-build    use target/release/tollgate as it is
# Environment: TOLLGATE_BIN, the binary to run (default: the release build, built here);
# BENCH_LOG, the processes' log level (default warn).
# Needs: dnsperf, curl, bc, sqlite3 (psql for postgres), awk; a release build (built here).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

secs=300
qps=20000
numbers=200000
store=sqlite
drain=900
build=1
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) secs=$2; shift 2 ;;
    --qps) qps=$2; shift 2 ;;
    --numbers) numbers=$2; shift 2 ;;
    --store) store=$2; shift 2 ;;
    --drain) drain=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
for v in secs qps numbers drain; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "--${v/secs/seconds} must be a positive number (is ${!v})"
done
[ "$numbers" -le 10000000 ] || die "--numbers is at most 10000000"
need dnsperf -- "apt-get install dnsperf"
need curl awk bc sqlite3 -- "apt-get install curl bc sqlite3"
case $store in
  sqlite) ;;
  postgres) need psql -- "apt-get install postgresql-client" ;;
  *) die "--store is sqlite or postgres (is $store)" ;;
esac

bin=$(tollgate_bin "$build")
work=$(mktemp -d)
pg_server=${TOLLGATE_BENCH_PG:-postgres://tollgate:tollgate@127.0.0.1:5432}
pg_db=tollgate_bench_e2e_$$
pg_made=0
export PGOPTIONS="-c client_min_messages=warning"
sampler=""
cleanup() {
  if [ -n "$sampler" ]; then kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true; fi
  bench_cleanup
  if [ "$pg_made" = 1 ]; then psql -q "$pg_server/postgres" -c "DROP DATABASE IF EXISTS $pg_db" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Queries: called numbers +1646xxxxxxx (distinct, reversed into ENUM names), and every fourth
# with a calling number +1415555xxxx in a src- label.
awk -v n="$numbers" 'BEGIN {
  for (i = 0; i < n; i++) {
    num = sprintf("1646%07d", (i * 7919) % 10000000); name = ""
    for (j = length(num); j >= 1; j--) name = name substr(num, j, 1) "."
    if (i % 4 == 3) name = name sprintf("src-1415555%04d.", i % 10000)
    print name "e164.arpa. NAPTR"
  }
}' >"$work/queries.txt"

case $store in
  sqlite) url="sqlite:$work/collector/records.db" ;;
  postgres)
    pg_up "$pg_server"
    psql -q "$pg_server/postgres" -c "CREATE DATABASE $pg_db" >/dev/null || die "cannot create a database at $pg_server"
    pg_made=1
    url="$pg_server/$pg_db"
    ;;
esac
mkdir -p "$work/collector" "$work/engine"
cat >"$work/collector/tollgate.toml" <<CFG
[node]
name = "collector-1"
state_dir = "$work/collector/state"
[api]
listen = "127.0.0.1:0"
[collector]
store = "$url"
CFG
start_role "$work/collector" collector
collector_api=$role_api
token=$(cat "$work/collector/state/ingest-token")
cli=$(cat "$work/collector/state/cli-token")

cat >"$work/engine/tollgate.toml" <<CFG
[node]
name = "engine-1"
state_dir = "$work/engine/state"
[api]
listen = "127.0.0.1:0"
[enum]
listen_udp = ["127.0.0.1:0"]
listen_tcp = []
[shipper]
collector = "$collector_api"
token = "$token"
CFG
start_role "$work/engine" engine
engine_api=$role_api
engine_pid=$role_pid
udp=$(sed -n 's/.*tollgate ready.* enum_udp=\([^ ,]*\).*/\1/p' "$work/engine/out" | head -n 1)
[ -n "$udp" ] || die "no enum_udp= in the engine's ready line"

# One sample a second: time, backlog bytes (shipper), backlog records (shipper, if exported),
# records written, records acknowledged.
sample() {
  while :; do
    local m
    m=$(curl -sf --max-time 2 "$engine_api/metrics" || true)
    printf '%s\n' "$m" | awk -v t="$(date +%s)" '
      function add(name, v) { if ($1 == name || $1 == name "_total" || index($1, name "{") == 1 || index($1, name "_total{") == 1) { s[name] += v; seen[name] = 1 } }
      { add("tollgate_shipper_backlog_bytes", $NF); add("tollgate_shipper_backlog_records", $NF)
        add("tollgate_spool_records", $NF); add("tollgate_shipper_records", $NF) }
      END { if (!seen["tollgate_spool_records"]) exit
            printf "%s %d %s %d %d\n", t, s["tollgate_shipper_backlog_bytes"],
              seen["tollgate_shipper_backlog_records"] ? s["tollgate_shipper_backlog_records"] : "-",
              s["tollgate_spool_records"], s["tollgate_shipper_records"] }' >>"$work/samples"
    sleep 1
  done
}
sample &
sampler=$!

echo "dnsperf -Q $qps -l $secs against $udp ..." >&2
t_start=$(date -u +%Y-%m-%dT%H:%M:%SZ)
t_begin=$(now)
dnsperf -s "${udp%:*}" -p "${udp##*:}" -d "$work/queries.txt" -l "$secs" -Q "$qps" -c 8 -T 1 -q 2000 >"$work/dnsperf.out" 2>&1 ||
  { cat "$work/dnsperf.out" >&2; die "dnsperf failed"; }
t_sent=$(now)
sent=$(sed -n 's/.*Queries sent: *\([0-9]*\).*/\1/p' "$work/dnsperf.out")
completed=$(sed -n 's/.*Queries completed: *\([0-9]*\).*/\1/p' "$work/dnsperf.out")
lost=$(sed -n 's/.*Queries lost: *\([0-9]*\).*/\1/p' "$work/dnsperf.out")
achieved=$(sed -n 's/.*Queries per second: *\([0-9.]*\).*/\1/p' "$work/dnsperf.out")

# Drained: the answers have stopped, and every record written is acknowledged.
echo "waiting for the spool to drain ..." >&2
prev=""
while :; do
  answered=$(metric "$engine_api" tollgate_enum_queries)
  written=$(metric "$engine_api" tollgate_spool_records)
  acked=$(metric "$engine_api" tollgate_shipper_records)
  if [ "${written:-x}" = "${acked:-y}" ] && [ "$prev" = "$answered/$written" ]; then break; fi
  prev="$answered/$written"
  if awk -v a="$(now)" -v b="$t_sent" -v d="$drain" 'BEGIN { exit !(a - b > d) }'; then
    tail -n 20 "$work/engine/out" >&2
    die "the backlog did not drain within $drain s: $written records written, $acked acknowledged"
  fi
  sleep 1
done
t_drained=$(now)
kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true; sampler=""
refused=$(metric "$engine_api" tollgate_spool_refused)
not_written=$(metric "$engine_api" tollgate_records_not_written)
dropped=$(metric "$engine_api" tollgate_enum_dropped)
engine_rss=$(peak_rss_mib "$engine_pid")
stop_pid "$engine_pid"

stored=$(case $url in
  sqlite:*) sqlite3 -readonly "${url#sqlite:}" "SELECT count(*) FROM enum_queries" ;;
  postgres*) psql -qtA "$url" -c "SELECT count(*) FROM enum_queries" ;;
esac)
t_end=$(date -u -d "+1 hour" +%Y-%m-%dT%H:00:00Z)
t_from=$(date -u -d "$t_start - 1 hour" +%Y-%m-%dT%H:00:00Z)
total=$(curl -sf --max-time 60 -G -H "Authorization: Bearer $cli" "$collector_api/api/v1/analytics" \
  --data-urlencode dataset=ENUM --data-urlencode "view=Average CPS" --data-urlencode grouping=Minute \
  --data-urlencode device=All --data-urlencode "from=$t_from" --data-urlencode "to=$t_end" |
  sed -n 's/.*"total":\([0-9]*\).*/\1/p' || true)
[ -n "$total" ] || total="(no answer)"

read -r max_bytes max_records max_unacked < <(awk '
  { if ($2 > b) b = $2; if ($3 != "-") { r_seen = 1; if ($3 > r) r = $3 }; u = $4 - $5; if (u > m) m = u }
  END { printf "%d %s %d\n", b, r_seen ? r : "-", m }' "$work/samples")
samples=$(wc -l <"$work/samples")

echo
echo "bench/enum-ingest-e2e.sh --seconds $secs --qps $qps --numbers $numbers --store $store: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%Y-%m-%d)"
echo
echo "| dnsperf sent | dnsperf completed | dnsperf lost | achieved queries/s | engine answered | records written | records stored (rows) | Analytics total | stored = answered | collector records/s (first query to drained) |"
echo "|---|---|---|---|---|---|---|---|---|---|"
ok=yes
if [ "$stored" != "$answered" ] || [ "$total" != "$answered" ] || [ "${refused:-0}" != 0 ] || [ "${not_written:-0}" != 0 ]; then ok="**NO**"; fi
printf '| %s | %s | %s | %.0f | %s | %s | %s | %s | %s | %.0f |\n' "$sent" "$completed" "$lost" "$achieved" "$answered" "$written" "$stored" "$total" "$ok" \
  "$(echo "$answered / ($t_drained - $t_begin)" | bc -l)"
echo
echo "| max backlog, records (counters: written - acknowledged) | max tollgate_shipper_backlog_bytes | max tollgate_shipper_backlog_records | drain after dnsperf ended (s) | spool refused | records not written | packets dropped | engine peak RSS (MiB) | samples |"
echo "|---|---|---|---|---|---|---|---|---|"
printf '| %s | %s | %s | %.1f | %s | %s | %s | %s | %s |\n' "$max_unacked" "$max_bytes" "$max_records" \
  "$(echo "$t_drained - $t_sent" | bc -l)" "${refused:-0}" "${not_written:-0}" "${dropped:-0}" "$engine_rss" "$samples"
if [ "$ok" != yes ]; then
  echo
  echo "FAILED: the engine answered $answered queries; the collector stored $stored (Analytics total $total); spool refused ${refused:-0}, not written ${not_written:-0}" >&2
  exit 1
fi
