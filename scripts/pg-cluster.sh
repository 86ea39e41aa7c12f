#!/usr/bin/env bash
# Throwaway PostgreSQL 15 clusters for tests and benchmarks, without Debian's pg_createcluster
# and without touching the system's main cluster.
#
#   scripts/pg-cluster.sh start DIR PORT [NAME=VALUE ...]   create (if DIR holds no cluster) and start
#   scripts/pg-cluster.sh start DIR                         start an existing cluster as configured
#   scripts/pg-cluster.sh stop DIR [fast|immediate]         stop (default fast); ok if not running
#   scripts/pg-cluster.sh restart DIR                       fast stop, then start
#   scripts/pg-cluster.sh status DIR                        exit 0 running, 3 stopped, 4 no cluster
#   scripts/pg-cluster.sh dsn DIR [DBNAME]                  print the connection string
#
# DIR is the data directory. Every setting is written to DIR/postgresql.conf, so a plain
# `pg_ctl -D DIR start` (say, after a crash test) comes up the same way: the port, TCP on
# 127.0.0.1 only, the unix socket in DIR, wal_level=logical, 20 slots and WAL senders, small
# shared_buffers, and the server log in DIR/log/postgresql.log. Durability stays on (fsync,
# synchronous_commit): tests kill -9 and restart servers. Extra NAME=VALUE settings (for example
# shared_preload_libraries=pglogical) go into the same file, after the defaults, so they win.
# Authentication is trust for the superuser `postgres`. start prints
# postgresql://postgres@127.0.0.1:PORT/postgres as its last line.
#
# As root, initdb and the server run as the `postgres` OS user (initdb refuses root) and DIR is
# made theirs; as any other user they run as that user. PG_BIN overrides the binaries' directory
# (default /usr/lib/postgresql/15/bin, else `pg_config --bindir`).
set -euo pipefail

usage() {
  sed -n '5,10p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

pg_bin() {
  if [ -n "${PG_BIN:-}" ]; then
    echo "$PG_BIN"
  elif [ -x /usr/lib/postgresql/15/bin/initdb ]; then
    echo /usr/lib/postgresql/15/bin
  elif command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/initdb" ]; then
    pg_config --bindir
  else
    echo "pg-cluster.sh: PostgreSQL 15 server binaries not found (scripts/install-deps.sh" \
      "installs postgresql-15; or set PG_BIN)" >&2
    exit 1
  fi
}

# Runs a command as the cluster's owner: `postgres` when we are root, else ourselves.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# The postmaster's pid from DIR/postmaster.pid, if that process exists and is not a zombie.
# A postmaster killed with -9 stays a zombie until init reaps it (here up to seconds later); the
# server refuses to start while that pid exists, and pg_ctl calls it running.
live_postmaster() {
  local pid state
  pid=$(head -n 1 "$1/postmaster.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
  state=$(sed 's/^.*) \(.\).*/\1/' "/proc/$pid/stat" 2>/dev/null) || return 1
  [ "$state" != Z ] || return 1
  echo "$pid"
}

# True when the server in DIR runs.
running() {
  live_postmaster "$1" >/dev/null && as_owner "$(pg_bin)/pg_ctl" -D "$1" status >/dev/null 2>&1
}

# After a kill -9, waits (up to 60 s) until init has reaped the dead postmaster's zombie.
wait_for_zombie() {
  local pid i
  pid=$(head -n 1 "$1/postmaster.pid" 2>/dev/null) || return 0
  [ -n "$pid" ] || return 0
  for i in $(seq 600); do
    # Gone, or a live process (then the server itself decides whether the lock file is stale).
    [ "$(sed 's/^.*) \(.\).*/\1/' "/proc/$pid/stat" 2>/dev/null)" = Z ] || return 0
    sleep 0.1
  done
  echo "pg-cluster.sh: the old postmaster (pid $pid) of '$1' is still there after 60 s" >&2
  return 1
}

# The port the cluster was last started with (from our block in postgresql.conf).
conf_port() {
  sed -n 's/^port = \([0-9]*\).*/\1/p' "$1/postgresql.conf" | tail -n 1
}

# Replaces the block between our markers at the end of postgresql.conf.
write_conf() {
  local dir=$1 port=$2
  shift 2
  local conf=$dir/postgresql.conf
  local tmp
  tmp=$(mktemp)
  sed '/^# >>> pg-cluster.sh/,/^# <<< pg-cluster.sh/d' "$conf" >"$tmp"
  {
    echo "# >>> pg-cluster.sh (rewritten on every start)"
    echo "port = $port"
    echo "listen_addresses = '127.0.0.1'"
    echo "unix_socket_directories = '$dir'"
    echo "wal_level = logical"
    echo "max_replication_slots = 20"
    echo "max_wal_senders = 20"
    echo "shared_buffers = 32MB"
    echo "max_connections = 100"
    echo "logging_collector = on"
    echo "log_directory = 'log'"
    echo "log_filename = 'postgresql.log'"
    echo "log_rotation_age = 0"
    echo "log_rotation_size = 0"
    echo "log_line_prefix = '%m [%p] %q%u@%d '"
    local kv
    for kv in "$@"; do
      case "$kv" in
        *=*) echo "${kv%%=*} = ${kv#*=}" ;;
        *) echo "pg-cluster.sh: setting '$kv' is not NAME=VALUE" >&2; rm -f "$tmp"; exit 2 ;;
      esac
    done
    echo "# <<< pg-cluster.sh"
  } >>"$tmp"
  # Keep the file's owner and mode: cat into it instead of moving the temp file over it.
  cat "$tmp" >"$conf"
  rm -f "$tmp"
}

