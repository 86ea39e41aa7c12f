"""sObject rows, upsert by external id, Collections, Composite, validation and rules."""

import json
import os
import tempfile
import unittest

from emulator import Emulator, EmulatorTest


class RowsTest(EmulatorTest):
    def test_create_read_update_delete_by_id(self):
        status, body, headers = self.emu.api("POST", "/sobjects/Account",
                                             {"Name": "Acme", "AnnualRevenue": 12.5})
        self.assertEqual(status, 201)
        self.assertEqual(body["success"], True)
        rid = body["id"]
        self.assertTrue(rid.startswith("001") and len(rid) == 18)
        self.assertEqual(headers["Location"], "/services/data/v61.0/sobjects/Account/" + rid)
        status, rec, _ = self.emu.api("GET", "/sobjects/Account/" + rid[:15])
        self.assertEqual((status, rec["Name"], rec["AnnualRevenue"]), (200, "Acme", 12.5))
        self.assertEqual(self.emu.api("PATCH", "/sobjects/Account/" + rid, {"Industry": "x"})[0],
                         204)
        rec = self.emu.api("GET", "/sobjects/Account/" + rid + "?fields=Industry")[1]
        self.assertEqual(rec["Industry"], "x")
        self.assertNotIn("Name", rec)

    def test_validation_errors_name_the_field(self):
        cases = [({"Industry": "x"}, "REQUIRED_FIELD_MISSING", "Name"),
                 ({"Name": "x" * 256}, "STRING_TOO_LONG", "Name"),
                 ({"Name": "a", "Rating": "Tepid"}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                  "Rating"),
                 ({"Name": "a", "Nope__c": 1}, "INVALID_FIELD", "Nope__c"),
                 ({"Name": "a", "NumberOfEmployees": "many"}, "INVALID_TYPE_ON_FIELD_IN_RECORD",
                  "NumberOfEmployees")]
        for values, code, field in cases:
            status, body, _ = self.emu.api("POST", "/sobjects/Account", values)
            self.assertEqual(status, 400, values)
            self.assertEqual((body[0]["errorCode"], body[0]["fields"]), (code, [field]), body)
        status, body, _ = self.emu.api("POST", "/sobjects/Contact",
                                       {"LastName": "B", "AccountId": "001000000000099AAA"})
        self.assertEqual(body[0]["errorCode"], "INVALID_CROSS_REFERENCE_KEY")

    def test_upsert_by_external_id_creates_updates_and_reports_duplicates(self):
        path = "/sobjects/Account/External_Id__c/A-1"
        status, body, _ = self.emu.api("PATCH", path, {"Name": "One"})
        self.assertEqual((status, body["created"]), (201, True))
        status, body2, _ = self.emu.api("PATCH", "/sobjects/Account/External_Id__c/a-1",
                                        {"Name": "Uno"})
        self.assertEqual((status, body2["created"], body2["id"]), (200, False, body["id"]))
        status, body, _ = self.emu.api("PATCH", "/sobjects/Account/Name/x", {"Industry": "y"})
        self.assertEqual(status, 404)
        status, body, _ = self.emu.api("POST", "/sobjects/Account",
                                       {"Name": "Two", "External_Id__c": "A-1"})
        self.assertEqual(body[0]["errorCode"], "DUPLICATE_VALUE")

    def test_a_rule_changes_fields_in_the_same_transaction(self):
        rid = self.emu.api("POST", "/sobjects/Account", {"Name": "R", "Rating": "Cold"})[1]["id"]
        self.assertEqual(self.emu.api("PATCH", "/sobjects/Account/" + rid,
                                      {"Industry": "Energy"})[0], 204)
        self.assertEqual(self.emu.api("GET", "/sobjects/Account/" + rid)[1]["Rating"], "Cold")


class RulesTest(unittest.TestCase):
    def test_schema_file_with_a_rule(self):
        with tempfile.TemporaryDirectory() as d:
            schema = os.path.join(d, "schema.json")
            with open(schema, "w") as f:
                json.dump({"objects": {"Account": {"fields": {
                    "Name": {"type": "string", "length": 80, "nillable": False},
                    "Industry": {"type": "string"},
                    "Rating": {"type": "picklist", "picklistValues": ["Hot", "Cold"]}},
                    "rules": [{"when_changed": "Industry", "set": {"Rating": "Hot"}}]}}}, f)
            emu = Emulator("--schema", schema, data=os.path.join(d, "data"))
            try:
                emu.login()
                rid = emu.api("POST", "/sobjects/Account", {"Name": "R"})[1]["id"]
                emu.api("PATCH", "/sobjects/Account/" + rid, {"Industry": "Energy"})
                self.assertEqual(emu.api("GET", "/sobjects/Account/" + rid)[1]["Rating"], "Hot")
            finally:
                emu.close()


