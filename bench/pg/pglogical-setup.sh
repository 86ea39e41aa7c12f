#!/usr/bin/env bash
# Sets up pglogical 2.4 bi-directional replication between two fresh databases, the way
# ../shared/anchors/pglogical/setup.sh does for its clusters: one node per side, customers and
# orders in the default replication set without an initial copy (both sides are seeded), and two
# subscriptions with forward_origins '{}' (only local changes are forwarded: no ping-pong).
#   pglogical-setup.sh PORT_A DB_A PORT_B DB_B       (tables already created and seeded)
#   pglogical-setup.sh --teardown PORT_A DB_A PORT_B DB_B   drop subscriptions, nodes, extension
# The clusters run with shared_preload_libraries=pglogical, track_commit_timestamp=on and
# pglogical.conflict_resolution=last_update_wins (bench/pg/run.sh starts them so).
set -euo pipefail
teardown=0
if [ "${1:-}" = "--teardown" ]; then
  teardown=1
  shift
fi
[ $# -eq 4 ] || { sed -n '2,8p' "$0" >&2; exit 2; }
PA=$1 DA=$2 PB=$3 DB=$4
P="psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres"
DSN_A="host=127.0.0.1 port=$PA dbname=$DA user=postgres"
DSN_B="host=127.0.0.1 port=$PB dbname=$DB user=postgres"

if [ $teardown = 1 ]; then
  # Subscriptions first on both sides (each drops its slot on the provider), then the extension.
  for x in "$PA $DA" "$PB $DB"; do
    set -- $x
    $P -p "$1" -d "$2" -c "DO \$\$DECLARE s record; BEGIN
      FOR s IN SELECT sub_name FROM pglogical.subscription LOOP
        PERFORM pglogical.drop_subscription(s.sub_name); END LOOP; END\$\$"
  done
  for x in "$PA $DA" "$PB $DB"; do
    set -- $x
    $P -p "$1" -d "$2" -c "DROP EXTENSION pglogical CASCADE"
    for s in $($P -p "$1" -d postgres -Atc \
      "SELECT slot_name FROM pg_replication_slots WHERE database = '$2'"); do
      $P -p "$1" -d postgres -c "SELECT pg_drop_replication_slot('$s')"
    done
  done
  exit 0
fi

for x in "$PA $DA" "$PB $DB"; do
  set -- $x
  $P -p "$1" -d "$2" -c "CREATE EXTENSION pglogical"
done
$P -p "$PA" -d "$DA" -c "SELECT pglogical.create_node(node_name := 'node_a', dsn := '$DSN_A')"
$P -p "$PB" -d "$DB" -c "SELECT pglogical.create_node(node_name := 'node_b', dsn := '$DSN_B')"
for x in "$PA $DA" "$PB $DB"; do
  set -- $x
  $P -p "$1" -d "$2" \
    -c "SELECT pglogical.replication_set_add_table('default', 'customers', synchronize_data := false)" \
    -c "SELECT pglogical.replication_set_add_table('default', 'orders', synchronize_data := false)"
done
$P -p "$PB" -d "$DB" -c "SELECT pglogical.create_subscription(subscription_name := 'sub_b_from_a',
  provider_dsn := '$DSN_A', replication_sets := '{default}', synchronize_structure := false,
  synchronize_data := false, forward_origins := '{}')"
$P -p "$PA" -d "$DA" -c "SELECT pglogical.create_subscription(subscription_name := 'sub_a_from_b',
  provider_dsn := '$DSN_B', replication_sets := '{default}', synchronize_structure := false,
  synchronize_data := false, forward_origins := '{}')"
sa= sb=
for _ in $(seq 1 60); do
  sa=$($P -p "$PA" -d "$DA" -Atc "SELECT status FROM pglogical.show_subscription_status()")
  sb=$($P -p "$PB" -d "$DB" -Atc "SELECT status FROM pglogical.show_subscription_status()")
  [ "$sa" = replicating ] && [ "$sb" = replicating ] && break
  sleep 1
done
echo "pglogical subscriptions: A: $sa  B: $sb"
[ "$sa" = replicating ] && [ "$sb" = replicating ]
