"""Change events over CometD long-polling, with replay ids; data kept across restarts."""

import unittest

from emulator import Emulator, EmulatorTest


class CometdTest(EmulatorTest):
    def cometd(self, messages):
        status, body, _ = self.emu.request("POST", "/cometd/61.0", messages)
        self.assertEqual(status, 200, body)
        return body

    def subscribe(self, replay):
        hs = self.cometd([{"channel": "/meta/handshake", "version": "1.0",
                           "supportedConnectionTypes": ["long-polling"]}])[0]
        self.assertTrue(hs["successful"])
        cid = hs["clientId"]
        sub = self.cometd([{"channel": "/meta/subscribe", "clientId": cid,
                            "subscription": "/data/ChangeEvents",
                            "ext": {"replay": {"/data/ChangeEvents": replay}}}])[0]
        self.assertTrue(sub["successful"], sub)
        return cid

    def connect(self, cid):
        out = self.cometd([{"channel": "/meta/connect", "clientId": cid,
                            "connectionType": "long-polling"}])
        self.assertEqual(out[-1]["channel"], "/meta/connect")
        return [m["data"] for m in out[:-1]]

    def test_events_carry_the_header_origin_and_replay_ids(self):
        cid = self.subscribe(-1)
        rid = self.emu.api("POST", "/sobjects/Account", {"Name": "A"},
                           headers={"Sforce-Call-Options": "client=duplex-crm"})[1]["id"]
        self.emu.api("PATCH", "/sobjects/Account/" + rid, {"Industry": "Energy"})
        self.emu.api("DELETE", "/sobjects/Account/" + rid)
        events = []
        while len(events) < 3:
            got = self.connect(cid)
            self.assertTrue(got, "no event within the long-poll timeout")
            events += got
        headers = [e["payload"]["ChangeEventHeader"] for e in events]
        self.assertEqual([h["changeType"] for h in headers], ["CREATE", "UPDATE", "DELETE"])
        self.assertEqual(headers[0]["changeOrigin"],
                         "com/salesforce/api/rest/61.0;client=duplex-crm")
        self.assertEqual(headers[1]["changedFields"], ["Industry", "LastModifiedDate"])
        self.assertEqual(events[1]["payload"]["Industry"], "Energy")
        self.assertEqual(headers[2]["recordIds"], [rid])
        ids = [e["event"]["replayId"] for e in events]
        self.assertEqual(ids, sorted(ids))
        # Replaying from the first event's id delivers the two after it.
        cid2 = self.subscribe(ids[0])
        again = self.connect(cid2)
        self.assertEqual([e["event"]["replayId"] for e in again], ids[1:])

    def test_an_expired_replay_id_is_refused(self):
        cid = self.subscribe(-1)
        self.emu.api("POST", "/sobjects/Account", {"Name": "A"})
        self.emu.api("POST", "/sobjects/Account", {"Name": "B"})
        ids = []
        while len(ids) < 2:
            ids += [e["event"]["replayId"] for e in self.connect(cid)]
        self.subscribe(ids[0])  # retained: fine
        self.emu.hook("events", {"expire_through": ids[0]})
        hs = self.cometd([{"channel": "/meta/handshake", "version": "1.0",
                           "supportedConnectionTypes": ["long-polling"]}])[0]
        sub = self.cometd([{"channel": "/meta/subscribe", "clientId": hs["clientId"],
                            "subscription": "/data/ChangeEvents",
                            "ext": {"replay": {"/data/ChangeEvents": ids[0]}}}])[0]
        self.assertFalse(sub["successful"])
        self.assertTrue(sub["error"].startswith("400::The replayId {%d} you provided was invalid"
                                                % ids[0]), sub)
        # -2 replays what is still retained: only the second event.
        cid2 = self.subscribe(-2)
        self.assertEqual([e["event"]["replayId"] for e in self.connect(cid2)], ids[1:])
        self.assertFalse(self.cometd([{"channel": "/meta/subscribe", "clientId": cid2,
                                       "subscription": "/data/ChangeEvents",
                                       "ext": {"replay": {"/data/ChangeEvents": 10**9}}}])[0]
                         ["successful"])

    def test_a_gap_event_names_the_object_and_a_wildcard(self):
        cid = self.subscribe(-1)
        self.emu.hook("events", {"gap": {"entity": "Account", "changeType": "GAP_OVERFLOW"}})
        got = self.connect(cid)
        self.assertEqual(len(got), 1)
        header = got[0]["payload"]["ChangeEventHeader"]
        self.assertEqual((header["changeType"], header["entityName"], header["recordIds"]),
                         ("GAP_OVERFLOW", "Account", ["001*"]))

    def test_unknown_client_is_told_to_handshake(self):
        out = self.cometd([{"channel": "/meta/connect", "clientId": "nope"}])
        self.assertFalse(out[0]["successful"])
        self.assertEqual(out[0]["advice"]["reconnect"], "handshake")


class RestartTest(unittest.TestCase):
    def test_records_and_events_survive_a_restart(self):
        emu = Emulator()
        try:
            emu.login()
            rid = emu.api("POST", "/sobjects/Account", {"Name": "Kept"})[1]["id"]
            emu.stop()
            again = Emulator(data=emu.data)
            try:
                again.login()
                self.assertEqual(again.api("GET", "/sobjects/Account/" + rid)[1]["Name"], "Kept")
                rid2 = again.api("POST", "/sobjects/Account", {"Name": "New"})[1]["id"]
                self.assertNotEqual(rid, rid2)
            finally:
                again.stop()
        finally:
            emu.tmp.cleanup()


if __name__ == "__main__":
    unittest.main()
