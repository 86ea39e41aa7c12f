"""Change events over CometD long-polling at /cometd/61.0 (Bayeux 1.0), with the replay
extension: subscribe with ext.replay {channel: -1 (new only) | -2 (all retained) | replayId}.
Channels: /data/ChangeEvents (every object) and /data/<Object>ChangeEvent.
"""

import json
import secrets
import time

ADVICE = {"reconnect": "retry", "interval": 0}


def handle(h):
    emu = h.emu
    try:
        messages = json.loads(h._body() or b"[]")
    except ValueError:
        return h._send(400, [{"successful": False, "error": "400::bad json"}], api=False)
    if isinstance(messages, dict):
        messages = [messages]
    replies, connect = [], None
    with emu.org.lock:
        for m in messages:
            channel = m.get("channel")
            reply = {"channel": channel, "id": m.get("id")}
            client = emu.clients.get(m.get("clientId"))
            if channel == "/meta/handshake":
                cid = secrets.token_hex(12)
                emu.clients[cid] = {"subs": {}}
                reply.update({"version": "1.0", "minimumVersion": "1.0", "clientId": cid,
                              "supportedConnectionTypes": ["long-polling"], "successful": True,
                              "advice": dict(ADVICE, timeout=emu.cometd_timeout * 1000)})
            elif client is None:
                reply.update({"successful": False, "error": "403::Unknown client",
                              "advice": {"reconnect": "handshake", "interval": 0}})
            elif channel == "/meta/subscribe":
                sub = m.get("subscription", "")
                if not (sub == "/data/ChangeEvents" or (sub.startswith("/data/") and
                                                        sub.endswith("ChangeEvent"))):
                    reply.update({"successful": False, "subscription": sub,
                                  "error": "400::The channel you requested to subscribe to "
                                           "does not exist {%s}" % sub})
                else:
                    start = ((m.get("ext") or {}).get("replay") or {}).get(sub, -1)
                    if start == -1:
                        start = emu.org.last_replay_id()
                    elif start == -2:
                        start = 0
                    if not emu.org.replay_id_valid(int(start)):
                        # A replay id past the 72 h retention (or never given out): Salesforce
                        # refuses the subscription; the client must fall back to -2 or -1.
                        reply.update({"successful": False, "subscription": sub,
                                      "error": "400::The replayId {%s} you provided was invalid. "
                                               "Please provide a valid ID, -2 to replay all "
                                               "events, or -1 to replay only new events." % start})
                        replies.append(reply)
                        continue
                    client["subs"][sub] = int(start)
                    reply.update({"successful": True, "subscription": sub, "clientId":
                                  m["clientId"]})
            elif channel == "/meta/unsubscribe":
                client["subs"].pop(m.get("subscription"), None)
                reply.update({"successful": True, "subscription": m.get("subscription")})
            elif channel == "/meta/disconnect":
                emu.clients.pop(m["clientId"], None)
                reply.update({"successful": True})
            elif channel == "/meta/connect":
                connect = (m, client)
                continue
            else:
                reply.update({"successful": False, "error": "400::unknown channel"})
            replies.append(reply)
    if connect is not None:
        m, client = connect
        events = _wait(emu, client, emu.cometd_timeout if not replies else 0)
        replies.extend(events)
        replies.append({"channel": "/meta/connect", "id": m.get("id"), "successful": True,
                        "clientId": m.get("clientId"),
                        "advice": dict(ADVICE, timeout=emu.cometd_timeout * 1000)})
    return h._send(200, replies, api=False)


def _wait(emu, client, timeout):
    """Events after each subscription's replay id, waiting up to `timeout` s for the first."""
    deadline = time.time() + timeout
    with emu.org.lock:
        while True:
            out = []
            for sub, after in client["subs"].items():
                last = after
                for replay_id, payload in emu.org.events_after(after):
                    last = replay_id
                    entity = payload["ChangeEventHeader"]["entityName"]
                    if sub != "/data/ChangeEvents" and sub != "/data/%sChangeEvent" % entity:
                        continue
                    out.append({"channel": sub, "data": {"schema": "duplex-emulator-1",
                                                         "payload": payload,
                                                         "event": {"replayId": replay_id}}})
                client["subs"][sub] = last
            left = deadline - time.time()
            if out or left <= 0:
                return out
            # Woken by a commit; a held transaction becomes visible without one: look again soon.
            emu.org.changed.wait(min(left, 0.25))
