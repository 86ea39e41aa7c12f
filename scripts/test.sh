#!/usr/bin/env bash
# The README's second command: installs what is missing, builds with sanitizers, runs every
# test (unit, integration, end to end through the duplex binary). ctest's summary closes it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
if [ -n "$(git ls-files '*.cc' '*.h')" ] && command -v clang-format >/dev/null; then
  git ls-files '*.cc' '*.h' | xargs clang-format --dry-run -Werror
fi
dir=$(scripts/build.sh debug | tail -n 1)
cd "$dir"
ctest --output-on-failure --timeout 900 -j 2 "$@"
