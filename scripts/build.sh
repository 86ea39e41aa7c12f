#!/usr/bin/env bash
# Builds duplex. Usage: scripts/build.sh [release|debug]   (debug: ASan + UBSan, -Werror)
# Prints the build directory's path as its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-release}
case "$kind" in
  release) dir=build/release; flags=(-DCMAKE_BUILD_TYPE=Release -DDUPLEX_TESTS=OFF) ;;
  debug) dir=build/debug; flags=(-DCMAKE_BUILD_TYPE=Debug -DDUPLEX_SANITIZE=ON -DDUPLEX_WERROR=ON) ;;
  *) echo "usage: $0 [release|debug]" >&2; exit 2 ;;
esac
cmake -S . -B "$dir" -G Ninja "${flags[@]}" >/dev/null
cmake --build "$dir" -j "$(nproc)" >&2
echo "$dir"
