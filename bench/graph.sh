#!/usr/bin/env bash
# Related rows, SQLite to SQLite (issue 5): CUSTOMERS customers with ORDERS orders each, one
# application transaction per customer, written on A while duplex is stopped; then
# `duplex run --until-idle` carries them to B. Reports the wall time and rows/s of that run, with
# key_mode = "shared" (ids copied) and "mapped" (B generates its own ids, duplex keeps the key
# map and translates every order's customer_id). Both files declare the foreign key, so the
# planner orders every transaction and SQLite checks it on duplex's writes.
# Usage: bench/graph.sh            (CUSTOMERS=10000 ORDERS=10 by default; needs the sqlite3 CLI)
set -euo pipefail
cd "$(dirname "$0")/.."
customers=${CUSTOMERS:-10000}
per=${ORDERS:-10}
bin="$PWD/$(scripts/build.sh release | tail -1)/duplex"
rows=$((customers * (per + 1)))
printf '%-8s %10s %10s %12s %10s\n' mode rows seconds rows/s orphans
for mode in shared mapped; do
  dir=$(mktemp -d)
  for db in a b; do
    sqlite3 "$dir/$db.db" "PRAGMA journal_mode=WAL;
      CREATE TABLE customer(id INTEGER PRIMARY KEY, name TEXT NOT NULL);
      CREATE TABLE orders(id INTEGER PRIMARY KEY,
        customer_id INTEGER NOT NULL REFERENCES customer(id), total INTEGER);" >/dev/null
  done
  {
    printf '[engine]\nstate = "state.db"\n\n'
    for db in a b; do printf '[endpoints.%s]\ntype = "sqlite"\npath = "%s.db"\n\n' "$db" "$db"; done
    for c in orders customer; do
      printf '[collections.%s]\nkey = ["id"]\nkey_mode = "%s"\n' "$c" "$mode"
      printf 'endpoints.a = { table = "%s" }\nendpoints.b = { table = "%s" }\n\n' "$c" "$c"
    done
  } >"$dir/duplex.toml"
  "$bin" check --install --config "$dir/duplex.toml" >/dev/null
  "$bin" run --until-idle --config "$dir/duplex.toml" 2>/dev/null
  awk -v n="$customers" -v m="$per" 'BEGIN {
    print "PRAGMA foreign_keys = ON;"
    for (c = 1; c <= n; c++) {
      printf "BEGIN; INSERT INTO customer VALUES (%d, %c%s%d%c);", c, 39, "c", c, 39
      for (o = 1; o <= m; o++) printf " INSERT INTO orders VALUES (%d, %d, %d);", (c - 1) * m + o, c, o
      print " COMMIT;"
    }
  }' | sqlite3 "$dir/a.db"
  start=$(date +%s.%N)
  "$bin" run --until-idle --config "$dir/duplex.toml" 2>"$dir/run.log"
  end=$(date +%s.%N)
  got=$(sqlite3 "$dir/b.db" "SELECT (SELECT count(*) FROM customer) + (SELECT count(*) FROM orders)")
  orphans=$(sqlite3 "$dir/b.db" "SELECT count(*) FROM orders o WHERE NOT EXISTS
    (SELECT 1 FROM customer c WHERE c.id = o.customer_id)")
  [ "$got" = "$rows" ] || { echo "$mode: b has $got rows, expected $rows (see $dir)" >&2; exit 1; }
  secs=$(echo "$end - $start" | bc -l)
  printf '%-8s %10d %10.2f %12.0f %10d\n' "$mode" "$rows" "$secs" "$(echo "$rows / $secs" | bc -l)" \
    "$orphans"
  rm -rf "$dir"
done
