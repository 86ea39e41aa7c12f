#!/usr/bin/env bash
# `duplex reconcile` on two PostgreSQL tables of ROWS rows (default 1M) on one throwaway cluster
# (issue 15, part 1): the time, the rows and bytes read and the rows repaired, when the tables
# agree and when DIFF rows (default 100) were changed behind duplex's back.
#
#   bench/reconcile.sh [BUILD_DIR]     (default build/release; ROWS=, DIFF=, CAPTURE=, PORT= in env)
#
# 1. starts a cluster with scripts/pg-cluster.sh (data under $WORK, default /tmp/duplex-rcbench);
# 2. makes databases ra and rb, each with items(id int primary key, name text, qty int) holding
#    the same ROWS rows, and a config with two postgres endpoints (capture $CAPTURE, default
#    logical); `duplex run --until-idle` does the initial load;
# 3. `duplex reconcile --dry-run --json` while they agree (timed);
# 4. DIFF rows changed on rb with capture off (logical: the table out of duplex's publication;
#    trigger: session_replication_role = replica): DIFF/2 updated, DIFF/4 deleted, DIFF/4 inserted;
# 5. `duplex reconcile --dry-run --json`, then `duplex reconcile --json` (timed), then a dry run
#    again (must find nothing).
# Prints each run's wall time, peak RSS and the JSON's per-collection numbers (rows compared,
# range digests, rows read, bytes: digests at 24 bytes each plus the JSON text of the rows read).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build/release}
DUPLEX=$BUILD/duplex
ROWS=${ROWS:-1000000}
DIFF=${DIFF:-100}
CAPTURE=${CAPTURE:-logical}
PORT=${PORT:-55991}
WORK=${WORK:-/tmp/duplex-rcbench}
[ -x "$DUPLEX" ] || { echo "no $DUPLEX (build it: cmake --build $BUILD --target duplex)" >&2; exit 2; }

rm -rf "$WORK"
mkdir -p "$WORK"
chmod 777 "$WORK"
"$ROOT/scripts/pg-cluster.sh" start "$WORK/pg" "$PORT" >/dev/null
trap '"$ROOT/scripts/pg-cluster.sh" stop "$WORK/pg" >/dev/null 2>&1 || true' EXIT
DSN_BASE="postgresql://postgres@127.0.0.1:$PORT"
psql_() { psql -X -q -v ON_ERROR_STOP=1 "$DSN_BASE/$1" -c "$2"; }
for db in ra rb; do
  psql_ postgres "CREATE DATABASE $db"
  psql_ $db "CREATE TABLE items(id int PRIMARY KEY, name text, qty int);
             INSERT INTO items SELECT i, 'name ' || i, i % 1000 FROM generate_series(1, $ROWS) i"
  psql_ $db "VACUUM ANALYZE items"
done
cat >"$WORK/duplex.toml" <<TOML
[engine]
state = "$WORK/state.db"

[endpoints.a]
type = "postgres"
dsn = "$DSN_BASE/ra"
capture = "$CAPTURE"

[endpoints.b]
type = "postgres"
dsn = "$DSN_BASE/rb"
capture = "$CAPTURE"

[collections.item]
key = ["id"]
endpoints.a = { table = "items" }
endpoints.b = { table = "items" }
TOML

timed() {  # timed LABEL ARGS...: runs duplex, prints wall time and peak RSS, keeps the JSON
  local label=$1
  shift
  local start end code=0
  start=$(date +%s.%N)
  /usr/bin/time -f "%M" -o "$WORK/$label.rss" "$DUPLEX" "$@" --config "$WORK/duplex.toml" \
    >"$WORK/$label.json" 2>"$WORK/$label.log" || code=$?
  end=$(date +%s.%N)
  printf '%-22s exit %d  %6.2f s  peak RSS %6d KiB  ' "$label" "$code" \
    "$(echo "$end - $start" | bc)" "$(tail -1 "$WORK/$label.rss")"
  if [ -s "$WORK/$label.json" ] && [ "${label%load}" = "$label" ]; then
    python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
for c in j["collections"]:
    print("rows compared %d, digests %d (differing %d), rows read %d, bytes %d, records differing %d%s" % (
        c["rows_compared"], c["ranges_compared"], c["ranges_differing"], c["rows_read"], c["bytes"],
        c["records_differing"], ", repaired %d" % j["repaired"] if "repaired" in j else ""))
' "$WORK/$label.json"
  else
    echo
  fi
}

timed initial-load run --until-idle
timed agree-dry-run reconcile --dry-run --json
half=$((DIFF / 2))
quarter=$((DIFF / 4))
drift="UPDATE items SET name = name || ' fixed' WHERE id % ($ROWS / $half) = 0 AND id <= $ROWS;
       DELETE FROM items WHERE id IN (SELECT i * ($ROWS / $quarter) - 1 FROM generate_series(1, $quarter) i);
       INSERT INTO items SELECT $ROWS + i, 'extra ' || i, 0 FROM generate_series(1, $quarter) i"
if [ "$CAPTURE" = trigger ]; then
  psql_ rb "SET session_replication_role = replica; $drift"
else
  pub=$(psql -X -A -t "$DSN_BASE/rb" -c "SELECT pubname FROM pg_publication")
  psql_ rb "ALTER PUBLICATION $pub DROP TABLE items"
  psql_ rb "$drift"
  psql_ rb "ALTER PUBLICATION $pub ADD TABLE items"
fi
timed differ-dry-run reconcile --dry-run --json
timed differ-repair reconcile --json
timed after-dry-run reconcile --dry-run --json
echo "logs and JSON in $WORK"
