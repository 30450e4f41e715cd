#!/usr/bin/env bash
# Collector ingest end to end: a spool pre-filled with N realistic ENUM records is shipped by the
# real shipper (a `tollgate engine` process that gets no queries, its [shipper] pointing at the
# collector) over HTTP to `tollgate collector` processes, durably (the collector acknowledges a
# batch once it is committed). Cases, one after the other on the same records:
#   sqlite      one collector on SQLite (its own file);
#   postgres    one collector on PostgreSQL (a database this script creates and drops);
#   postgres-2  two collectors on that same PostgreSQL database. When the binary accepts
#               `[shipper] collectors = [...]` one shipper lists both; otherwise two shippers run
#               at once, each with half of the spool and its own collector (the table says which).
# For each case: records/s twice, N over the time from starting the shipper until it counts every
# record acknowledged (raw rows durable), and until no collector holds rollup increments any more
# (`tollgate_store_pending_rollup_records` 0: rollups included), the store's growth on disk per million records, the collector's peak RSS,
# and the records stored, counted twice (rows of the raw table, and the Analytics total through
# the API): both must equal N, else the script exits 1 after printing the tables. Then each
# Analytics view over the 24 hours of records through the collector's API, the median of 11.
# Prints Markdown tables for docs/PERFORMANCE.md.
#
# The records (`tollgate generate records`): N ENUM queries over the 24 hours before the start of
# the run, 4 engines, 100,000 callers (log-uniform), 50,000 called numbers, as the store benchmark
# (crates/store/benches/store.rs) makes them.
#
# Usage: bench/ingest.sh [--records N] [--cases LIST] [--batch-records B] [--work DIR] [--no-build]
#   --records N         records per case (default 10000000; the spool of 10M takes about 4 GB,
#                       the SQLite store about as much again)
#   --cases LIST        comma-separated, of sqlite, postgres, postgres-2 (default: all three)
#   --batch-records B   [shipper] batch_records (default: the configuration's default)
#   --shipper LINE      one more line of the shippers' [shipper] table, e.g. 'compression = "none"'
#                       (repeatable; shown in the table's heading)
#   --work DIR          where spools and the SQLite store go (default: a new directory in $TMPDIR,
#                       removed on exit)
#   --perf DIR          also profile the (first) collector while it ingests: `perf record -g`
#                       into DIR/perf-CASE.data, and print its 15 hottest functions (self time);
#                       on PostgreSQL cases the whole machine, with CPU per process and
#                       PostgreSQL's 15 hottest functions
#   --no-build          use target/release/tollgate as it is
# Environment: TOLLGATE_BENCH_PG, a PostgreSQL server URL without the database (default
# postgres://tollgate:tollgate@127.0.0.1:5432, the role scripts/install-test-deps.sh makes; it
# needs CREATEDB); TOLLGATE_BIN, the binary to run (default: the release build, built here);
# BENCH_LOG, the processes' log level (default warn).
# Needs: curl, sqlite3, psql and pg_ctlcluster (postgresql, postgresql-client), awk; a release
# build (built here).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

records=10000000
cases=sqlite,postgres,postgres-2
batch=""
shipper_lines=()
work=""
build=1
perf_dir=""
while [ $# -gt 0 ]; do
  case $1 in
    --records) records=$2; shift 2 ;;
    --cases) cases=$2; shift 2 ;;
    --batch-records) batch=$2; shift 2 ;;
    --shipper) shipper_lines+=("$2"); shift 2 ;;
    --work) work=$2; shift 2 ;;
    --perf) perf_dir=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
[[ $records =~ ^[1-9][0-9]*$ ]] || die "--records must be a positive number (is $records)"
need curl awk sqlite3 -- "apt-get install curl sqlite3"
case ",$cases," in *,postgres*) need psql pg_ctlcluster -- "apt-get install postgresql postgresql-client" ;; esac
if [ -n "$perf_dir" ]; then need perf -- "apt-get install linux-perf"; mkdir -p "$perf_dir"; perf_dir=$(cd "$perf_dir" && pwd); fi
for c in ${cases//,/ }; do
  case $c in sqlite | postgres | postgres-2) ;; *) die "unknown case $c (sqlite, postgres, postgres-2)" ;; esac
done

