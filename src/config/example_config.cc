// `duplex init`'s example config (ExampleConfig, config.h).
#include "config/config.h"

namespace duplex {

std::string ExampleConfig() {
  return R"(# duplex configuration: which databases to keep in sync, and how.
# Relative paths in this file are resolved against the folder this file is in.

[engine]
# duplex's own SQLite file: the sync state of every record and the change journal.
state = "duplex-state.db"
# Most row changes captured or applied in one batch (1 to 1000000).
# batch_rows = 10000
# Idle wait between cheap checks for new changes, in milliseconds (1 to 1000).
# poll_interval_ms = 5
# HTTP admin server of `duplex run`: dashboard at /, /metrics (Prometheus), /healthz, /readyz,
# JSON API under /api/v1/. Off when absent. Bound anywhere but loopback it needs a bearer
# token, read from the environment variable named by http_token_env.
# http = "127.0.0.1:8787"
# http_token_env = "DUPLEX_HTTP_TOKEN"
# An endpoint whose capture lags more than this, or that stays unreachable longer than
# alert_after, raises an alert: one warning line, the dashboard, /readyz, and alert_command
# (run by /bin/sh with DUPLEX_ALERT_* variables in its environment; once more on clearing).
# latency_objective = "5s"
# alert_after = "30s"
# alert_command = "logger -t duplex \"$DUPLEX_ALERT_MESSAGE\""

# Endpoints: the databases to keep in sync. The name after "endpoints." is yours to choose
# (letters, digits, '_' and '-'); collections refer to endpoints by it. Endpoint types:
#   "sqlite"      a SQLite database file (no server needed)
#   "postgres"    a PostgreSQL database: capture by a logical replication slot, or triggers
#   "salesforce"  a Salesforce org over its REST API
# This example syncs two SQLite files; the other types are shown commented out below.
[endpoints.crm]
type = "sqlite"
path = "crm.db"     # the SQLite database file (created by your application, not by duplex)

[endpoints.billing]
type = "sqlite"
path = "billing.db"

# A PostgreSQL endpoint (`duplex check` lists what the server lacks, with the fix):
# [endpoints.shop]
# type = "postgres"
# dsn = "postgresql://duplex@db1:5432/shop"  # or dsn_env = "SHOP_DSN"; the password from there,
#                                            # PGPASSWORD or ~/.pgpass; never logged
# schema = "public"
# capture = "logical"         # "logical" (default): replication slot + pgoutput;
#                             # "trigger": AFTER triggers + a changelog table
# max_retained_wal_mb = 1024  # `duplex status` warns when the slot holds more WAL than this

# A Salesforce org (use key_mode = "mapped" in its collections: the org makes its own ids):
# [endpoints.org]
# type = "salesforce"
# instance_url = "https://login.salesforce.com"  # or your My Domain URL
# client_id_env = "SF_CLIENT_ID"          # the connected app's key and secret come only from
# client_secret_env = "SF_CLIENT_SECRET"  # these environment variables; never logged
# external_id = "External_Id__c"          # a Text, External ID, Unique field on every object
# capture = "cdc"                         # change events (default) or "poll"
# poll_interval = "2s"                    # never poll more often
# api_budget = "100%"                     # of the org's daily API requests (default: all it
#                                         # has left); or a number of calls per 24 hours

# Collections: one kind of record kept equal on two or more endpoints. Here a customer lives in
# table "customers" of crm and in table "clients" of billing.
[collections.customer]
# The canonical fields that identify a record on every endpoint (a primary or unique key).
key = ["id"]
# How a field changed concurrently on two endpoints is resolved; the default of every field:
#   "lww"     last writer wins: the later commit wins
#   "prefer"  one endpoint's value always wins; name it with endpoint = "NAME"
#   "max"     the larger value wins (NULL < numbers < text < binary)
#   "min"     the smaller value wins
#   "sum"     a counter or balance: concurrent changes are added up as deltas from the value
#             both sides started from (100 -> 110 here, 100 -> 95 there: 105); integers and
#             exact decimals (PostgreSQL numeric, decimal text), never rounded
#   "union"   a set (per field only): what either side added is kept, what either side removed
#             goes; for PostgreSQL arrays, JSON arrays, and delimited text with
#             separator = ";" (a multipicklist "a;b;c")
#   "merge"   a JSON document (per field only; json, jsonb, TEXT): edits at different paths
#             are all kept; a path both sides changed goes to merge_policy = "lww" (the
#             default; or any policy above, or "manual")
#   "manual"  nothing is overwritten: each endpoint keeps its value, and the conflict waits
#             for an operator (`duplex conflicts resolve`)
policy = "lww"
# A delete on one endpoint concurrent with an update on another:
#   "delete" (the default) the delete wins; "keep" the updated record is kept.
on_delete_conflict = "delete"
# Keys: "shared" (the default) when the key means the same record everywhere (a natural key,
# or ids one side hands out); "mapped" when each endpoint generates its own ids (serial,
# identity, INTEGER PRIMARY KEY on both sides): duplex then inserts without the key, keeps a
# key map, and translates every reference to the collection.
# key_mode = "shared"
# Foreign keys declared in the endpoints' schemas are read from them: parents are written
# before children, children deleted before parents. Declare here the ones a system does not:
# references = { account_id = "account" }
# Where the collection lives on each endpoint: `table` is the endpoint's table, and `fields`
# maps canonical field names to this endpoint's column names where they differ
# (canonical = "column"). By default every column present on all of the collection's endpoints
# (under its mapped name) is synced.
endpoints.crm     = { table = "customers" }
endpoints.billing = { table = "clients", fields = { name = "full_name" } }
# Per-field policies, overriding the collection's policy (key fields are never resolved by
# policy: they identify the record).
fields.balance = { policy = "sum" }   # a balance: deposits on both sides both count
fields.tier    = { policy = "prefer", endpoint = "crm" }
fields.notes   = { policy = "manual" }
# fields.tags  = { policy = "union", separator = ";" }   # tags "a;b": additions on both sides count
# fields.prefs = { policy = "merge" }   # a JSON document: edits of different keys both count
)";
}

}  // namespace duplex
