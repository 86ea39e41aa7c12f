"""A small Salesforce REST client (standard library only) for bench/salesforce/.

Used by the bench itself (as the org's users and as the observer) and by pipelines.py (the two
one-way jobs). One kept-alive HTTP connection; OAuth client credentials; an expired session is
renewed once. `calls` counts the API calls made (requests under /services/data/, the ones the
org counts against its daily limit), by resource, so the bench can take its own calls out of
the emulator's totals.
"""

import http.client
import json
import time
import urllib.parse

API = "/services/data/v61.0"


class SfError(Exception):
    pass


class Org:
    def __init__(self, instance_url, client_id="duplex", client_secret="secret", client=None):
        u = urllib.parse.urlsplit(instance_url)
        self.host, self.port = u.hostname, u.port or 80
        self.client_id, self.client_secret = client_id, client_secret
        self.call_options = "client=%s" % client if client else None
        self.conn = None
        self.token = None
        self.calls = 0
        self.calls_by = {}

    # -- plumbing ------------------------------------------------------------------------------

    def _connect(self):
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=300)

    def _raw(self, method, path, body=None, headers=None):
        """One HTTP exchange, reconnecting once if the kept-alive connection was closed."""
        for attempt in (0, 1):
            if self.conn is None:
                self._connect()
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                resp = self.conn.getresponse()
                data = resp.read()
                return resp.status, data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.conn.close()
                self.conn = None
                if attempt == 1:
                    raise

    def login(self):
        form = urllib.parse.urlencode({"grant_type": "client_credentials",
                                       "client_id": self.client_id,
                                       "client_secret": self.client_secret})
        status, data = self._raw("POST", "/services/oauth2/token", form,
                                 {"Content-Type": "application/x-www-form-urlencoded"})
        if status != 200:
            raise SfError("token endpoint: HTTP %d %s" % (status, data[:200]))
        self.token = json.loads(data)["access_token"]

    def call(self, method, path, body=None):
        """An API call under /services/data/v61.0 (path relative to it, or absolute under
        /services/data). Returns (status, parsed JSON or None)."""
        if self.token is None:
            self.login()
        full = path if path.startswith("/services/") else API + path
        resource = _resource(full)
        payload = None if body is None else json.dumps(body)
        for attempt in (0, 1):
            headers = {"Authorization": "Bearer " + self.token, "Accept": "application/json"}
            if payload is not None:
                headers["Content-Type"] = "application/json"
            if self.call_options:
                headers["Sforce-Call-Options"] = self.call_options
            status, data = self._raw(method, full, payload, headers)
            self.calls += 1
            self.calls_by[resource] = self.calls_by.get(resource, 0) + 1
            if status == 401 and attempt == 0:
                self.login()
                continue
            return status, (json.loads(data) if data else None)

    def ok(self, method, path, body=None):
        status, out = self.call(method, path, body)
        if status >= 300:
            raise SfError("%s %s: HTTP %d %s" % (method, path, status, json.dumps(out)[:300]))
        return out

    # -- API -----------------------------------------------------------------------------------

    def query(self, soql, all_rows=False):
        """Every record of a SOQL query, following nextRecordsUrl."""
        out = self.ok("GET", "/%s?q=%s" % ("queryAll" if all_rows else "query",
                                            urllib.parse.quote(soql, safe="")))
        records = list(out["records"])
        while not out.get("done", True):
            out = self.ok("GET", out["nextRecordsUrl"])
            records.extend(out["records"])
        for r in records:
            r.pop("attributes", None)
        return records

    def collection(self, method, path, records, all_or_none=False):
        """One sObject Collections call (at most 200 records); raises if any record failed."""
        res = self.ok(method, path, {"allOrNone": all_or_none, "records": records})
        bad = [r for r in res if not r.get("success")]
        if bad:
            raise SfError("%s %s: %d records refused, first: %s" % (method, path, len(bad),
                                                                   json.dumps(bad[0])))
        return res

    def create_many(self, sobject, rows):
        """Creates rows (dicts of fields) 200 a call; returns their Ids in order."""
        ids = []
        for i in range(0, len(rows), 200):
            recs = [dict(r, attributes={"type": sobject}) for r in rows[i:i + 200]]
            ids.extend(r["id"] for r in self.collection("POST", "/composite/sobjects", recs))
        return ids

    # -- the emulator's test hooks (not API calls) ---------------------------------------------

    def hook(self, method, name, body=None):
        status, data = self._raw(method, "/__emulator/" + name,
                                 None if body is None else json.dumps(body),
                                 {"Content-Type": "application/json"})
        if status != 200:
            raise SfError("hook %s: HTTP %d %s" % (name, status, data[:200]))
        return json.loads(data)


def _resource(full):
    """The emulator's name for a call's resource (its /__emulator/stats keys)."""
    rest = urllib.parse.urlsplit(full).path[len(API):].strip("/").split("/")
    if rest[0] == "sobjects" and len(rest) > 2 and rest[2] in ("describe", "updated", "deleted"):
        return "sobjects/" + rest[2]
    if rest[0] == "composite" and len(rest) > 1:
        return "composite/sobjects"
    return rest[0] or "/"


def soql_datetime(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
