#!/usr/bin/env bash
# A local Salesforce for duplex's tests and demos (tools/sf-emulator/, README "Salesforce").
# Usage: scripts/sf-emulator.sh --port PORT --data DIR [--schema FILE] [--daily-limit N]
#          [--client ID:SECRET] [--session-timeout S] [--cometd-timeout S]
#        scripts/sf-emulator.sh --print-default-schema
# Prints "listening on http://127.0.0.1:PORT" once ready; keeps its data in DIR; exits on
# SIGTERM. Needs python3 (standard library only): Debian's, where it is installed (a version
# manager's shim in front of it costs seconds per start on a busy machine).
set -euo pipefail
here=$(cd "$(dirname "$0")/../tools/sf-emulator" && pwd)
py=/usr/bin/python3
[ -x "$py" ] || py=python3
PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" exec "$py" -m sfemu "$@"
