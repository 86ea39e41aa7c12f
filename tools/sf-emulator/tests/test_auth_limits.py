"""OAuth, sessions, limits, describe and the test hooks."""

import base64
import json
import time
import unittest

from emulator import Emulator, EmulatorTest


def jwt(claims):
    def enc(d):
        return base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")
    return enc({"alg": "RS256"}) + "." + enc(claims) + ".c2ln"


class AuthTest(unittest.TestCase):
    def setUp(self):
        self.emu = Emulator("--session-timeout", "1")

    def tearDown(self):
        self.emu.close()

    def test_client_credentials_and_jwt_bearer_give_a_token_for_the_instance(self):
        body = self.emu.login()
        self.assertEqual(body["instance_url"], self.emu.base)
        self.assertEqual(body["token_type"], "Bearer")
        self.assertNotIn("expires_in", body)
        status, body, _ = self.emu.request("POST", "/services/oauth2/token", form={
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": jwt({"iss": "duplex", "sub": "integration@example.com",
                              "aud": "https://login.salesforce.com", "exp": time.time() + 60})})
        self.assertEqual(status, 200, body)

    def test_bad_credentials_are_oauth_errors(self):
        status, body, _ = self.emu.request("POST", "/services/oauth2/token", form={
            "grant_type": "client_credentials", "client_id": "duplex", "client_secret": "no"})
        self.assertEqual(status, 400)
        self.assertEqual(body["error"], "invalid_client")
        status, body, _ = self.emu.request("POST", "/services/oauth2/token", form={
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": jwt({"iss": "duplex", "sub": "u", "exp": time.time() - 5})})
        self.assertEqual(body["error"], "invalid_grant")

    def test_an_expired_session_is_401_invalid_session_id(self):
        status, body, _ = self.emu.api("GET", "/limits")
        self.assertEqual(status, 401)
        self.assertEqual(body, [{"message": "Session expired or invalid",
                                 "errorCode": "INVALID_SESSION_ID", "fields": []}])
        self.emu.login()
        self.assertEqual(self.emu.api("GET", "/limits")[0], 200)
        time.sleep(1.2)
        self.assertEqual(self.emu.api("GET", "/limits")[0], 401)


class LimitsTest(EmulatorTest):
    args = ("--daily-limit", "5")

    def test_every_call_counts_and_the_limit_is_403_request_limit_exceeded(self):
        status, body, headers = self.emu.api("GET", "/limits")
        self.assertEqual(status, 200)
        self.assertEqual(headers["Sforce-Limit-Info"], "api-usage=1/5")
        self.assertEqual(body["DailyApiRequests"], {"Max": 5, "Remaining": 4})
        for _ in range(4):
            self.assertEqual(self.emu.api("GET", "/sobjects/Account/describe")[0], 200)
        status, body, _ = self.emu.api("GET", "/limits")
        self.assertEqual(status, 403)
        self.assertEqual(body[0]["errorCode"], "REQUEST_LIMIT_EXCEEDED")
        self.assertEqual(self.emu.hook("stats")[1]["api_calls"], 5)
        self.emu.hook("limits", {"daily": 100, "used": 0})
        self.assertEqual(self.emu.api("GET", "/limits")[0], 200)

    def test_injected_faults(self):
        self.emu.hook("limits", {"daily": 100})
        self.emu.hook("faults", {"kind": "HTTP_503", "count": 1})
        status, body, _ = self.emu.api("GET", "/limits")
        self.assertEqual((status, body[0]["errorCode"]), (503, "SERVER_UNAVAILABLE"))
        self.assertEqual(self.emu.api("GET", "/limits")[0], 200)
        self.emu.hook("faults", {"kind": "UNABLE_TO_LOCK_ROW", "count": 1})
        status, body, _ = self.emu.api("POST", "/sobjects/Account", {"Name": "A"})
        self.assertEqual((status, body[0]["errorCode"]), (400, "UNABLE_TO_LOCK_ROW"))
        self.assertEqual(self.emu.api("POST", "/sobjects/Account", {"Name": "A"})[0], 201)
        self.emu.hook("faults", {"kind": "DROP_RESPONSE_AFTER_COMMIT", "count": 1})
        with self.assertRaises(Exception):
            self.emu.api("POST", "/sobjects/Account", {"Name": "B"})
        rows = self.emu.query("SELECT Name FROM Account ORDER BY Name")[1]["records"]
        self.assertEqual([r["Name"] for r in rows], ["A", "B"])  # committed, reply lost

    def test_an_early_answer_leaves_a_kept_alive_connection_usable(self):
        # A 503 (or 401, 403) answered before the body was read must not leave the body in
        # the connection, where it would be read as the next request.
        import http.client
        import urllib.parse
        host = urllib.parse.urlsplit(self.emu.base)
        conn = http.client.HTTPConnection(host.hostname, host.port, timeout=10)
        auth = {"Authorization": "Bearer " + self.emu.token, "Content-Type": "application/json"}
        self.emu.hook("limits", {"daily": 100})
        self.emu.hook("faults", {"kind": "HTTP_503", "count": 1})
        body = json.dumps({"allOrNone": False, "records": [
            {"attributes": {"type": "Account"}, "External_Id__c": "K-1", "Name": "k"}]})
        for expected in (503, 200):
            conn.request("PATCH", "/services/data/v61.0/composite/sobjects/Account/"
                         "External_Id__c", body, auth)
            r = conn.getresponse()
            r.read()
            self.assertEqual(r.status, expected)
        conn.request("PATCH", "/services/data/v61.0/sobjects/Account/External_Id__c/K-2",
                     json.dumps({"Name": "k2"}), dict(auth, Authorization="Bearer expired"))
        r = conn.getresponse()
        r.read()
        self.assertEqual(r.status, 401)
        conn.request("GET", "/services/data/v61.0/limits", headers=auth)
        r = conn.getresponse()
        r.read()
        self.assertEqual(r.status, 200)
        conn.close()


class DescribeTest(EmulatorTest):
    def test_describe_has_schema_and_system_fields(self):
        status, body, _ = self.emu.api("GET", "/sobjects/Account/describe")
        self.assertEqual(status, 200)
        self.assertEqual(body["keyPrefix"], "001")
        fields = {f["name"]: f for f in body["fields"]}
        for name in ("Id", "IsDeleted", "SystemModstamp", "LastModifiedDate", "Name",
                     "External_Id__c", "Rating"):
            self.assertIn(name, fields)
        self.assertFalse(fields["Name"]["nillable"])
        self.assertTrue(fields["External_Id__c"]["externalId"])
        self.assertTrue(fields["External_Id__c"]["idLookup"])
        self.assertEqual([p["value"] for p in fields["Rating"]["picklistValues"]],
                         ["Hot", "Warm", "Cold"])
        contact = {f["name"]: f for f in self.emu.api("GET", "/sobjects/Contact/describe")[1]
                   ["fields"]}
        self.assertEqual(contact["AccountId"]["referenceTo"], ["Account"])
        self.assertEqual(self.emu.api("GET", "/sobjects/Nope/describe")[0], 404)


if __name__ == "__main__":
    unittest.main()
