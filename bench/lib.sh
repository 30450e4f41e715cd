# Helpers shared by the end-to-end benchmarks (bench/ingest.sh, bench/enum-ingest-e2e.sh);
# sourced, not run. The caller sets `bin` (the tollgate binary) and `work` (a temp dir), and
# calls `bench_cleanup` from its EXIT trap: every process started with `start_role` is killed
# (by its pid) and waited for.

bench_pids=()

# die MESSAGE: print to stderr and exit 1.
die() { echo "$(basename "$0"): $*" >&2; exit 1; }

# need TOOL... (the last argument may be an install hint after --): fail when a tool is missing.
need() {
  local hint="" tools=()
  while [ $# -gt 0 ]; do
    if [ "$1" = "--" ]; then hint=$2; break; fi
    tools+=("$1"); shift
  done
  for t in "${tools[@]}"; do
    command -v "$t" >/dev/null || die "missing $t${hint:+ ($hint)}"
  done
}

# now: seconds since the epoch, with nanoseconds.
now() { date +%s.%N; }

# tollgate_bin BUILD: prints the tollgate binary to run: $TOLLGATE_BIN when set, else the release
# build (built first when BUILD is 1). Exits when it is not there.
tollgate_bin() {
  local bin
  if [ -n "${TOLLGATE_BIN:-}" ]; then
    bin=$TOLLGATE_BIN
  else
    if [ "$1" = 1 ]; then cargo build --release -q -p tollgate >&2; fi
    bin=$PWD/target/release/tollgate
  fi
  [ -x "$bin" ] || die "no $bin (run without --no-build)"
  echo "$bin"
}

# start_role DIR ROLE [ARGS...]: runs `tollgate --config DIR/tollgate.toml ROLE ARGS` in the
# background (output in DIR/out), waits for its ready line (60 s at most; a process that dies
# or never gets ready fails the benchmark with its log), and sets `role_pid` and `role_api`
# (the API's base URL from the ready line).
start_role() {
  local dir=$1 role=$2; shift 2
  "$bin" --config "$dir/tollgate.toml" --log "${BENCH_LOG:-warn}" "$role" "$@" >"$dir/out" 2>&1 &
  role_pid=$!
  bench_pids+=("$role_pid")
  local i
  for i in $(seq 1 600); do
    if grep -q "tollgate ready" "$dir/out"; then break; fi
    if ! kill -0 "$role_pid" 2>/dev/null; then
      cat "$dir/out" >&2
      die "tollgate $role ($dir) exited before it was ready"
    fi
    sleep 0.1
  done
  grep -q "tollgate ready" "$dir/out" || { cat "$dir/out" >&2; die "tollgate $role ($dir) not ready after 60 s"; }
  role_api=$(sed -n 's/.*tollgate ready.* api=\(http[^ ]*\).*/\1/p' "$dir/out" | head -n 1)
  [ -n "$role_api" ] || { cat "$dir/out" >&2; die "no api= in the ready line of $dir/out"; }
}

# stop_pid PID: SIGTERM, then wait for it (a graceful stop).
stop_pid() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# metric API NAME: the sum of the samples of metric NAME (any labels; the OpenMetrics
# `_total` suffix of counters accepted), or nothing when the metric is not exported.
metric() {
  curl -sf --max-time 10 "$1/metrics" | awk -v m="$2" '
    $1 == m || $1 == m "_total" || index($1, m "{") == 1 || index($1, m "_total{") == 1 { s += $NF; seen = 1 }
    END { if (seen) printf "%.0f\n", s }'
}

# peak_rss_mib PID: the process's peak resident set (VmHWM), MiB.
peak_rss_mib() {
  awk '/^VmHWM:/ { printf "%.0f\n", $2 / 1024 }' "/proc/$1/status"
}

# median: the median of the numbers on standard input, one a line.
median() {
  sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'
}

# pg_up SERVER_URL: makes sure PostgreSQL answers at SERVER_URL/postgres, starting the first
# cluster (pg_ctlcluster) if it does not.
pg_up() {
  psql -q "$1/postgres" -c "SELECT 1" >/dev/null 2>&1 && return 0
  need pg_ctlcluster pg_lsclusters -- "apt-get install postgresql"
  local cluster
  cluster=$(pg_lsclusters --no-header | awk 'NR == 1 { print $1 " " $2 }')
  [ -n "$cluster" ] || die "no PostgreSQL cluster (scripts/install-test-deps.sh makes one)"
  # shellcheck disable=SC2086
  pg_ctlcluster $cluster start
  psql -q "$1/postgres" -c "SELECT 1" >/dev/null || die "cannot connect to $1/postgres"
}

# bench_cleanup: kills every process start_role started (by pid), then waits for them.
bench_cleanup() {
  local p
  for p in "${bench_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${bench_pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
