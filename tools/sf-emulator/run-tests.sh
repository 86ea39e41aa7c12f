#!/usr/bin/env bash
# The emulator's own tests (a file per resource), with Debian's python3 where it is installed.
set -euo pipefail
cd "$(dirname "$0")/tests"
py=/usr/bin/python3
[ -x "$py" ] || py=python3
exec "$py" -m unittest discover -v -p 'test_*.py' "$@"
