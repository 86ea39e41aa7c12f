"""The HTTP side of the emulator: OAuth, the REST API v61.0 subset, CometD, test hooks.

Shapes follow shared/SALESFORCE.md: single-resource errors are `[{"message", "errorCode",
"fields"}]`, per-record results in Collections carry `statusCode`; every API response has
`Sforce-Limit-Info`; datetimes print as 2013-05-07T22:07:19.000+0000.
"""

import base64
import json
import secrets
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import soql
from .store import ORG_ID, USER_ID, RecordError, Schema, format_datetime, normalize_id

API = "/services/data/v61.0"
BATCH_DEFAULT = 2000


class Emulator:
    def __init__(self, org, client_id, client_secret, daily_limit, session_timeout, port):
        self.org = org
        self.client_id = client_id
        self.client_secret = client_secret
        self.daily_limit = daily_limit
        self.session_timeout = session_timeout
        self.base = "http://127.0.0.1:%d" % port
        self.tokens = {}  # token -> expiry (epoch seconds)
        self.cursors = {}  # query locator -> remaining records
        self.faults = []  # [kind, count]
        self.calls = {}
        self.clients = {}  # cometd client id -> {"subs": {channel: replay}, "queue": []}
        if org.meta("api_used") is None:
            org.set_meta("api_used", 0)

    # -- accounting --------------------------------------------------------------------------

    def used(self):
        return int(self.org.meta("api_used", 0))

    def count_call(self, resource):
        self.org.set_meta("api_used", self.used() + 1)
        self.calls[resource] = self.calls.get(resource, 0) + 1

    def take_fault(self, kinds):
        for f in self.faults:
            if f[0] in kinds and f[1] > 0:
                f[1] -= 1
                return f[0]
        return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    emu = None  # set by serve()

    def log_message(self, fmt, *args):  # quiet: tests read the API, not the log
        pass

    # -- plumbing ----------------------------------------------------------------------------

    def _body(self):
        return self._raw

    def _read_body(self):
        """Reads the whole request body before anything answers: an answer sent early (401,
        503, 403) would otherwise leave the body in a kept-alive connection, to be read as the
        next request."""
        n = int(self.headers.get("Content-Length") or 0)
        self._raw = self.rfile.read(n) if n else b""

    def _json_body(self):
        raw = self._body()
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError as e:
            raise ApiError(400, "JSON_PARSER_ERROR", "Unexpected character: %s" % e)

    def _send(self, status, body=None, headers=None, api=True):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        if api:
            self.send_header("Sforce-Limit-Info",
                             "api-usage=%d/%d" % (self.emu.used(), self.emu.daily_limit))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if data:
            self.wfile.write(data)

    def _drop(self):
        """Closes the connection without an answer (the write committed: a lost reply)."""
        self.close_connection = True
        try:
            self.connection.shutdown(2)
        except OSError:
            pass

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def _dispatch(self, method):
        self._read_body()
        url = urllib.parse.urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        query = urllib.parse.parse_qs(url.query)
        emu = self.emu
        try:
            with emu.org.lock:
                if path.startswith("/__emulator/"):
                    return self._hook(method, path[len("/__emulator/"):])
                if path == "/services/oauth2/token" and method == "POST":
                    return self._token()
                if path == "/services/data":
                    return self._send(200, [{"label": "Summer '24", "url": API, "version": "61.0"}])
                if not (path.startswith(API) or path.startswith("/cometd/61.0")):
                    raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
                self._authorize()
            if path.startswith("/cometd/61.0"):
                return self._cometd()
            with emu.org.lock:
                fault = emu.take_fault({"HTTP_503", "REQUEST_LIMIT_EXCEEDED"})
                if fault == "HTTP_503":
                    raise ApiError(503, "SERVER_UNAVAILABLE", "Service temporarily unavailable")
                if fault == "REQUEST_LIMIT_EXCEEDED" or emu.used() >= emu.daily_limit:
                    raise ApiError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
                resource = path[len(API):] or "/"
                emu.count_call(self._counted_as(resource))
                self.origin = _call_origin(self.headers.get("Sforce-Call-Options", ""))
                return self._api(method, resource, query)
        except ApiError as e:
            return self._send(e.status, [{"message": e.message, "errorCode": e.code,
                                          "fields": e.fields}], api=True)
        except Dropped:
            return self._drop()

    def _counted_as(self, resource):
        """The name a call is counted under in stats: its resource; a Composite call that
        only reads (every subrequest a GET) is "composite/query", one that writes "composite".
        Both count as one API call."""
        name = _resource_name(resource)
        if name == "composite":
            try:
                subs = json.loads(self._raw or b"{}").get("compositeRequest") or []
            except (ValueError, AttributeError):
                subs = []
            if subs and all(isinstance(s, dict) and str(s.get("method", "GET")).upper() == "GET"
                            for s in subs):
                return "composite/query"
        return name

    def _authorize(self):
        auth = self.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else None
        expiry = self.emu.tokens.get(token)
        if expiry is None or expiry < time.time():
            raise ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")

    # -- OAuth -------------------------------------------------------------------------------

    def _token(self):
        form = urllib.parse.parse_qs(self._body().decode())
        grant = (form.get("grant_type") or [""])[0]
        emu = self.emu

        def oauth_error(code, text, status=400):
            self._send(status, {"error": code, "error_description": text}, api=False)

        if grant == "client_credentials":
            cid = (form.get("client_id") or [""])[0]
            secret = (form.get("client_secret") or [""])[0]
            basic = self.headers.get("Authorization", "")
            if basic.startswith("Basic "):
                cid, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
            if cid != emu.client_id:
                return oauth_error("invalid_client_id", "client identifier invalid")
            if secret != emu.client_secret:
                return oauth_error("invalid_client", "invalid client credentials")
        elif grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            try:
                claims = json.loads(_b64url((form.get("assertion") or [""])[0].split(".")[1]))
            except (ValueError, IndexError):
                return oauth_error("invalid_grant", "invalid assertion")
            if claims.get("iss") != emu.client_id:
                return oauth_error("invalid_client_id", "client identifier invalid")
            if not (claims.get("sub") or claims.get("prn")):
                return oauth_error("invalid_grant", "user hasn't approved this consumer")
            if float(claims.get("exp", 0)) < time.time():
                return oauth_error("invalid_grant", "expired authorization code")
        else:
            return oauth_error("unsupported_grant_type", "grant type not supported")
        token = ORG_ID[:15] + "!" + secrets.token_urlsafe(40)
        emu.tokens[token] = time.time() + emu.session_timeout
        now_ms = str(int(time.time() * 1000))
        self._send(200, {"access_token": token, "instance_url": emu.base,
                         "id": emu.base + "/id/" + ORG_ID + "/" + USER_ID, "token_type": "Bearer",
                         "issued_at": now_ms, "signature": base64.b64encode(
                             secrets.token_bytes(32)).decode(), "scope": "api id"}, api=False)

    # -- test hooks --------------------------------------------------------------------------

    def _hook(self, method, name):
        emu = self.emu
        if name == "stats" and method == "GET":
            # faults: the injected faults not taken yet, so a test can tell they were hit.
            return self._send(200, {"api_calls": sum(emu.calls.values()), "calls": emu.calls,
                                    "api_used": emu.used(),
                                    "faults_left": sum(f[1] for f in emu.faults)}, api=False)
        body = self._json_body() or {}
        if name == "limits" and method == "POST":
            if "daily" in body:
                emu.daily_limit = int(body["daily"])
            if "used" in body:
                emu.org.set_meta("api_used", int(body["used"]))
            return self._send(200, {"daily": emu.daily_limit, "used": emu.used()}, api=False)
        if name == "faults" and method == "POST":
            kind = body.get("kind")
            if kind not in ("UNABLE_TO_LOCK_ROW", "HTTP_503", "REQUEST_LIMIT_EXCEEDED",
                            "DROP_RESPONSE_AFTER_COMMIT"):
                return self._send(400, {"error": "unknown fault kind %r" % kind}, api=False)
            emu.faults.append([kind, int(body.get("count", 1))])
            return self._send(200, {"ok": True}, api=False)
        if name == "hold" and method == "POST":
            emu.org.hold_next = float(body.get("seconds", 0))
            return self._send(200, {"ok": True}, api=False)
        if name == "events" and method == "POST":
            if "expire_through" in body:
                emu.org.expire_events(int(body["expire_through"]))
            if "gap" in body:
                gap = body["gap"] or {}
                try:
                    emu.org.add_gap(gap.get("entity", ""), gap.get("changeType", "GAP_OVERFLOW"),
                                    gap.get("recordIds") or [])
                except KeyError:
                    return self._send(400, {"error": "no object %r" % gap.get("entity")},
                                      api=False)
            return self._send(200, {"last_replay_id": emu.org.last_replay_id()}, api=False)
        if name == "expire-sessions" and method == "POST":
            emu.tokens.clear()
            return self._send(200, {"ok": True}, api=False)
        return self._send(404, {"error": "no such hook"}, api=False)

    # -- the API -----------------------------------------------------------------------------

    def _api(self, method, resource, query):
        parts = [urllib.parse.unquote(p) for p in resource.strip("/").split("/") if p]
        if parts == ["limits"] and method == "GET":
            d = self.emu.daily_limit
            return self._send(200, {"DailyApiRequests": {"Max": d, "Remaining": max(
                0, d - self.emu.used())}})
        if parts and parts[0] in ("query", "queryAll") and method == "GET":
            if len(parts) == 2:
                return self._next_page(parts[1])
            return self._query(query, parts[0] == "queryAll")
        if parts[:1] == ["sobjects"] and len(parts) >= 2:
            return self._sobjects(method, parts[1:], query)
        if parts == ["composite", "sobjects"] or parts[:2] == ["composite", "sobjects"]:
            return self._collections(method, parts[2:], query)
        if parts == ["composite"] and method == "POST":
            return self._composite()
        if parts == ["sobjects"] and method == "GET":
            objs = [{"name": n, "keyPrefix": o["keyPrefix"], "queryable": True,
                     "replicateable": True, "createable": True, "updateable": True,
                     "deletable": True} for n, o in self.emu.org.schema.objects.items()]
            return self._send(200, {"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": objs})
        raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")

    def _object(self, name):
        obj = self.emu.org.schema.find(name)
        if obj is None:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        return obj

    def _sobjects(self, method, parts, query):
        obj = self._object(parts[0])
        org = self.emu.org
        rest = parts[1:]
        if rest == ["describe"] and method == "GET":
            return self._send(200, _describe(obj))
        if rest in (["updated"], ["deleted"]) and method == "GET":
            return self._replication(obj, rest[0], query)
        if not rest and method == "POST":
            body = self._json_body() or {}
            txn = org.begin(self.origin)
            rid = self._write(lambda: org.create(txn, obj, body), txn)
            return self._answer_write(201, {"id": rid, "success": True, "errors": []}, txn,
                                      {"Location": API + "/sobjects/%s/%s" % (obj["name"], rid)})
        if len(rest) == 1:
            rid = normalize_id(rest[0])
            if rid is None:
                raise ApiError(404, "NOT_FOUND", "Provided external ID field does not exist or is "
                               "not accessible: %s" % rest[0])
            if method == "GET":
                rtype, rec = org.get(rid)
                if rec is None or rtype != obj["name"]:
                    raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
                fields = (query.get("fields") or [None])[0]
                return self._send(200, _present(obj, rec, fields.split(",") if fields else None))
            txn = org.begin(self.origin)
            if method == "PATCH":
                body = self._json_body() or {}
                self._write(lambda: org.update(txn, obj, rid, body), txn)
                return self._answer_write(204, None, txn)
            if method == "DELETE":
                self._write(lambda: org.delete(txn, obj["name"], rid), txn)
                return self._answer_write(204, None, txn)
        if len(rest) == 2 and method == "PATCH":
            return self._upsert_one(obj, rest[0], rest[1])
        raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")

    def _write(self, fn, txn):
        """Runs one record write in `txn`; a per-record failure becomes the API's error."""
        if self.emu.take_fault({"UNABLE_TO_LOCK_ROW"}):
            raise ApiError(400, "UNABLE_TO_LOCK_ROW",
                           "unable to obtain exclusive access to this record or 1 records")
        try:
            return fn()
        except RecordError as e:
            raise ApiError(e.http, e.code, e.message, e.fields)

    def _answer_write(self, status, body, txn, headers=None):
        self.emu.org.commit(txn)
        if self.emu.take_fault({"DROP_RESPONSE_AFTER_COMMIT"}):
            raise Dropped()
        self._send(status, body, headers)

    def _upsert_one(self, obj, field_name, value):
        org = self.emu.org
        f = Schema.field(obj, field_name)
        if f is None or not (f.get("externalId") or f["name"] == "Id"):
            raise ApiError(404, "NOT_FOUND", "Provided external ID field does not exist or is "
                           "not accessible: %s" % field_name)
        body = self._json_body() or {}
        for k in list(body):
            if k.lower() in (f["name"].lower(), "id"):
                raise ApiError(400, "INVALID_FIELD", "The field %s is not allowed in the body of an "
                               "upsert by external id" % k, [k])
        txn = org.begin(self.origin)
        found = _find_external(org, obj, f["name"], value)
        if len(found) > 1:
            return self._send(300, [API + "/sobjects/%s/%s" % (obj["name"], r["Id"])
                                    for r in found])
        if found:
            rid = found[0]["Id"]
            self._write(lambda: org.update(txn, obj, rid, body), txn)
            return self._answer_write(200, {"id": rid, "success": True, "errors": [],
                                            "created": False}, txn)
        values = dict(body)
        values[f["name"]] = value
        rid = self._write(lambda: org.create(txn, obj, values), txn)
        return self._answer_write(201, {"id": rid, "success": True, "errors": [], "created": True},
                                  txn)

    # -- queries -----------------------------------------------------------------------------

    def _query(self, query, include_deleted):
        text = (query.get("q") or [""])[0]
        try:
            q = soql.parse(text)
        except soql.MalformedQuery as e:
            raise ApiError(400, "MALFORMED_QUERY", str(e))
        obj = self.emu.org.schema.find(q["object"])
        if obj is None:
            raise ApiError(400, "INVALID_TYPE", "sObject type '%s' is not supported."
                           % q["object"])
        types = {n: f["type"] for n, f in obj["fields"].items()}
        lower = {n.lower(): n for n in types}
        for f in q["fields"]:
            if f.lower() not in lower:
                raise ApiError(400, "INVALID_FIELD", "No such column '%s' on entity '%s'"
                               % (f, obj["name"]))
        q = _canonical_query(q, lower)
        try:
            soql.check(q["where"], types)
            rows = [r for r in self.emu.org.visible(obj["name"], include_deleted,
                                                    since=soql.least_stamp(q["where"]),
                                                    ids=soql.id_literals(q["where"]))
                    if soql.matches(q["where"], r, types)]
            soql.order_records(rows, q["order"] or [("Id", False, False)], types)
        except soql.InvalidField as e:
            raise ApiError(400, "INVALID_FIELD", "No such column '%s' on entity '%s'"
                           % (e, obj["name"]))
        except soql.MalformedQuery as e:
            raise ApiError(400, "MALFORMED_QUERY", str(e))
        if q["limit"] is not None:
            rows = rows[:q["limit"]]
        records = [_present(obj, r, q["fields"]) for r in rows]
        batch = _batch_size(self.headers.get("Sforce-Query-Options", ""))
        return self._page(records, len(records), batch)

    def _page(self, records, total, batch):
        body = {"totalSize": total, "done": len(records) <= batch, "records": records[:batch]}
        if len(records) > batch:
            locator = "01g" + secrets.token_hex(6)
            self.emu.cursors[locator] = (records[batch:], total, batch)
            body["nextRecordsUrl"] = API + "/query/%s-%d" % (locator, batch)
        return self._send(200, body)

    def _next_page(self, token):
        locator = token.split("-")[0]
        state = self.emu.cursors.pop(locator, None)
        if state is None:
            raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        records, total, batch = state
        return self._page(records, total, batch)

    def _replication(self, obj, which, query):
        def arg(name):
            v = (query.get(name) or [None])[0]
            if v is None:
                raise ApiError(400, "MISSING_ARGUMENT", "%s not specified" % name)
            try:
                return soql.parse_datetime(v)
            except ValueError:
                raise ApiError(400, "INVALID_REPLICATION_DATE", "invalid %s: %s" % (name, v))
        start, end = arg("start"), arg("end")
        start, end = start - start % 60, end - end % 60  # seconds are ignored
        now = time.time()
        if start >= end:
            raise ApiError(400, "INVALID_REPLICATION_DATE", "startDate must chronologically "
                           "precede endDate by more than one minute")
        window = 30 if which == "updated" else 15
        if start < now - window * 86400:
            raise ApiError(400, "INVALID_REPLICATION_DATE", "startDate cannot be more than %d "
                           "days ago" % window)
        org = self.emu.org
        rows = org.visible(obj["name"], True, since=start)
        latest = min(end, now - now % 60)
        open_stamp = org.oldest_open_stamp(now)
        if open_stamp is not None:
            latest = min(latest, open_stamp - open_stamp % 60)
        if which == "updated":
            ids = [r["Id"] for r in rows if not r.get("IsDeleted") and
                   start <= soql.parse_datetime(r["SystemModstamp"]) < end]
            if len(ids) > 600000:
                raise ApiError(400, "EXCEEDED_ID_LIMIT", "too many ids")
            return self._send(200, {"ids": ids, "latestDateCovered": format_datetime(latest)})
        gone = [{"id": r["Id"], "deletedDate": r["SystemModstamp"]} for r in rows
                if r.get("IsDeleted") and start <= soql.parse_datetime(r["SystemModstamp"]) < end]
        return self._send(200, {"deletedRecords": gone,
                                "earliestDateAvailable": format_datetime(now - 15 * 86400),
                                "latestDateCovered": format_datetime(latest)})

    # -- Collections and Composite --------------------------------------------------------------

    def _collections(self, method, rest, query):
        from .collections import collections
        return collections(self, method, rest, query)

    def _composite(self):
        from .collections import composite
        return composite(self)

    # -- CometD ------------------------------------------------------------------------------

    def _cometd(self):
        from .cometd import handle
        return handle(self)


