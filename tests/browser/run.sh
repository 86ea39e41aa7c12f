#!/usr/bin/env bash
# ctest's browser test (label `browser`): installs playwright-core from the committed lock file
# (npm ci, into the build folder, not the source tree) and runs dashboard.test.mjs against
# $DUPLEX_BIN with the system's Chromium (/usr/bin/chromium, scripts/install-deps.sh). No
# browser download. A missing Chromium or npm is a failure, not a skip.
set -euo pipefail
src=$(cd "$(dirname "$0")" && pwd)
work=${DUPLEX_BROWSER_WORKDIR:-$PWD/browser-test}
mkdir -p "$work"
cp "$src/package.json" "$src/package-lock.json" "$src/dashboard.test.mjs" "$work/"
cd "$work"
if ! cmp -s package-lock.json node_modules/.installed-lock.json 2>/dev/null; then
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.installed-lock.json
fi
exec node dashboard.test.mjs
