#!/usr/bin/env bash
# The README's first command: installs what is missing, builds duplex, and shows it keeping
# two SQLite databases (a CRM and a billing system, each written by its own application) in
# sync in both directions, with per-field conflict policies.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
dir=$(scripts/build.sh release | tail -n 1)
duplex="$PWD/$dir/duplex"
demo="$PWD/demo"
rm -rf "$demo" && mkdir -p "$demo" && cd "$demo"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
crm() { sqlite3 -cmd '.timeout 5000' crm.db "$@"; }
billing() { sqlite3 -cmd '.timeout 5000' billing.db "$@"; }
show() {
  echo "crm.customers:"
  crm -header -column "SELECT id, name, email, tier, balance, notes FROM customers ORDER BY id"
  echo "billing.clients:"
  billing -header -column "SELECT id, full_name, email, tier, balance, notes, terms FROM clients ORDER BY id"
}
sync() { "$duplex" run --config duplex.toml --until-idle --log-level warn; }

say "Two applications, two databases, rows on both sides before duplex ever ran"
crm "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT, email TEXT, tier TEXT,
       balance INTEGER, notes TEXT);
     INSERT INTO customers VALUES (1, 'Ada Lovelace', 'ada@example.org', 'gold', 100, ''),
                                  (2, 'Alan Turing', 'alan@example.org', 'silver', 50, ''),
                                  (3, 'Grace Hopper', 'grace@example.org', 'bronze', 10, '');"
billing "CREATE TABLE clients(id INTEGER PRIMARY KEY, full_name TEXT, email TEXT, tier TEXT,
           balance INTEGER, notes TEXT, terms TEXT DEFAULT 'net30');
         INSERT INTO clients(id, full_name, email, tier, balance, notes)
           VALUES (3, 'Grace Hopper', 'grace@navy.mil', 'bronze', 10, ''),
                  (4, 'Edsger Dijkstra', 'ewd@example.org', 'silver', 75, '');"
show

cat > duplex.toml <<'TOML'
[engine]
state = "duplex-state.db"

[endpoints.crm]
type = "sqlite"
path = "crm.db"

[endpoints.billing]
type = "sqlite"
path = "billing.db"

[collections.customer]
key = ["id"]
policy = "lww"
endpoints.crm     = { table = "customers" }
endpoints.billing = { table = "clients", fields = { name = "full_name" } }
fields.balance = { policy = "max" }
fields.tier    = { policy = "prefer", endpoint = "crm" }
fields.notes   = { policy = "manual" }
TOML

say "duplex check: what is synced, what is left alone"
"$duplex" check --config duplex.toml

say "First run: the initial load (rows only on one side are copied, the rest merged)"
sync
show

say "Edits on both sides while duplex is stopped (concurrent writes)"
crm "UPDATE customers SET email = 'ada@lovelace.org' WHERE id = 1;   -- different fields:
     UPDATE customers SET tier = 'platinum' WHERE id = 2;             -- same field, prefer crm
     UPDATE customers SET notes = 'call on Monday' WHERE id = 3;      -- same field, manual
     INSERT INTO customers VALUES (5, 'Barbara Liskov', 'bl@example.org', 'gold', 0, '');"
sleep 0.01
billing "UPDATE clients SET balance = 250 WHERE id = 1;              -- ...both kept
         UPDATE clients SET tier = 'gold' WHERE id = 2;               -- (billing loses)
         UPDATE clients SET notes = 'VIP, do not call' WHERE id = 3;  -- (parked for a human)
         DELETE FROM clients WHERE id = 4;"
sync
show

say "The conflict log: every resolution, and the manual one waiting for a human"
"$duplex" conflicts list --all --config duplex.toml
id=$("$duplex" conflicts list --json --config duplex.toml | sed -n 's/^    "id": \([0-9]*\),/\1/p' | head -n 1)

say "An operator resolves conflict $id by taking billing's value; the next run propagates it"
"$duplex" conflicts resolve "$id" --take billing --config duplex.toml
sync
show

say "Status"
"$duplex" status --config duplex.toml
a=$(crm "SELECT id, name, email, tier, balance, notes FROM customers ORDER BY id")
b=$(billing "SELECT id, full_name, email, tier, balance, notes FROM clients ORDER BY id")
if [ "$a" != "$b" ]; then
  echo "NOT CONVERGED: the two databases differ" >&2
  exit 1
fi
echo
echo "Converged: every synced field of every record is identical on both sides.
What happened to the concurrent edits:
  customer 1: crm changed email, billing changed balance -> both kept (field-level merge)
  customer 2: both changed tier -> crm's 'platinum' (policy prefer crm)
  customer 3: both changed notes -> parked (manual), then resolved by the operator
  customer 4: deleted on billing -> deleted on crm; customer 5: created on crm -> on billing"
echo "The files are in $demo; try editing them with sqlite3 while"
echo "\`$duplex run --config $demo/duplex.toml\` runs."