class ApiError(Exception):
    def __init__(self, status, code, message, fields=None):
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields or []


class Dropped(Exception):
    pass


def _b64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _call_origin(options):
    for part in options.split(","):
        k, _, v = part.strip().partition("=")
        if k == "client":
            return v
    return ""


def _resource_name(resource):
    parts = [p for p in resource.strip("/").split("/") if p]
    if not parts:
        return "/"
    if parts[0] == "sobjects" and len(parts) > 2 and parts[2] in ("describe", "updated",
                                                                  "deleted"):
        return "sobjects/%s" % parts[2]
    if parts[0] == "sobjects":
        return "sobjects"
    if parts[0] == "composite" and len(parts) > 1:
        return "composite/sobjects"
    return parts[0]


def _batch_size(options):
    for part in options.split(","):
        k, _, v = part.strip().partition("=")
        if k == "batchSize" and v.isdigit():
            return max(200, min(2000, int(v)))
    return BATCH_DEFAULT


def _canonical_query(q, lower):
    def fix(cond):
        if cond is None:
            return None
        if cond[0] in ("and", "or"):
            return (cond[0], fix(cond[1]), fix(cond[2]))
        name = lower.get(cond[1].lower(), cond[1])
        return (cond[0], name) + tuple(cond[2:])
    q = dict(q)
    q["fields"] = [lower[f.lower()] for f in q["fields"]]
    q["where"] = fix(q["where"])
    q["order"] = [(lower.get(f.lower(), f), d, n) for f, d, n in q["order"]]
    return q