class CollectionsTest(EmulatorTest):
    def test_create_update_upsert_retrieve_delete(self):
        recs = [{"attributes": {"type": "Account"}, "Name": "A%d" % i} for i in range(3)]
        status, out, _ = self.emu.api("POST", "/composite/sobjects",
                                      {"allOrNone": False, "records": recs})
        self.assertEqual(status, 200)
        ids = [r["id"] for r in out]
        self.assertTrue(all(r["success"] for r in out))
        status, out, _ = self.emu.api("PATCH", "/composite/sobjects", {"records": [
            {"attributes": {"type": "Account"}, "id": ids[0], "Industry": "x"},
            {"attributes": {"type": "Account"}, "id": ids[1], "Rating": "Tepid"}]})
        self.assertEqual(status, 200)
        self.assertTrue(out[0]["success"])
        self.assertEqual(out[1]["errors"][0]["statusCode"],
                         "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST")
        self.assertNotIn("errorCode", out[1]["errors"][0])
        status, out, _ = self.emu.api("PATCH", "/composite/sobjects/Account/External_Id__c", {
            "allOrNone": False, "records": [
                {"attributes": {"type": "Account"}, "External_Id__c": "E1", "Name": "New"},
                {"attributes": {"type": "Account"}, "External_Id__c": "E1", "Name": "Again"}]})
        self.assertEqual([(r["success"], r["created"]) for r in out], [(True, True),
                                                                      (True, False)])
        status, out, _ = self.emu.api("GET", "/composite/sobjects/Account?ids=%s,%s&fields=Name"
                                      % (ids[0], "001000000000099AAA"))
        self.assertEqual(out[0]["Name"], "A0")
        self.assertIsNone(out[1])
        status, out, _ = self.emu.api("DELETE", "/composite/sobjects?ids=%s,%s&allOrNone=false"
                                      % (ids[0], ids[1]))
        self.assertTrue(all(r["success"] for r in out))
        self.assertEqual(self.emu.query("SELECT Id FROM Account")[1]["totalSize"], 2)

    def test_all_or_none_rolls_back_the_others(self):
        recs = [{"attributes": {"type": "Account"}, "Name": "Fine"},
                {"attributes": {"type": "Account"}, "Industry": "no name"}]
        status, out, _ = self.emu.api("POST", "/composite/sobjects",
                                      {"allOrNone": True, "records": recs})
        self.assertEqual(status, 200)
        self.assertEqual(out[0]["errors"][0]["statusCode"], "ALL_OR_NONE_OPERATION_ROLLED_BACK")
        self.assertEqual(out[1]["errors"][0]["statusCode"], "REQUIRED_FIELD_MISSING")
        self.assertEqual(self.emu.query("SELECT Id FROM Account")[1]["totalSize"], 0)

    def test_more_than_200_records_is_refused(self):
        recs = [{"attributes": {"type": "Account"}, "Name": "A"}] * 201
        status, out, _ = self.emu.api("POST", "/composite/sobjects", {"records": recs})
        self.assertEqual(status, 400)


class CompositeTest(EmulatorTest):
    def test_references_between_subrequests_and_all_or_none(self):
        req = {"allOrNone": True, "compositeRequest": [
            {"method": "POST", "url": "/services/data/v61.0/sobjects/Account",
             "referenceId": "acc", "body": {"Name": "Parent"}},
            {"method": "POST", "url": "/services/data/v61.0/sobjects/Contact",
             "referenceId": "con", "body": {"LastName": "Child", "AccountId": "@{acc.id}"}}]}
        status, out, _ = self.emu.api("POST", "/composite", req)
        self.assertEqual(status, 200)
        res = out["compositeResponse"]
        self.assertEqual([r["httpStatusCode"] for r in res], [201, 201])
        child = self.emu.api("GET", "/sobjects/Contact/" + res[1]["body"]["id"])[1]
        self.assertEqual(child["AccountId"], res[0]["body"]["id"])
        req["compositeRequest"][1]["body"] = {"AccountId": "@{acc.id}"}  # no LastName
        out = self.emu.api("POST", "/composite", req)[1]["compositeResponse"]
        self.assertEqual(out[1]["body"][0]["errorCode"], "REQUIRED_FIELD_MISSING")
        self.assertEqual(out[0]["body"][0]["errorCode"], "PROCESSING_HALTED")
        self.assertEqual(self.emu.query("SELECT Id FROM Account")[1]["totalSize"], 1)

    def test_at_most_five_collections_or_queries(self):
        def sub(i, url, method="GET"):
            return {"method": method, "url": url, "referenceId": "r%d" % i}
        query = "/services/data/v61.0/query?q=SELECT+Id+FROM+Account"
        rows = "/services/data/v61.0/sobjects/Account/describe"
        req = {"compositeRequest": [sub(i, query) for i in range(5)] + [sub(9, rows)]}
        status, out, _ = self.emu.api("POST", "/composite", req)
        self.assertEqual(status, 200, out)
        req["compositeRequest"].append(sub(10, "/services/data/v61.0/composite/sobjects/"
                                              "Account?ids=001000000000001AAA&fields=Name"))
        status, out, _ = self.emu.api("POST", "/composite", req)
        self.assertEqual((status, out[0]["errorCode"]), (400, "INVALID_BATCH_SIZE"))


if __name__ == "__main__":
    unittest.main()
