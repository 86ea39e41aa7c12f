#!/usr/bin/env bash
# The Salesforce case study (issue 13 §3), on this machine: a local Salesforce (the emulator,
# tools/sf-emulator/) and a throwaway PostgreSQL cluster, each with accounts and contacts before
# duplex ever ran; duplex keeps them in sync both ways. Then edits on both sides: a same-field
# conflict, a different-field merge, a parent with its children created in one transaction, a
# delete. Prints both sides and the conflict log after every step; everything started here is
# stopped and removed on exit. Uses build/release/duplex (or build/debug/duplex), built if
# neither exists. Needs python3 and PostgreSQL 15 (scripts/install-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
if [ -x build/release/duplex ]; then
  duplex="$root/build/release/duplex"
elif [ -x build/debug/duplex ]; then
  duplex="$root/build/debug/duplex"
else
  scripts/install-deps.sh
  duplex="$root/$(scripts/build.sh release | tail -n 1)/duplex"
fi

tmp=$(mktemp -d /tmp/duplex-sf-demo.XXXXXX)
chmod 755 "$tmp" # the PostgreSQL server runs as `postgres` when we are root
emu_pid=
cleanup() {
  [ -n "$emu_pid" ] && kill "$emu_pid" 2>/dev/null && wait "$emu_pid" 2>/dev/null || true
  [ -d "$tmp/pg" ] && scripts/pg-cluster.sh stop "$tmp/pg" immediate >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "A local Salesforce (scripts/sf-emulator.sh) and a PostgreSQL cluster (scripts/pg-cluster.sh)"
sf_port=$(free_port)
scripts/sf-emulator.sh --port "$sf_port" --data "$tmp/org" >"$tmp/emulator.log" 2>&1 &
emu_pid=$!
for _ in $(seq 100); do
  grep -q "listening on" "$tmp/emulator.log" && break
  kill -0 "$emu_pid" 2>/dev/null || { cat "$tmp/emulator.log" >&2; exit 1; }
  sleep 0.1
done
org_url="http://127.0.0.1:$sf_port"
echo "org: $org_url"
scripts/pg-cluster.sh start "$tmp/pg" "$(free_port)" >"$tmp/pg-start.log" 2>&1 ||
  { cat "$tmp/pg-start.log" >&2; exit 1; }
export OPS_DSN
OPS_DSN=$(scripts/pg-cluster.sh dsn "$tmp/pg")
echo "ops: $OPS_DSN"
export SF_CLIENT_ID=duplex SF_CLIENT_SECRET=secret

ops() { psql -X -q -v ON_ERROR_STOP=1 "$OPS_DSN" "$@"; }
# One REST call to the org as a Salesforce user would make it: sf METHOD PATH [JSON]; prints
# the answer's body.
sf() {
  python3 - "$org_url" "$@" <<'PY'
import json, sys, urllib.parse, urllib.request
url, method, path = sys.argv[1:4]
body = sys.argv[4].encode() if len(sys.argv) > 4 else None
form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": "duplex",
                               "client_secret": "secret"}).encode()
token = json.load(urllib.request.urlopen(url + "/services/oauth2/token", form))["access_token"]
req = urllib.request.Request(url + "/services/data/v61.0" + path, data=body, method=method,
                             headers={"Authorization": "Bearer " + token,
                                      "Content-Type": "application/json"})
print(urllib.request.urlopen(req).read().decode())
PY
}
# The Id of the org's record of `object` whose `field` is `value`.
sf_id() {
  sf GET "/query?q=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' \
    "SELECT Id FROM $1 WHERE $2 = '$3'")" | python3 -c 'import json, sys; print(json.load(sys.stdin)["records"][0]["Id"])'
}
# Each side's accounts ("name | industry | rating") and contacts ("last | email | account's
# name"), in the same shape and order, so that they can be compared.
ops_state() {
  {
    ops -At -F ' | ' -c "SELECT 'account', name, coalesce(industry, ''), coalesce(rating, '') FROM accounts"
    ops -At -F ' | ' -c "SELECT 'contact', c.last, coalesce(c.email, ''), coalesce(a.name, '')
                         FROM contacts c LEFT JOIN accounts a ON a.id = c.account_id"
  } | LC_ALL=C sort
}
org_state() {
  local accounts contacts
  accounts=$(sf GET "/query?q=SELECT%20Id,Name,Industry,Rating%20FROM%20Account")
  contacts=$(sf GET "/query?q=SELECT%20LastName,Email,AccountId%20FROM%20Contact")
  python3 - "$accounts" "$contacts" <<'PY' | LC_ALL=C sort
import json, sys
accounts = json.loads(sys.argv[1])["records"]
names = {r["Id"]: r["Name"] for r in accounts}
for r in accounts:
    print(" | ".join(["account", r["Name"], r["Industry"] or "", r["Rating"] or ""]))
for r in json.loads(sys.argv[2])["records"]:
    print(" | ".join(["contact", r["LastName"], r["Email"] or "", names.get(r["AccountId"], "")]))
PY
}
show() {
  echo "PostgreSQL (accounts: name | industry | rating; contacts: last | email | account):"
  ops_state | sed 's/^/  /'
  echo "Salesforce (Account: Name | Industry | Rating; Contact: LastName | Email | Account):"
  org_state | sed 's/^/  /'
}
sync() { "$duplex" run --config "$tmp/duplex.toml" --until-idle --log-level warn; }

