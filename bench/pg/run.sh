#!/usr/bin/env bash
# PostgreSQL <-> PostgreSQL: duplex (logical capture) against pglogical 2.4, with the anchors
# harness (../shared/anchors/bench.py, next to this repository), in one run on the same clusters.
#
#   bench/pg/run.sh [--tools pglogical,duplex] [--tests LIST] [--no-outage45] [--keep]
#
# 1. installs what is missing (scripts/install-deps.sh --pg-bench: postgresql-15, pglogical,
#    psycopg2), builds build/release/duplex when duplex is measured;
# 2. starts two throwaway clusters A and B on free ports with scripts/pg-cluster.sh (data under
#    $PGBENCH_WORK, default /tmp/duplex-pgbench; shared_preload_libraries=pglogical,
#    track_commit_timestamp=on, ...: the anchors' settings, see SETTINGS below);
# 3. pglogical: databases plg_a/plg_b with the anchors' schema.sql + seed.sql, pglogical-setup.sh,
#    bench.py (the default tests, then the 45 s outage), then the pglogical setup is torn down;
# 4. duplex: fresh databases dpx_a/dpx_b seeded the same way, a config with two postgres endpoints
#    (capture = "logical"), `duplex run` in the background, wait until its initial load is done,
#    bench.py (same tests, B stopped and started with pg-cluster.sh), then duplex is stopped;
# 5. writes $OUT (default build/pgbench): pglogical.json, duplex.json, table.md (bench/pg/table.py),
#    machine.txt, and the logs.
# --tests overrides bench.py's test list; --no-outage45 skips the extra 45 s outage; --keep leaves
# the clusters running (stop them with scripts/pg-cluster.sh stop $PGBENCH_WORK/a, .../b).
# ANCHORS=/path/to/anchors overrides where the harness is looked for. Variants for duplex (not the
# default measurement): DUPLEX_CAPTURE=trigger, DUPLEX_IDENTITY_FULL=1 (REPLICA IDENTITY FULL on
# duplex's tables), DUPLEX_ENGINE_TOML='poll_interval_ms = 1' (extra [engine] lines); for both tools,
# PGBENCH_PG_SETTINGS='wal_writer_delay=10ms ...' (extra server settings).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

tools=pglogical,duplex
tests=latency,bulk10k,bulk100k,concurrent,fieldmerge,parentchild,outage
outage45=1
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --tools) tools=$2; shift 2 ;;
    --tests) tests=$2; shift 2 ;;
    --no-outage45) outage45=0; shift ;;
    --keep) keep=1; shift ;;
    *) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
done
WORK=${PGBENCH_WORK:-/tmp/duplex-pgbench}
OUT=${OUT:-$ROOT/build/pgbench}
PY=/usr/bin/python3   # Debian's python3, which has python3-psycopg2 (a pyenv python may not)
CLUSTER=$ROOT/scripts/pg-cluster.sh
log() { printf '\n\033[1m== %s  (%s)\033[0m\n' "$*" "$(date -u +%T)"; }

# The anchors live in ../shared/anchors beside the repository; from a git worktree, beside the
# main checkout.
anchors=""
for cand in "${ANCHORS:-}" "$ROOT/../shared/anchors" \
  "$(git rev-parse --path-format=absolute --git-common-dir 2>/dev/null)/../../shared/anchors"; do
  if [ -n "$cand" ] && [ -f "$cand/bench.py" ] && [ -f "$cand/schema.sql" ]; then
    anchors=$(cd "$cand" && pwd)
    break
  fi
done
[ -n "$anchors" ] || { echo "run.sh: ../shared/anchors not found (set ANCHORS=)" >&2; exit 1; }

scripts/install-deps.sh --pg-bench
if [[ ",$tools," == *,duplex,* ]]; then
  log "building build/release/duplex"
  cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DDUPLEX_TESTS=OFF >/dev/null
  cmake --build build/release -j2 --target duplex >&2
fi

free_ports() {
  $PY -c 'import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))'
}

as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# The anchors' server settings (anchors/clusters.sh), on scripts/pg-cluster.sh's defaults.
SETTINGS=(shared_preload_libraries=pglogical track_commit_timestamp=on max_worker_processes=16
  "pglogical.conflict_resolution='last_update_wins'" pglogical.conflict_log_level=LOG
  shared_buffers=256MB)
# A PostgreSQL 15.19+ Debian build has output_plugin_libraries (CVE-2026-6471), which refuses
# pglogical_output unless listed. Only set it where the server knows the parameter.
if as_pg "${PG_BIN:-/usr/lib/postgresql/15/bin}/postgres" --describe-config 2>/dev/null |
  grep -q '^output_plugin_libraries'; then
  SETTINGS+=("output_plugin_libraries='pgoutput, test_decoding, pglogical_output'")
fi
# PGBENCH_PG_SETTINGS="name=value ..." adds server settings (a variant, e.g. wal_writer_delay=10ms).
read -r -a extra_settings <<<"${PGBENCH_PG_SETTINGS:-}"
SETTINGS+=("${extra_settings[@]}")

