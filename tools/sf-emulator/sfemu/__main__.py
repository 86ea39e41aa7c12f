"""python3 -m sfemu --port PORT --data DIR [--schema FILE] [--daily-limit N] [--client ID:SECRET]
[--session-timeout S] [--cometd-timeout S] [--print-default-schema]

A local Salesforce for duplex's tests (README "Salesforce"): the REST API v61.0 subset duplex
uses, OAuth, CometD change events, and test hooks under /__emulator/. Keeps its data in DIR.
"""

import argparse
import json
import os
import signal
import sys

from .server import Emulator, serve
from .store import DEFAULT_SCHEMA, Org, Schema


def main(argv=None):
    p = argparse.ArgumentParser(prog="sf-emulator", description=__doc__.split("\n\n")[1])
    p.add_argument("--port", type=int, help="TCP port on 127.0.0.1 (0: any free one)")
    p.add_argument("--data", help="folder for the org's data (kept across restarts)")
    p.add_argument("--schema", help="schema file (JSON, describe-like); default: "
                                    "--print-default-schema")
    p.add_argument("--daily-limit", type=int, default=100000, help="API requests per 24 h")
    p.add_argument("--client", default="duplex:secret", help="connected app ID:SECRET")
    p.add_argument("--session-timeout", type=int, default=7200,
                   help="seconds until an access token expires")
    p.add_argument("--cometd-timeout", type=int, default=110,
                   help="seconds a CometD /meta/connect waits for events")
    p.add_argument("--print-default-schema", action="store_true",
                   help="print the default schema and exit")
    args = p.parse_args(argv)
    if args.print_default_schema:
        print(json.dumps(DEFAULT_SCHEMA, indent=2))
        return 0
    if args.port is None or not args.data:
        p.error("--port and --data are required")
    os.makedirs(args.data, exist_ok=True)
    doc = DEFAULT_SCHEMA
    if args.schema:
        with open(args.schema) as f:
            doc = json.load(f)
    client_id, _, secret = args.client.partition(":")
    org = Org(args.data, Schema(doc))
    holder = {}
    emu = Emulator(org, client_id, secret, args.daily_limit, args.session_timeout, 0)
    emu.cometd_timeout = args.cometd_timeout
    server = serve(emu, args.port, lambda s: holder.setdefault("server", s))
    port = server.server_address[1]
    emu.base = "http://127.0.0.1:%d" % port
    signal.signal(signal.SIGTERM, lambda *_: (server.server_close(), sys.exit(0)))
    print("listening on http://127.0.0.1:%d" % port, flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
