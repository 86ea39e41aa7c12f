#!/usr/bin/python3
"""The case study's two one-way pipelines (issue 13 §3), as a firm would write them.

    pipelines.py --instance-url URL --dsn DSN --once           one cycle: sf_to_pg, then pg_to_sf
    pipelines.py --instance-url URL --dsn DSN --every 2        a cycle every 2 s until SIGTERM

sf_to_pg: the Accounts and Contacts changed in Salesforce since the job's last run (queryAll on
SystemModstamp, 5 s of overlap because a stamp is the transaction's start, at one-second
precision), upserted into PostgreSQL by their external id; a row whose values are already there
is left alone, and `updated_at` is not touched (it marks the application's edits). Deleted
records are deleted.

pg_to_sf: the rows the application changed since the job's last run (`updated_at` later than the
last run's start), upserted to Salesforce through sObject Collections by external id, 200 a call,
accounts before contacts (a contact names its account by the account's Salesforce Id).

Not deliberately wasteful: one query per object per run (plus a page per 2,000 rows), writes only
for rows that changed, batched 200 a call. What it does not do, as in the case: anything about
two edits of one record between runs (the later job's copy wins, the other edit is lost).

PostgreSQL schema (SCHEMA below): accounts(ext_id, sf_id, name, industry, updated_at),
contacts(ext_id, sf_id, last, account_ext, updated_at), sync_state(job, last_run).
"""

import argparse
import signal
import sys
import time

import psycopg2

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import sfrest  # noqa: E402

SCHEMA = """
CREATE TABLE accounts(ext_id text PRIMARY KEY, sf_id text UNIQUE, name text NOT NULL,
  industry text, updated_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE contacts(ext_id text PRIMARY KEY, sf_id text UNIQUE, last text NOT NULL,
  account_ext text REFERENCES accounts(ext_id), updated_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE sync_state(job text PRIMARY KEY, last_run double precision NOT NULL);
"""

OVERLAP_S = 5
EXT = "External_Id__c"


def _last_run(cur, job):
    cur.execute("SELECT last_run FROM sync_state WHERE job = %s", (job,))
    row = cur.fetchone()
    return row[0] if row else 0.0


def _set_last_run(cur, job, t):
    cur.execute("INSERT INTO sync_state(job, last_run) VALUES (%s, %s) "
                "ON CONFLICT (job) DO UPDATE SET last_run = excluded.last_run", (job, t))


def sf_to_pg(org, pg):
    started = time.time()
    with pg, pg.cursor() as cur:
        since = sfrest.soql_datetime(_last_run(cur, "sf_to_pg") - OVERLAP_S)
        accounts = org.query("SELECT Id, %s, Name, Industry, IsDeleted FROM Account "
                             "WHERE SystemModstamp >= %s" % (EXT, since), all_rows=True)
        contacts = org.query("SELECT Id, %s, LastName, AccountId, IsDeleted FROM Contact "
                             "WHERE SystemModstamp >= %s" % (EXT, since), all_rows=True)
        for a in accounts:
            ext = a[EXT] or "SF-" + a["Id"]
            if a["IsDeleted"]:
                cur.execute("DELETE FROM accounts WHERE sf_id = %s", (a["Id"],))
                continue
            cur.execute(
                "INSERT INTO accounts(ext_id, sf_id, name, industry) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (ext_id) DO UPDATE SET sf_id = excluded.sf_id, name = excluded.name, "
                "industry = excluded.industry WHERE (accounts.sf_id, accounts.name, "
                "accounts.industry) IS DISTINCT FROM (excluded.sf_id, excluded.name, "
                "excluded.industry)", (ext, a["Id"], a["Name"], a["Industry"]))
        parents = {}
        ids = list({c["AccountId"] for c in contacts if c["AccountId"]})
        if ids:
            cur.execute("SELECT sf_id, ext_id FROM accounts WHERE sf_id = ANY(%s)", (ids,))
            parents = dict(cur.fetchall())
        for c in contacts:
            ext = c[EXT] or "SF-" + c["Id"]
            if c["IsDeleted"]:
                cur.execute("DELETE FROM contacts WHERE sf_id = %s", (c["Id"],))
                continue
            cur.execute(
                "INSERT INTO contacts(ext_id, sf_id, last, account_ext) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (ext_id) DO UPDATE SET sf_id = excluded.sf_id, last = excluded.last, "
                "account_ext = excluded.account_ext WHERE (contacts.sf_id, contacts.last, "
                "contacts.account_ext) IS DISTINCT FROM (excluded.sf_id, excluded.last, "
                "excluded.account_ext)", (ext, c["Id"], c["LastName"], parents.get(c["AccountId"])))
        _set_last_run(cur, "sf_to_pg", started)
    return len(accounts) + len(contacts)


def _upsert(org, pg, cur, sobject, table, records):
    for i in range(0, len(records), 200):
        chunk = records[i:i + 200]
        res = org.collection("PATCH", "/composite/sobjects/%s/%s" % (sobject, EXT),
                             [dict(r, attributes={"type": sobject}) for r in chunk])
        for r, out in zip(chunk, res):
            if out.get("created"):
                cur.execute("UPDATE %s SET sf_id = %%s WHERE ext_id = %%s" % table,
                            (out["id"], r[EXT]))


def pg_to_sf(org, pg):
    with pg, pg.cursor() as cur:
        cur.execute("SELECT extract(epoch FROM now())::float8")
        started = cur.fetchone()[0]
        last = _last_run(cur, "pg_to_sf")
        cur.execute("SELECT ext_id, name, industry FROM accounts "
                    "WHERE updated_at > to_timestamp(%s)", (last,))
        accounts = [{EXT: e, "Name": n, "Industry": i} for e, n, i in cur.fetchall()]
        _upsert(org, pg, cur, "Account", "accounts", accounts)
        cur.execute("SELECT c.ext_id, c.last, a.sf_id FROM contacts c LEFT JOIN accounts a "
                    "ON a.ext_id = c.account_ext WHERE c.updated_at > to_timestamp(%s)", (last,))
        contacts = [{EXT: e, "LastName": n, "AccountId": p} for e, n, p in cur.fetchall()]
        _upsert(org, pg, cur, "Contact", "contacts", contacts)
        _set_last_run(cur, "pg_to_sf", started)
    return len(accounts) + len(contacts)


def cycle(org, pg):
    return sf_to_pg(org, pg), pg_to_sf(org, pg)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--instance-url", required=True)
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--client-id", default="duplex")
    ap.add_argument("--client-secret", default="secret")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--once", action="store_true")
    g.add_argument("--every", type=float, help="seconds from one cycle's start to the next")
    a = ap.parse_args()
    org = sfrest.Org(a.instance_url, a.client_id, a.client_secret, client="pipelines")
    pg = psycopg2.connect(a.dsn)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    while not stop:
        t = time.time()
        moved = cycle(org, pg)
        print("cycle: %d from Salesforce, %d to Salesforce, %d API calls so far"
              % (moved[0], moved[1], org.calls), flush=True)
        if a.once:
            break
        while not stop and time.time() < t + a.every:
            time.sleep(0.05)


if __name__ == "__main__":
    main()
