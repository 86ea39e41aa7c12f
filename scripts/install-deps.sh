#!/usr/bin/env bash
# Installs what building and testing duplex needs, with apt-get, when it is missing.
# Usage: scripts/install-deps.sh [--pg-bench]   (needs root, or sudo)
#   PostgreSQL 15 (server and libpq) is always installed: the tests start throwaway clusters
#   with scripts/pg-cluster.sh. --pg-bench adds what bench/pg/run.sh needs (pglogical, psycopg2).
set -euo pipefail

packages=(build-essential cmake ninja-build pkg-config clang-format
  libsqlite3-dev sqlite3 libtomlplusplus-dev nlohmann-json3-dev libfmt-dev libspdlog-dev
  libcli11-dev libgtest-dev libgmock-dev libbenchmark-dev libjemalloc-dev
  postgresql-15 libpq-dev libcpp-httplib-dev chromium fonts-liberation python3)
if [ "${1:-}" = "--pg-bench" ]; then
  packages+=(postgresql-15-pglogical python3-psycopg2)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# The browser test runs npm (tests/browser/run.sh). Any node >= 20 with npm will do, e.g. one
# from nodesource, which bundles npm and conflicts with Debian's npm package: only install
# Debian's when there is none.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  missing+=(nodejs npm)
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
