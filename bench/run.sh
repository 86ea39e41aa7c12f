#!/usr/bin/env bash
# Builds duplex and duplex_bench in release mode and runs the benchmark.
# Usage: bench/run.sh [duplex_bench flags...]   e.g. bench/run.sh --json, bench/run.sh --only latency
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DDUPLEX_TESTS=OFF >/dev/null
cmake --build build/release -j2 --target duplex duplex_bench >&2
exec build/release/bench/duplex_bench --duplex build/release/duplex "$@"