bin=$(tollgate_bin "$build")
keep_work=1
if [ -z "$work" ]; then work=$(mktemp -d); keep_work=0; fi
mkdir -p "$work"
pg_server=${TOLLGATE_BENCH_PG:-postgres://tollgate:tollgate@127.0.0.1:5432}
pg_db=tollgate_bench_ingest_$$
pg_made=0
# psql: no NOTICEs (DROP DATABASE IF EXISTS of a database that is not there).
export PGOPTIONS="-c client_min_messages=warning"
perf_pid=""
cleanup() {
  if [ -n "$perf_pid" ]; then kill -INT "$perf_pid" 2>/dev/null || true; wait "$perf_pid" 2>/dev/null || true; fi
  bench_cleanup
  if [ "$pg_made" = 1 ]; then psql -q "$pg_server/postgres" -c "DROP DATABASE IF EXISTS $pg_db" >/dev/null 2>&1 || true; fi
  if [ "$keep_work" = 0 ]; then rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The records end at the start of this minute; every case gets the same ones.
end=$(date -u +%Y-%m-%dT%H:%M:00Z)
from=$(date -u -d "$end - 24 hours" +%Y-%m-%dT%H:%M:00Z)

# PostgreSQL: the cluster runs, and each case starts on an empty database.
pg_fresh() {
  pg_up "$pg_server"
  psql -q "$pg_server/postgres" -c "DROP DATABASE IF EXISTS $pg_db" >/dev/null
  psql -q "$pg_server/postgres" -c "CREATE DATABASE $pg_db" >/dev/null
  pg_made=1
}

# Does this binary take `[shipper] collectors = [...]` (several collectors)?
multi_collectors() {
  mkdir -p "$work/probe-config"
  printf '[shipper]\ncollectors = ["http://127.0.0.1:1", "http://127.0.0.1:2"]\n' >"$work/probe-config/tollgate.toml"
  "$bin" config check "$work/probe-config/tollgate.toml" >/dev/null 2>&1
}

collector_config() { # DIR NAME STORE_URL
  mkdir -p "$1"
  cat >"$1/tollgate.toml" <<CFG
[node]
name = "$2"
state_dir = "$1/state"
[api]
listen = "127.0.0.1:0"
[collector]
store = "$3"
CFG
}

shipper_config() { # DIR NAME TOKEN COLLECTOR_URL...
  local dir=$1 name=$2 token=$3; shift 3
  mkdir -p "$dir"
  {
    printf '[node]\nname = "%s"\nstate_dir = "%s/state"\n' "$name" "$dir"
    printf '[api]\nlisten = "127.0.0.1:0"\n'
    # An engine needs a listener; this one gets no queries.
    printf '[enum]\nlisten_udp = ["127.0.0.1:0"]\nlisten_tcp = []\n'
    printf '[spool]\nmax_disk_mb = 0\n'
    printf '[shipper]\ntoken = "%s"\n' "$token"
    if [ $# -eq 1 ]; then
      printf 'collector = "%s"\n' "$1"
    else
      printf 'collectors = [%s]\n' "$(printf '"%s", ' "$@" | sed 's/, $//')"
    fi
    if [ -n "$batch" ]; then printf 'batch_records = %s\n' "$batch"; fi
    if [ ${#shipper_lines[@]} -gt 0 ]; then printf '%s\n' "${shipper_lines[@]}"; fi
  } >"$dir/tollgate.toml"
}

store_bytes() { # STORE_URL
  case $1 in
    sqlite:*) local f=${1#sqlite:}; stat -c %s "$f" "$f-wal" "$f-shm" 2>/dev/null | awk '{ s += $1 } END { print s + 0 }' ;;
    postgres*) psql -qtA "$1" -c "SELECT pg_database_size(current_database())" ;;
  esac
}

raw_count() { # STORE_URL
  case $1 in
    sqlite:*) sqlite3 -readonly "${1#sqlite:}" "SELECT count(*) FROM enum_queries" ;;
    postgres*) psql -qtA "$1" -c "SELECT count(*) FROM enum_queries" ;;
  esac
}

# analytics API TOKEN VIEW GROUPING: the view over the records' 24 hours, as JSON.
analytics() {
  curl -sf --max-time 60 -G -H "Authorization: Bearer $2" "$1/api/v1/analytics" \
    --data-urlencode "dataset=ENUM" --data-urlencode "view=$3" --data-urlencode "grouping=$4" \
    --data-urlencode "device=All" --data-urlencode "from=$from" --data-urlencode "to=$end"
}

# view_ms API TOKEN VIEW GROUPING: the median of 11 requests (after one to warm up), ms.
view_ms() {
  analytics "$@" >/dev/null || die "analytics $3 / $4 failed"
  for _ in $(seq 1 11); do
    curl -sf -o /dev/null -w '%{time_total}\n' --max-time 60 -G -H "Authorization: Bearer $2" \
      "$1/api/v1/analytics" --data-urlencode "dataset=ENUM" --data-urlencode "view=$3" \
      --data-urlencode "grouping=$4" --data-urlencode "device=All" --data-urlencode "from=$from" \
      --data-urlencode "to=$end"
  done | median | awk '{ printf "%.1f", $1 * 1000 }'
}

ingest_rows=()
view_rows=()
failed=0

run_case() { # CASE
  local case=$1 dir=$work/$1 url n_coll=1 label
  rm -rf "$dir"; mkdir -p "$dir"
  case $case in
    sqlite) url="sqlite:$dir/c1/records.db"; label="SQLite" ;;
    postgres) pg_fresh; url="$pg_server/$pg_db"; label="PostgreSQL" ;;
    postgres-2) pg_fresh; url="$pg_server/$pg_db"; label="PostgreSQL"; n_coll=2 ;;
  esac
  echo "== $case: $records records" >&2

  local apis=() cpids=() i
  for i in $(seq 1 "$n_coll"); do
    collector_config "$dir/c$i" "collector-$i" "$url"
    # Every collector accepts the same tokens: the first one's user database.
    if [ "$i" -gt 1 ]; then mkdir -p "$dir/c$i/state"; cp "$dir/c1/state/users.json" "$dir/c$i/state/"; fi
    start_role "$dir/c$i" collector
    apis+=("$role_api"); cpids+=("$role_pid")
  done
  local token cli
  token=$(cat "$dir/c1/state/ingest-token")
  cli=$(cat "$dir/c1/state/cli-token")
  local base_bytes
  base_bytes=$(store_bytes "$url")

  # The shippers' spools, filled before the clock starts.
  local shippers=() how="one shipper"
  if [ "$n_coll" = 1 ]; then
    shippers=(s1)
    "$bin" --log warn generate records --count "$records" --end "$end" --spool "$dir/s1/state/spool" >/dev/null
    shipper_config "$dir/s1" shipper-1 "$token" "${apis[0]}"
  elif multi_collectors; then
    shippers=(s1)
    how="one shipper, [shipper] collectors = both"
    "$bin" --log warn generate records --count "$records" --end "$end" --spool "$dir/s1/state/spool" >/dev/null
    shipper_config "$dir/s1" shipper-1 "$token" "${apis[@]}"
  else
    shippers=(s1 s2)
    how="two shippers, half the spool each: no [shipper] collectors yet"
    for i in 1 2; do
      "$bin" --log warn generate records --count "$records" --part "$i/2" --end "$end" \
        --spool "$dir/s$i/state/spool" >/dev/null
      shipper_config "$dir/s$i" "shipper-$i" "$token" "${apis[$((i - 1))]}"
    done
  fi

  if [ -n "$perf_dir" ]; then
    # On PostgreSQL the server's backends do most of the work: profile the whole machine.
    local perf_on=(-p "${cpids[0]}")
    case $case in postgres*) perf_on=(-a) ;; esac
    perf record -q -g -F 499 "${perf_on[@]}" -o "$perf_dir/perf-$case.data" >/dev/null 2>&1 &
    perf_pid=$!
  fi
  local t0 t1 t2 s spis=() spids=()
  t0=$(now)
  for s in "${shippers[@]}"; do
    start_role "$dir/$s" engine
    spis+=("$role_api"); spids+=("$role_pid")
  done
  local shipped=0 last=-1 last_change stall=300
  last_change=$(now)
  while :; do
    shipped=0
    for s in "${spis[@]}"; do
      local v
      v=$(metric "$s" tollgate_shipper_records)
      shipped=$((shipped + ${v:-0}))
    done
    if [ "$shipped" -ge "$records" ]; then break; fi
    if [ "$shipped" != "$last" ]; then
      last=$shipped; last_change=$(now)
    elif awk -v a="$(now)" -v b="$last_change" -v s="$stall" 'BEGIN { exit !(a - b > s) }'; then
      for s in "${shippers[@]}"; do tail -n 20 "$dir/$s/out" >&2; done
      die "$case: no progress for $stall s at $shipped of $records records acknowledged"
    fi
    for p in "${spids[@]}"; do kill -0 "$p" 2>/dev/null || die "$case: a shipper exited (see $dir)"; done
    sleep 0.2
  done
  t1=$(now)
  # Rollups are written up to about a second after the raw rows a batch's acknowledgement
  # covers: the ingest counts as done once no collector holds rollup increments any more.
  local pending
  while :; do
    pending=0
    for a in "${apis[@]}"; do
      v=$(metric "$a" tollgate_store_pending_rollup_records)
      pending=$((pending + ${v:-0}))
    done
    [ "$pending" -eq 0 ] && break
    sleep 0.1
  done
  t2=$(now)
  for p in "${spids[@]}"; do stop_pid "$p"; done
  if [ -n "$perf_pid" ]; then
    kill -INT "$perf_pid" 2>/dev/null || true; wait "$perf_pid" 2>/dev/null || true; perf_pid=""
    case $case in
      postgres*)
        echo "$case: CPU by process (perf report -i $perf_dir/perf-$case.data --sort comm):" >&2
        perf report -q -i "$perf_dir/perf-$case.data" --no-children --sort comm --stdio 2>/dev/null |
          grep -E '^ +[0-9.]+%' | head -n 8 >&2 || true
        echo "$case: PostgreSQL's hottest functions (self time):" >&2
        perf report -q -i "$perf_dir/perf-$case.data" --comm postgres --no-children --sort symbol --stdio 2>/dev/null |
          grep -E '^ +[0-9.]+%' | sed -E 's/[[:space:]]+-[[:space:]]+-[[:space:]]*$//' | head -n 15 >&2 || true
        ;;
    esac
    # A whole-machine profile: the collector's threads among those of the shipper's process.
    local only=()
    case $case in postgres*) only=(--comm tollgate,pg-rollups) ;; esac
    echo "$case: the collector's hottest functions (self time; perf report -i $perf_dir/perf-$case.data):" >&2
    perf report -q -i "$perf_dir/perf-$case.data" "${only[@]}" --no-children --sort symbol --stdio 2>/dev/null |
      grep -E '^ +[0-9.]+%' | sed -E 's/[[:space:]]+-[[:space:]]+-[[:space:]]*$//' | head -n 15 >&2 || true
  fi

  local rss=() stored total bytes
  for p in "${cpids[@]}"; do rss+=("$(peak_rss_mib "$p")"); done
  stored=$(raw_count "$url")
  total=$(analytics "${apis[0]}" "$cli" "Average CPS" Minute | sed -n 's/.*"total":\([0-9]*\).*/\1/p' || true)
  [ -n "$total" ] || total="(no answer)"
  bytes=$(store_bytes "$url")
  local verdict="yes"
  if [ "$stored" != "$records" ] || [ "$total" != "$records" ]; then verdict="**NO**"; failed=1; fi
  ingest_rows+=("$(awk -v l="$label" -v c="$n_coll" -v h="$how" -v n="$records" -v t0="$t0" -v t1="$t1" -v t2="$t2" \
    -v b0="$base_bytes" -v b1="$bytes" -v r="$(IFS=/; echo "${rss[*]}")" -v st="$stored" -v tot="$total" -v ok="$verdict" \
    'BEGIN { s = t1 - t0; w = t2 - t0; printf "| %s | %d (%s) | %d | %.1f | %.0f | %.1f | %.0f | %.0f | %s | %d | %d | %s |", l, c, h, n, s, n / s, w, n / w, (b1 - b0) / n * 1e6 / 1048576, r, st, tot, ok }')")

  # The Analytics views, with the planner statistics the collector's maintenance keeps.
  case $url in
    sqlite:*) sqlite3 "${url#sqlite:}" "PRAGMA busy_timeout = 10000; PRAGMA analysis_limit = 1000; ANALYZE;" >/dev/null ;;
    postgres*) psql -q "$url" -c "SET client_min_messages = error" -c "ANALYZE" >/dev/null ;;
  esac
  local a=${apis[0]}
  view_rows+=("| $label, $n_coll collector(s) | $records | $(view_ms "$a" "$cli" "Top 10 Source" Hour) | $(view_ms "$a" "$cli" "Top 10 Source" Day) | $(view_ms "$a" "$cli" "Top 10 Destination" Day) | $(view_ms "$a" "$cli" "Average CPS" Minute) |")

  for p in "${cpids[@]}"; do stop_pid "$p"; done
  rm -rf "$dir"
}

for c in ${cases//,/ }; do run_case "$c"; done

echo
echo "bench/ingest.sh --records $records${batch:+ --batch-records $batch}$(printf " --shipper '%s'" "${shipper_lines[@]}" | sed "s/ --shipper ''$//"): $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%Y-%m-%d)"
echo
echo "| store | collectors | records | seconds to the last acknowledgement | records/s acknowledged (raw rows durable) | seconds until rollups written | records/s with rollups | store growth per 1M records (MiB) | collector peak RSS (MiB) | rows stored | Analytics total | all stored once |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${ingest_rows[@]}"
echo
echo "Analytics views over the 24 hours of records, All devices, through the API (curl), median of 11, ms:"
echo
echo "| store | records | Top 10 Source / Hour | Top 10 Source / Day | Top 10 Destination / Day | Average CPS / Minute |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${view_rows[@]}"
if [ "$failed" = 1 ]; then
  echo
  echo "FAILED: a case did not store exactly $records records" >&2
  exit 1
fi