say "Records on both sides before duplex ever ran"
ops <<'SQL'
CREATE TABLE accounts(id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL,
                      industry text, rating text);
CREATE TABLE contacts(id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, last text NOT NULL,
                      email text, account_id int REFERENCES accounts(id));
INSERT INTO accounts(name, industry) VALUES ('Initech', 'Software');
INSERT INTO contacts(last, email, account_id)
  SELECT 'Gibbons', 'peter@initech.example', id FROM accounts WHERE name = 'Initech';
SQL
acme=$(sf POST /sobjects/Account '{"Name": "Acme", "Industry": "Energy", "Rating": "Warm"}' |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
sf POST /sobjects/Account '{"Name": "Globex", "Industry": "Chemicals"}' >/dev/null
sf POST /sobjects/Contact "{\"LastName\": \"Coyote\", \"Email\": \"wile@acme.example\", \"AccountId\": \"$acme\"}" >/dev/null
sf POST /sobjects/Contact "{\"LastName\": \"Runner\", \"AccountId\": \"$acme\"}" >/dev/null
show

cat >"$tmp/duplex.toml" <<TOML
[engine]
state = "$tmp/state.db"

[endpoints.crm]
type = "salesforce"
instance_url = "$org_url"
client_id_env = "SF_CLIENT_ID"
client_secret_env = "SF_CLIENT_SECRET"
external_id = "External_Id__c"
poll_interval = "500ms"

[endpoints.ops]
type = "postgres"
dsn_env = "OPS_DSN"

[collections.account]
key = ["id"]
key_mode = "mapped"
policy = "lww"
endpoints.crm = { table = "Account", fields = { id = "Id", name = "Name", industry = "Industry", rating = "Rating" } }
endpoints.ops = { table = "accounts" }

[collections.contact]
key = ["id"]
key_mode = "mapped"
policy = "lww"
endpoints.crm = { table = "Contact", fields = { id = "Id", last = "LastName", email = "Email", account_id = "AccountId" } }
endpoints.ops = { table = "contacts" }
TOML
say "duplex.toml"
cat "$tmp/duplex.toml"

say "duplex check: what the org and the database have, what is synced"
"$duplex" check --config "$tmp/duplex.toml"

say "First run: the initial load, both ways (each side's ids kept, mapped to the other's)"
sync
show

say "Edits on both sides while duplex is stopped"
# Same field on both sides: Acme's Industry. The database's edit is the later one (lww).
sf PATCH "/sobjects/Account/$acme" '{"Industry": "Utilities"}' >/dev/null
echo "org:  Acme.Industry = Utilities"
sleep 1.1
ops -c "UPDATE accounts SET industry = 'Oil & Gas' WHERE name = 'Acme'"
echo "ops:  acme.industry = Oil & Gas            (same field: a conflict, the later edit wins)"
# Different fields of one record: both kept.
sf PATCH "/sobjects/Account/$(sf_id Account Name Globex)" '{"Rating": "Hot"}' >/dev/null
echo "org:  Globex.Rating = Hot"
ops -c "UPDATE accounts SET industry = 'Plastics' WHERE name = 'Globex'"
echo "ops:  globex.industry = Plastics           (different fields: merged)"
# A parent and its children in one transaction.
ops <<'SQL'
BEGIN;
INSERT INTO accounts(name, industry) VALUES ('Umbrella', 'Pharma');
INSERT INTO contacts(last, email, account_id)
  SELECT l, lower(l) || '@umbrella.example', id FROM accounts, (VALUES ('Wesker'), ('Redfield')) v(l)
  WHERE name = 'Umbrella';
COMMIT;
SQL
echo "ops:  Umbrella with contacts Wesker and Redfield, in one transaction"
# A delete in the org.
sf DELETE "/sobjects/Contact/$(sf_id Contact LastName Runner)" >/dev/null
echo "org:  contact Runner deleted"

say "Second run"
sync
show

say "The conflict log"
"$duplex" conflicts list --all --config "$tmp/duplex.toml"

say "Status"
"$duplex" status --config "$tmp/duplex.toml"

a=$(ops_state)
b=$(org_state)
if [ "$a" != "$b" ]; then
  echo "NOT CONVERGED: PostgreSQL and the org differ" >&2
  diff <(echo "$a") <(echo "$b") >&2 || true
  exit 1
fi
echo
echo "Converged: every synced field of every account and contact is the same on both sides.
  Acme:     Industry edited on both sides -> the later edit ('Oil & Gas') on both, logged
  Globex:   Rating edited in the org, industry in the database -> both kept
  Umbrella: created with two contacts in one transaction -> in the org, contacts under it
  Runner:   deleted in the org -> deleted in the database"
