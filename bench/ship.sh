#!/usr/bin/env bash
# Shipper -> collector transport, side by side in one run: an engine's spool holding N records
# (filled by dnsperf while no collector answered) is shipped to a fresh SQLite collector with
# each [shipper] setting below; the table shows the rate (records/s from the engine's start to
# the last record stored) and the CPU seconds each process spent per 100,000 records.
#
# With TOLLGATE_BENCH_POSTGRES (an admin URL, e.g. postgres://tollgate:tollgate@127.0.0.1:5432/postgres)
# a second table compares one and two collectors writing into one PostgreSQL database.
#
# Usage: bench/ship.sh [queries, default 200000]
# Needs: dnsperf (Debian package), a release build (built here); psql for the PostgreSQL table.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-200000}
command -v dnsperf >/dev/null || { echo "missing dnsperf: apt-get install dnsperf" >&2; exit 1; }
cargo build --release -q -p tollgate
bin=$PWD/target/release/tollgate
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
cport=18480

wait_ready() { for _ in $(seq 1 200); do grep -q "tollgate ready" "$1" && return 0; sleep 0.1; done; cat "$1" >&2; return 1; }
cpu_secs() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat"; }
metric() { curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m {print $2}'; }

# The collector's state: initialised once (its ingest token), copied fresh for every run.
mkdir -p "$work/c0"
cat > "$work/c0/tollgate.toml" <<CFG
[node]
name = "collector"
state_dir = "STATE"
[api]
listen = "127.0.0.1:$cport"
CFG
sed "s|STATE|$work/c0/state|" "$work/c0/tollgate.toml" > "$work/c0/run.toml"
"$bin" --config "$work/c0/run.toml" --log error collector > "$work/c0/out" 2>&1 &
cpid=$!
wait_ready "$work/c0/out"
token=$("$bin" --config "$work/c0/run.toml" --log error token create bench --role ingest)
kill "$cpid"; wait "$cpid" 2>/dev/null || true

# The engine's spool: serve (demo policy) answers N queries while its collector is down.
mkdir -p "$work/e0"
engine_config() { # state_dir in_flight compression batch_records
  cat <<CFG
[node]
name = "engine-1"
state_dir = "$1"
[api]
listen = "127.0.0.1:0"
[enum]
listen_udp = ["127.0.0.1:15399"]
listen_tcp = ["127.0.0.1:15399"]
[shipper]
collector = "http://127.0.0.1:$cport"
token = "$token"
in_flight = $2
compression = "$3"
batch_records = $4
CFG
}
engine_config "$work/e0/state" 1 none 2000 > "$work/e0/tollgate.toml"
"$bin" --config "$work/e0/tollgate.toml" --log error serve > "$work/e0/out" 2>&1 &
epid=$!
wait_ready "$work/e0/out"
python3 - "$work/queries.txt" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    for i in range(10000):
        dst = "1212555%04d" % (i * 7 % 10000)
        f.write("%s.src-1312555%04d.e164.arpa. NAPTR\n" % (".".join(reversed(dst)), i))
PY
dnsperf -s 127.0.0.1 -p 15399 -d "$work/queries.txt" -n $((n / 10000)) -c 8 -T 1 -q 500 > "$work/dnsperf" 2>&1
eport=$(sed -n 's/.*api=http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$work/e0/out" | head -1)
written=$(metric "$eport" tollgate_spool_records_total)
kill "$epid"; wait "$epid" 2>/dev/null || true
rm -f "$work/e0/state/records.db"*

run() { # label in_flight compression batch_records
  local dir="$work/run"; rm -rf "$dir"; mkdir -p "$dir"
  cp -a "$work/c0/state" "$dir/cstate"
  cp -a "$work/e0/state" "$dir/estate"
  sed "s|STATE|$dir/cstate|" "$work/c0/tollgate.toml" > "$dir/c.toml"
  engine_config "$dir/estate" "$2" "$3" "$4" > "$dir/e.toml"
  "$bin" --config "$dir/c.toml" --log error collector > "$dir/cout" 2>&1 &
  local cpid=$!; pids+=("$cpid")
  wait_ready "$dir/cout"
  local start; start=$(date +%s.%N)
  "$bin" --config "$dir/e.toml" --log error engine > "$dir/eout" 2>&1 &
  local epid=$!; pids+=("$epid")
  while [ "$(metric $cport tollgate_collector_records_inserted_total)" != "$written" ]; do sleep 0.05; done
  local end; end=$(date +%s.%N)
  local ccpu ecpu; ccpu=$(cpu_secs "$cpid"); ecpu=$(cpu_secs "$epid")
  printf '| %s | %.0f | %.2f | %.2f |\n' "$1" "$(echo "$written / ($end - $start)" | bc -l)" \
    "$(echo "$ecpu * 100000 / $written" | bc -l)" "$(echo "$ccpu * 100000 / $written" | bc -l)"
  kill "$epid" "$cpid"; wait "$epid" "$cpid" 2>/dev/null || true
}

echo "$written records shipped from one engine's spool to a SQLite collector, $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(date -u +%Y-%m-%d)"
echo
echo "| [shipper] | records/s | engine CPU s per 100k | collector CPU s per 100k |"
echo "|---|---|---|---|"
run "in_flight 1, compression none, batch 2000 (before)" 1 none 2000
run "in_flight 2, compression none, batch 2000" 2 none 2000
run "in_flight 1, compression zstd, batch 2000" 1 zstd 2000
run "in_flight 2, compression zstd, batch 2000 (default)" 2 zstd 2000
run "in_flight 2, compression zstd, batch 5000" 2 zstd 5000
run "in_flight 4, compression zstd, batch 2000" 4 zstd 2000

[ -n "${TOLLGATE_BENCH_POSTGRES:-}" ] || exit 0

# One and two collectors on one PostgreSQL database (a fresh database per run).
pg_run() { # label collectors
  local dir="$work/pg"; rm -rf "$dir"; mkdir -p "$dir"
  local db="tollgate_ship_$$_$RANDOM"
  psql "$TOLLGATE_BENCH_POSTGRES" -q -c "CREATE DATABASE $db" >/dev/null
  local url="${TOLLGATE_BENCH_POSTGRES%/*}/$db"
  local urls="" cpids=() k
  for k in $(seq 1 "$2"); do
    cp -a "$work/c0/state" "$dir/c$k"
    cat > "$dir/c$k.toml" <<CFG
[node]
name = "collector-$k"
state_dir = "$dir/c$k"
[api]
listen = "127.0.0.1:$((cport + k))"
[collector]
store = "$url"
CFG
    "$bin" --config "$dir/c$k.toml" --log error collector > "$dir/c$k.out" 2>&1 &
    cpids+=($!); pids+=($!)
    wait_ready "$dir/c$k.out"
    urls="$urls\"http://127.0.0.1:$((cport + k))\", "
  done
  cp -a "$work/e0/state" "$dir/estate"
  engine_config "$dir/estate" 2 zstd 2000 | sed "s|^collector = .*|collectors = [${urls%, }]|" > "$dir/e.toml"
  local start; start=$(date +%s.%N)
  "$bin" --config "$dir/e.toml" --log error engine > "$dir/eout" 2>&1 &
  local epid=$!; pids+=("$epid")
  local sum=0
  while [ "$sum" != "$written" ]; do
    sleep 0.05; sum=0
    for k in $(seq 1 "$2"); do sum=$((sum + $(metric $((cport + k)) tollgate_collector_records_inserted_total))); done
  done
  local end; end=$(date +%s.%N)
  local each=""
  for k in $(seq 1 "$2"); do each="$each $(metric $((cport + k)) tollgate_collector_batches_total | cut -d. -f1)"; done
  printf '| %s | %.0f | %s |\n' "$1" "$(echo "$written / ($end - $start)" | bc -l)" "${each# }"
  kill "$epid" "${cpids[@]}"; wait "$epid" "${cpids[@]}" 2>/dev/null || true
  psql "$TOLLGATE_BENCH_POSTGRES" -q -c "DROP DATABASE $db" >/dev/null
}
echo
echo "| PostgreSQL, in_flight 2, zstd | records/s | batches per collector |"
echo "|---|---|---|"
pg_run "one collector" 1
pg_run "two collectors" 2
