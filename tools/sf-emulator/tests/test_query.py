"""query, queryAll, paging, the SOQL subset, and the replication resources."""

import time
import unittest

from emulator import EmulatorTest


class QueryTest(EmulatorTest):
    def create(self, obj, body):
        status, out, _ = self.emu.api("POST", "/sobjects/" + obj, body)
        self.assertEqual(status, 201, out)
        return out["id"]

    def test_soql_subset_with_unquoted_datetimes_order_and_limit(self):
        a = self.create("Account", {"Name": "Acme", "NumberOfEmployees": 10, "Rating": "Hot"})
        b = self.create("Account", {"Name": "Beta", "NumberOfEmployees": 20})
        self.create("Account", {"Name": "Gamma", "NumberOfEmployees": 30, "Rating": "Cold"})
        status, body, _ = self.emu.query(
            "SELECT Id, Name, SystemModstamp FROM Account WHERE SystemModstamp > "
            "2000-01-01T00:00:00Z AND (NumberOfEmployees >= 20 OR Name = 'acme') "
            "ORDER BY NumberOfEmployees DESC LIMIT 2")
        self.assertEqual(status, 200, body)
        self.assertEqual(body["totalSize"], 2)
        self.assertTrue(body["done"])
        self.assertEqual([r["Name"] for r in body["records"]], ["Gamma", "Beta"])
        r = body["records"][1]
        self.assertEqual(r["attributes"], {"type": "Account", "url":
                                           "/services/data/v61.0/sobjects/Account/" + b})
        self.assertRegex(r["SystemModstamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000\+0000$")
        self.assertEqual(len(r["Id"]), 18)
        rows = self.emu.query("SELECT Name FROM Account WHERE Id IN ('%s', '%s') ORDER BY Name"
                              % (a[:15], b))[1]["records"]
        self.assertEqual([x["Name"] for x in rows], ["Acme", "Beta"])
        rows = self.emu.query("SELECT Name FROM Account WHERE Rating != null")[1]["records"]
        self.assertEqual(len(rows), 2)

    def test_systemmodstamp_bounds_under_and_and_or(self):
        # The store reads only records at or after a top-level AND's SystemModstamp bound; under
        # OR there is no bound, and every record is still tested.
        self.create("Account", {"Name": "Old"})
        time.sleep(1.1)
        self.create("Account", {"Name": "New"})
        stamp = self.emu.query("SELECT SystemModstamp FROM Account WHERE Name = 'New'")[1][
            "records"][0]["SystemModstamp"].replace(".000+0000", "Z")

        def names(where):
            body = self.emu.query("SELECT Name FROM Account WHERE %s ORDER BY Name" % where)[1]
            return [r["Name"] for r in body["records"]]
        self.assertEqual(names("SystemModstamp >= %s" % stamp), ["New"])
        self.assertEqual(names("SystemModstamp > %s" % stamp), [])
        self.assertEqual(names("Name != 'x' AND SystemModstamp >= %s" % stamp), ["New"])
        self.assertEqual(names("SystemModstamp >= %s OR Name = 'Old'" % stamp), ["New", "Old"])
        self.assertEqual(names("SystemModstamp < %s" % stamp), ["Old"])

    def test_id_bounds_under_and_and_or(self):
        # The store reads only the records named by a top-level AND's `Id IN` or `Id =` (by
        # primary key); under OR there is no bound. 15- and 18-character ids alike, deleted
        # records through queryAll only.
        a = self.create("Account", {"Name": "A"})
        b = self.create("Account", {"Name": "B"})
        c = self.create("Account", {"Name": "C"})
        status, _, _ = self.emu.api("DELETE", "/sobjects/Account/" + c)
        self.assertEqual(status, 204)

        def names(where, all_rows=False):
            body = self.emu.query("SELECT Name FROM Account WHERE %s ORDER BY Name" % where,
                                  all_rows=all_rows)[1]
            return [r["Name"] for r in body["records"]]
        self.assertEqual(names("Id IN ('%s', '%s', '%s')" % (a[:15], b, c)), ["A", "B"])
        self.assertEqual(names("Id IN ('%s', '%s')" % (a, c), all_rows=True), ["A", "C"])
        self.assertEqual(names("Id = '%s'" % b), ["B"])
        self.assertEqual(names("Id IN ('%s', '%s') AND Name != 'A'" % (a, b)), ["B"])
        self.assertEqual(names("Id IN ('%s') AND Id IN ('%s')" % (a, b)), [])
        self.assertEqual(names("Id IN ('%s') OR Name = 'B'" % a), ["A", "B"])
        self.assertEqual(names("Id IN ('001000000000000AAA')"), [])

    def test_malformed_queries(self):
        for q in ("SELECT FROM Account", "SELECT Name FROM Account WHERE SystemModstamp > "
                  "'2020-01-01T00:00:00Z'", "SELECT Name FROM Account GROUP BY Name",
                  "DELETE FROM Account"):
            status, body, _ = self.emu.query(q)
            self.assertEqual(status, 400, q)
            self.assertEqual(body[0]["errorCode"], "MALFORMED_QUERY", q)
        status, body, _ = self.emu.query("SELECT Nope FROM Account")
        self.assertEqual(body[0]["errorCode"], "INVALID_FIELD")
        status, body, _ = self.emu.query("SELECT Id FROM Nope")
        self.assertEqual(body[0]["errorCode"], "INVALID_TYPE")

    def test_paging_with_next_records_url(self):
        for i in range(250):
            self.create("Account", {"Name": "A%03d" % i})
        status, body, _ = self.emu.query("SELECT Id FROM Account ORDER BY Name",
                                         headers={"Sforce-Query-Options": "batchSize=200"})
        seen = len(body["records"])
        self.assertFalse(body["done"])
        self.assertEqual(body["totalSize"], 250)
        while not body["done"]:
            self.assertTrue(body["nextRecordsUrl"].startswith("/services/data/v61.0/query/"))
            status, body, _ = self.emu.request("GET", body["nextRecordsUrl"])
            self.assertEqual(status, 200)
            seen += len(body["records"])
        self.assertEqual(seen, 250)

    def test_deletes_are_soft_and_seen_by_query_all_and_deleted(self):
        a = self.create("Account", {"Name": "Gone"})
        start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 120))
        self.assertEqual(self.emu.api("DELETE", "/sobjects/Account/" + a)[0], 204)
        self.assertEqual(self.emu.query("SELECT Id FROM Account")[1]["totalSize"], 0)
        rows = self.emu.query("SELECT Id, IsDeleted FROM Account", all_rows=True)[1]["records"]
        self.assertEqual([(r["Id"], r["IsDeleted"]) for r in rows], [(a, True)])
        self.assertEqual(self.emu.api("DELETE", "/sobjects/Account/" + a)[1][0]["errorCode"],
                         "ENTITY_IS_DELETED")
        end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 120))
        status, body, _ = self.emu.api("GET", "/sobjects/Account/deleted/?start=%s&end=%s"
                                       % (start, end))
        self.assertEqual(status, 200, body)
        self.assertEqual([d["id"] for d in body["deletedRecords"]], [a])
        self.assertIn("earliestDateAvailable", body)

    def test_a_held_write_is_stamped_at_its_start_and_visible_at_commit(self):
        self.emu.hook("hold", {"seconds": 2})
        late = self.create("Account", {"Name": "Late"})
        time.sleep(1.1)
        self.create("Account", {"Name": "Early"})
        rows = self.emu.query("SELECT Name FROM Account")[1]["records"]
        self.assertEqual([r["Name"] for r in rows], ["Early"])
        start = time.strftime("%Y-%m-%dT%H:%M:00Z", time.gmtime(time.time() - 120))
        end = time.strftime("%Y-%m-%dT%H:%M:00Z", time.gmtime(time.time() + 120))
        body = self.emu.api("GET", "/sobjects/Account/updated/?start=%s&end=%s"
                            % (start, end))[1]
        # latestDateCovered stops at the open transaction's start (its minute).
        self.assertLessEqual(body["latestDateCovered"], time.strftime(
            "%Y-%m-%dT%H:%M:00.000+0000", time.gmtime()))
        time.sleep(1.2)
        rows = self.emu.query("SELECT Name, SystemModstamp FROM Account ORDER BY "
                              "SystemModstamp")[1]["records"]
        self.assertEqual([r["Name"] for r in rows], ["Late", "Early"])
        self.assertEqual(self.emu.api("GET", "/sobjects/Account/" + late)[0], 200)


if __name__ == "__main__":
    unittest.main()