duplex_pid=""
cleanup() {
  if [ -n "$duplex_pid" ] && kill -0 "$duplex_pid" 2>/dev/null; then
    kill -TERM "$duplex_pid" 2>/dev/null || true
    wait "$duplex_pid" 2>/dev/null || true
  fi
  mkdir -p "$OUT/logs"
  for side in a b; do
    cp "$WORK/$side/log/postgresql.log" "$OUT/logs/postgresql-$side.log" 2>/dev/null || true
  done
  cp "$WORK/duplex/duplex.log" "$OUT/logs/duplex.log" 2>/dev/null || true
  if [ "$keep" = 0 ]; then
    "$CLUSTER" stop "$WORK/a" immediate >/dev/null 2>&1 || true
    "$CLUSTER" stop "$WORK/b" immediate >/dev/null 2>&1 || true
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

# A fresh start: stop what an earlier run may have left, then two new clusters.
for side in a b; do
  [ -f "$WORK/$side/PG_VERSION" ] && "$CLUSTER" stop "$WORK/$side" immediate >/dev/null 2>&1 || true
done
rm -rf "$WORK" "$OUT"
mkdir -p "$WORK" "$OUT"
chmod 755 "$WORK"
read -r PA PB < <(free_ports)
log "clusters A on port $PA and B on port $PB (in $WORK)"
"$CLUSTER" start "$WORK/a" "$PA" "${SETTINGS[@]}"
"$CLUSTER" start "$WORK/b" "$PB" "${SETTINGS[@]}"

{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "source: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src include CMakeLists.txt || echo ' (modified)')"
  echo "command: bench/pg/run.sh --tools $tools --tests $tests$([ $outage45 = 1 ] || echo ' --no-outage45')"
  echo "duplex variant: capture=${DUPLEX_CAPTURE:-logical} identity_full=${DUPLEX_IDENTITY_FULL:-0} engine='${DUPLEX_ENGINE_TOML:-}'"
  echo "server settings: ${SETTINGS[*]}"
  echo "cpus: $(nproc), $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
  echo "ram: $(free -g | awk '/^Mem:/ {print $2}') GiB"
  echo "kernel: $(uname -r)"
  echo "postgresql: $(psql -X -Atc 'SELECT version()' "postgresql://postgres@127.0.0.1:$PA/postgres")"
  echo "pglogical: $(dpkg-query -W -f='${Version}' postgresql-15-pglogical 2>/dev/null)"
  echo "psycopg2: $($PY -c 'import psycopg2; print(psycopg2.__version__)')"
  echo "anchors: $anchors"
  echo "loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/machine.txt"
cat "$OUT/machine.txt"

psql_a() { psql -X -q -v ON_ERROR_STOP=1 "postgresql://postgres@127.0.0.1:$PA/$1" "${@:2}"; }
psql_b() { psql -X -q -v ON_ERROR_STOP=1 "postgresql://postgres@127.0.0.1:$PB/$1" "${@:2}"; }

# Creates database $1 on A and $2 on B, each with the anchors' tables and 100k seeded customers.
seed() {
  psql_a postgres -c "CREATE DATABASE $1"
  psql_b postgres -c "CREATE DATABASE $2"
  psql_a "$1" -f "$anchors/schema.sql" -f "$anchors/seed.sql"
  psql_b "$2" -f "$anchors/schema.sql" -f "$anchors/seed.sql"
}

# bench.py TOOL DB_A DB_B LOG_A LOG_B REGEX: the test list, then (unless --no-outage45) a 45 s
# outage of B, into $OUT/TOOL.json.
run_harness() {
  local tool=$1 da=$2 db=$3 regex=$6
  local common=(--tool "$tool"
    --a "host=127.0.0.1 port=$PA dbname=$da user=postgres"
    --b "host=127.0.0.1 port=$PB dbname=$db user=postgres"
    --out "$OUT/$tool.json"
    --stop-b "$CLUSTER stop $WORK/b fast" --start-b "$CLUSTER start $WORK/b"
    --log-file "$4" --conflict-regex "$regex")
  if [ -n "$5" ]; then common+=(--log-file "$5"); fi
  local rc=0
  $PY "$anchors/bench.py" "${common[@]}" --tests "$tests" || rc=$?
  if [ $rc = 0 ] && [ "$outage45" = 1 ]; then
    $PY "$anchors/bench.py" "${common[@]}" --tests outage --down-s 45 --result-suffix _45s || rc=$?
  fi
  return $rc
}

if [[ ",$tools," == *,pglogical,* ]]; then
  log "pglogical: seeding plg_a / plg_b"
  seed plg_a plg_b
  bench/pg/pglogical-setup.sh "$PA" plg_a "$PB" plg_b
  log "pglogical: bench.py"
  t0=$(date +%s)
  if ! run_harness pglogical plg_a plg_b "$WORK/a/log/postgresql.log" "$WORK/b/log/postgresql.log" \
    '(CONFLICT): remote'; then
    echo "bench.py failed for pglogical" >&2
  fi
  echo "pglogical: $(($(date +%s) - t0)) s"
  # Remove pglogical's subscriptions and slots, so its walsenders and apply workers do not run
  # (or decode WAL) while duplex is measured. The clusters keep the library preloaded.
  bench/pg/pglogical-setup.sh --teardown "$PA" plg_a "$PB" plg_b
fi

if [[ ",$tools," == *,duplex,* ]]; then
  log "duplex: seeding dpx_a / dpx_b"
  seed dpx_a dpx_b
  if [ "${DUPLEX_IDENTITY_FULL:-0}" = 1 ]; then
    for x in "psql_a dpx_a" "psql_b dpx_b"; do
      set -- $x
      $1 "$2" -c "ALTER TABLE customers REPLICA IDENTITY FULL" \
        -c "ALTER TABLE orders REPLICA IDENTITY FULL"
    done
  fi
  mkdir -p "$WORK/duplex"
  cat >"$WORK/duplex/duplex.toml" <<TOML
# Written by bench/pg/run.sh: the anchors' two tables, PG <-> PG, logical capture.
[engine]
state = "state.db"
${DUPLEX_ENGINE_TOML:-}

[endpoints.a]
type = "postgres"
dsn = "postgresql://postgres@127.0.0.1:$PA/dpx_a"
schema = "public"
capture = "${DUPLEX_CAPTURE:-logical}"

[endpoints.b]
type = "postgres"
dsn = "postgresql://postgres@127.0.0.1:$PB/dpx_b"
schema = "public"
capture = "${DUPLEX_CAPTURE:-logical}"

[collections.customers]
key = ["id"]
policy = "lww"
endpoints.a = { table = "customers" }
endpoints.b = { table = "customers" }

[collections.orders]
key = ["id"]
policy = "lww"
endpoints.a = { table = "orders" }
endpoints.b = { table = "orders" }
TOML
  cp "$WORK/duplex/duplex.toml" "$OUT/duplex.toml"
  duplex=$ROOT/build/release/duplex
  rc=0
  "$duplex" check --config "$WORK/duplex/duplex.toml" >"$OUT/duplex-check.txt" 2>&1 || rc=$?
  cat "$OUT/duplex-check.txt"
  if [ $rc != 0 ]; then
    echo "duplex check failed (exit $rc): duplex not measured" >&2
    echo "{\"tool\": \"duplex\", \"error\": \"duplex check exited $rc: $(tail -n 1 "$OUT/duplex-check.txt" | sed 's/["\\]/ /g')\"}" >"$OUT/duplex.json"
  else
    log "duplex: run (initial load of 100k customers on both sides)"
    "$duplex" run --config "$WORK/duplex/duplex.toml" --log-level info >"$WORK/duplex/duplex.log" 2>&1 &
    duplex_pid=$!
    # Ready when the initial load has matched every seeded customer and nothing is pending.
    t0=$(date +%s)
    ready=0
    while [ $(($(date +%s) - t0)) -lt 900 ]; do
      kill -0 "$duplex_pid" 2>/dev/null || break
      if "$duplex" status --config "$WORK/duplex/duplex.toml" --json 2>/dev/null | $PY -c '
import json, sys
s = json.load(sys.stdin)
recs = {c["name"]: c["records"] for c in s["collections"]}
idle = s["journal_backlog"] == 0 and all(
    e["apply_backlog"] == 0 and e["capture_backlog"] in (0, None) for e in s["endpoints"])
sys.exit(0 if recs.get("customers", 0) >= 100000 and idle else 1)'; then
        ready=1
        break
      fi
      sleep 1
    done
    echo "duplex ready=$ready after $(($(date +%s) - t0)) s"
    if [ $ready = 0 ]; then
      echo "duplex did not finish its initial load; last log lines:" >&2
      tail -n 20 "$WORK/duplex/duplex.log" >&2
      echo "{\"tool\": \"duplex\", \"error\": \"initial load not finished (see logs/duplex.log)\"}" >"$OUT/duplex.json"
    else
      echo "initial_load_s: $(($(date +%s) - t0))" >>"$OUT/machine.txt"
      log "duplex: bench.py"
      t0=$(date +%s)
      # One line per field conflict the resolver decided: "conflict id=N collection=... policy=..."
      if ! run_harness duplex dpx_a dpx_b "$WORK/duplex/duplex.log" "" \
        'conflict id=[0-9]+ collection=\S+ key=\S+ field=\S+ policy='; then
        echo "bench.py failed for duplex; last log lines:" >&2
        tail -n 20 "$WORK/duplex/duplex.log" >&2
      fi
      echo "duplex: $(($(date +%s) - t0)) s"
    fi
    if kill -0 "$duplex_pid" 2>/dev/null; then
      kill -TERM "$duplex_pid"
      wait "$duplex_pid" || echo "duplex exited with $?" >&2
    else
      wait "$duplex_pid" || echo "duplex had exited with $? before the end" >&2
    fi
    duplex_pid=""
  fi
fi

echo "loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"
$PY bench/pg/table.py "$OUT" >"$OUT/table.md"
log "results in $OUT"
cat "$OUT/table.md"