def _present(obj, record, fields):
    out = {"attributes": {"type": obj["name"],
                          "url": API + "/sobjects/%s/%s" % (obj["name"], record["Id"])}}
    names = fields if fields else list(obj["fields"])
    for n in names:
        f = Schema.field(obj, n)
        if f is not None:
            out[f["name"]] = record.get(f["name"])
    return out


def _find_external(org, obj, field, value):
    return org.find_unique(obj["name"], field, value)


def _describe(obj):
    fields = []
    for n, f in obj["fields"].items():
        t = f["type"]
        d = {"name": n, "label": n.replace("__c", "").replace("_", " "), "type": t,
             "length": f.get("length", 0), "byteLength": 3 * f.get("length", 0),
             "precision": f.get("precision", 0), "scale": f.get("scale", 0),
             "digits": f.get("digits", 0), "nillable": f.get("nillable", True),
             "createable": f.get("createable", True), "updateable": f.get("updateable", True),
             "defaultedOnCreate": n in ("Id", "IsDeleted", "CreatedDate", "CreatedById",
                                        "LastModifiedDate", "LastModifiedById",
                                        "SystemModstamp"),
             "externalId": f.get("externalId", False), "unique": f.get("unique", False),
             "idLookup": n == "Id" or f.get("externalId", False), "calculated": False,
             "autoNumber": False, "referenceTo": f.get("referenceTo", []),
             "relationshipName": f.get("relationshipName"),
             "restrictedPicklist": t == "picklist" and f.get("restrictedPicklist", True),
             "picklistValues": [{"value": p, "label": p, "active": True, "defaultValue": False}
                                if isinstance(p, str) else p
                                for p in f.get("picklistValues", [])],
             "soapType": _SOAP.get(t, "xsd:string")}
        fields.append(d)
    return {"name": obj["name"], "label": obj["name"], "keyPrefix": obj["keyPrefix"],
            "createable": True, "updateable": True, "deletable": True, "queryable": True,
            "replicateable": True, "custom": obj["name"].endswith("__c"), "fields": fields,
            "childRelationships": []}


_SOAP = {"id": "tns:ID", "reference": "tns:ID", "boolean": "xsd:boolean", "int": "xsd:int",
         "double": "xsd:double", "currency": "xsd:double", "percent": "xsd:double",
         "date": "xsd:date", "datetime": "xsd:dateTime"}


def serve(emu, port, ready):
    Handler.emu = emu
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    ready(server)
    return server