cmd_start() {
  [ $# -ge 1 ] || usage
  if [ $# -eq 1 ]; then
    # No port: start the existing cluster with the settings its postgresql.conf already has.
    [ -f "$1/PG_VERSION" ] || { echo "pg-cluster.sh: no cluster in '$1' (give a PORT)" >&2; exit 1; }
    running "$1" || start_server "$1"
    cmd_dsn "$1"
    return
  fi
  local dir=$1 port=$2
  shift 2
  case "$port" in '' | *[!0-9]*) echo "pg-cluster.sh: bad port '$port'" >&2; exit 2 ;; esac
  if [ "$port" = 5432 ]; then
    echo "pg-cluster.sh: port 5432 belongs to the system's cluster; pick another" >&2
    exit 2
  fi
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  # The unix socket path must fit in sockaddr_un (107 bytes).
  if [ $((${#dir} + 17)) -gt 107 ]; then
    echo "pg-cluster.sh: '$dir' is too long for a unix socket path; use a shorter DIR" >&2
    exit 2
  fi
  local bin
  bin=$(pg_bin)
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || {
      echo "pg-cluster.sh: running as root needs the 'postgres' OS user (postgresql-15 creates it)" >&2
      exit 1
    }
    chown postgres: "$dir"
  fi
  if [ ! -f "$dir/PG_VERSION" ]; then
    if [ -n "$(ls -A "$dir")" ]; then
      echo "pg-cluster.sh: '$dir' is neither empty nor a cluster" >&2
      exit 1
    fi
    # --no-sync only skips flushing initdb's own files: a killed server cannot lose them (the
    # OS still has them); the server itself keeps fsync on.
    local out
    if ! out=$(as_owner "$bin/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 --locale=C \
      --no-sync 2>&1); then
      echo "$out" >&2
      exit 1
    fi
  fi
  if running "$dir"; then
    if [ "$(conf_port "$dir")" != "$port" ]; then
      echo "pg-cluster.sh: '$dir' is already running on port $(conf_port "$dir")" >&2
      exit 1
    fi
  else
    as_owner mkdir -p "$dir/log"
    write_conf "$dir" "$port" "$@"
    start_server "$dir"
  fi
  echo "postgresql://postgres@127.0.0.1:$port/postgres"
}

# pg_ctl start, waiting until the server accepts connections.
start_server() {
  local dir=$1
  wait_for_zombie "$dir"
  as_owner mkdir -p "$dir/log"
  # -l catches what the server says before its logging collector starts.
  if ! as_owner "$(pg_bin)/pg_ctl" -D "$dir" -l "$dir/log/startup.log" -w -t 120 start >/dev/null; then
    echo "pg-cluster.sh: the server in '$dir' did not start:" >&2
    tail -n 20 "$dir/log/startup.log" "$dir/log/postgresql.log" >&2 2>/dev/null || true
    exit 1
  fi
}

cmd_stop() {
  [ $# -ge 1 ] || usage
  local dir=$1 mode=${2:-fast}
  case "$mode" in fast | immediate | smart) ;; *) usage ;; esac
  [ -f "$dir/PG_VERSION" ] || { echo "pg-cluster.sh: no cluster in '$dir'" >&2; exit 1; }
  local bin
  bin=$(pg_bin)
  if running "$dir"; then
    as_owner "$bin/pg_ctl" -D "$dir" -m "$mode" -w -t 120 stop >/dev/null
  fi
}

cmd_restart() {
  [ $# -eq 1 ] || usage
  local dir=$1
  [ -f "$dir/PG_VERSION" ] || { echo "pg-cluster.sh: no cluster in '$dir'" >&2; exit 1; }
  cmd_stop "$dir" fast
  # The settings are already in postgresql.conf.
  start_server "$dir"
  cmd_dsn "$dir"
}

cmd_status() {
  [ $# -eq 1 ] || usage
  local dir=$1
  [ -f "$dir/PG_VERSION" ] || { echo "no cluster in '$dir'"; exit 4; }
  if running "$dir"; then
    echo "running on port $(conf_port "$dir")"
  else
    echo "stopped"
    exit 3
  fi
}

cmd_dsn() {
  [ $# -ge 1 ] || usage
  [ -f "$1/PG_VERSION" ] || { echo "pg-cluster.sh: no cluster in '$1'" >&2; exit 1; }
  echo "postgresql://postgres@127.0.0.1:$(conf_port "$1")/${2:-postgres}"
}

[ $# -ge 1 ] || usage
cmd=$1
shift
case "$cmd" in
  start) cmd_start "$@" ;;
  stop) cmd_stop "$@" ;;
  restart) cmd_restart "$@" ;;
  status) cmd_status "$@" ;;
  dsn) cmd_dsn "$@" ;;
  *) usage ;;
esac
