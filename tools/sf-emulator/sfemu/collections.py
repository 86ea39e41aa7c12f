"""sObject Collections (create, update, upsert by external id, delete, retrieve) and Composite.

Per-record results carry `statusCode` (not `errorCode`); with allOrNone every record that did
not fail itself reports ALL_OR_NONE_OPERATION_ROLLED_BACK (shared/SALESFORCE.md §3.1, §3.3).
"""

import json
import re
import urllib.parse

from .server import API, ApiError, Dropped, Handler, _find_external, _present
from .store import RecordError, Schema, normalize_id

MAX_RECORDS = 200
MAX_CHUNKS = 10
MAX_SUBREQUESTS = 25
MAX_HEAVY_SUBREQUESTS = 5  # of the 25, sObject Collections and queries (SALESFORCE.md §3.3)
ROLLED_BACK = {"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
               "message": "Record rolled back because not all records were valid and the request "
                          "was using AllOrNone header", "fields": []}


def _flag(value):
    return value is True or str(value).lower() == "true"


def collections(h, method, rest, query):
    org = h.emu.org
    if method == "GET" and len(rest) == 1:
        obj = h._object(rest[0])
        ids = (query.get("ids") or [""])[0].split(",")
        fields = (query.get("fields") or [""])[0].split(",")
        out = []
        for raw in ids:
            rid = normalize_id(raw)
            rtype, rec = org.get(rid) if rid else (None, None)
            out.append(_present(obj, rec, fields) if rec and rtype == obj["name"] else None)
        return h._send(200, out)
    if method == "DELETE" and not rest:
        ids = [i for i in (query.get("ids") or [""])[0].split(",") if i]
        all_or_none = _flag((query.get("allOrNone") or ["false"])[0])
        items = [(None, {"id": i}) for i in ids]
        return _run(h, items, all_or_none, lambda txn, obj, rec: _delete(org, txn, rec["id"]))
    body = h._json_body() or {}
    records = body.get("records")
    if not isinstance(records, list):
        raise ApiError(400, "JSON_PARSER_ERROR", "records is required")
    all_or_none = _flag(body.get("allOrNone", False))
    if method == "POST" and not rest:
        items = _typed(h, records)
        return _run(h, items, all_or_none,
                    lambda txn, obj, rec: {"id": org.create(txn, obj, _strip(rec)),
                                           "success": True, "errors": []})
    if method == "PATCH" and not rest:
        items = _typed(h, records)

        def update(txn, obj, rec):
            rid = normalize_id(rec.get("id") or rec.get("Id") or "")
            if rid is None:
                raise RecordError("MALFORMED_ID", "invalid record id", ["id"])
            values = {k: v for k, v in _strip(rec).items() if k.lower() != "id"}
            org.update(txn, obj, rid, values)
            return {"id": rid, "success": True, "errors": []}
        return _run(h, items, all_or_none, update)
    if method == "PATCH" and len(rest) == 2:
        obj = h._object(rest[0])
        f = Schema.field(obj, rest[1])
        if f is None or not f.get("externalId"):
            raise ApiError(404, "NOT_FOUND", "Provided external ID field does not exist or is not "
                           "accessible: %s" % rest[1])
        for rec in records:
            t = (rec.get("attributes") or {}).get("type")
            if t and t.lower() != obj["name"].lower():
                raise ApiError(400, "INVALID_FIELD", "upsert takes one object type: %s" % t)
        items = [(obj, rec) for rec in records]

        def upsert(txn, obj, rec):
            values = _strip(rec)
            key = next((v for k, v in values.items() if k.lower() == f["name"].lower()), None)
            if key is None:
                raise RecordError("REQUIRED_FIELD_MISSING", "Required fields are missing: [%s]"
                                  % f["name"], [f["name"]])
            found = _find_external(org, obj, f["name"], key)
            if len(found) > 1:
                raise RecordError("DUPLICATE_EXTERNAL_ID", "%s: more than one record found for "
                                  "external id field: %s" % (f["name"], key), [f["name"]])
            if found:
                rest_values = {k: v for k, v in values.items() if k.lower() != f["name"].lower()}
                org.update(txn, obj, found[0]["Id"], rest_values)
                return {"id": found[0]["Id"], "success": True, "errors": [], "created": False}
            return {"id": org.create(txn, obj, values), "success": True, "errors": [],
                    "created": True}
        return _run(h, items, all_or_none, upsert)
    raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")


def _strip(rec):
    return {k: v for k, v in rec.items() if k != "attributes"}


def _typed(h, records):
    items = []
    chunks, last = 0, None
    for rec in records:
        t = (rec.get("attributes") or {}).get("type")
        if not t:
            raise ApiError(400, "INVALID_TYPE", "Must send a concrete entity type.")
        if t != last:
            chunks += 1
            last = t
        items.append((h._object(t), rec))
    if chunks > MAX_CHUNKS:
        raise ApiError(400, "INVALID_BATCH_SIZE", "Too many chunks: a request may hold at most "
                       "%d chunks of one object type" % MAX_CHUNKS)
    return items


def _delete(org, txn, raw):
    rid = normalize_id(raw)
    if rid is None:
        raise RecordError("MALFORMED_ID", "malformed id %s" % raw, ["id"])
    org.delete(txn, None, rid)
    return {"id": rid, "success": True, "errors": []}


def _run(h, items, all_or_none, fn):
    """Writes `items` ((object, record) pairs) in one transaction, each in a savepoint."""
    if len(items) > MAX_RECORDS:
        raise ApiError(400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than "
                       "%d records into this call" % MAX_RECORDS)
    org = h.emu.org
    txn = org.begin(h.origin)
    results, failed = [], False
    org.db.execute("SAVEPOINT call")
    for obj, rec in items:
        mark = (len(txn["events"]), len(txn["writes"]))
        org.db.execute("SAVEPOINT rec")
        try:
            if h.emu.take_fault({"UNABLE_TO_LOCK_ROW"}):
                raise RecordError("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to "
                                  "this record or 1 records", [])
            results.append(fn(txn, obj, rec))
            org.db.execute("RELEASE rec")
        except RecordError as e:
            org.db.execute("ROLLBACK TO rec")
            org.db.execute("RELEASE rec")
            del txn["events"][mark[0]:]
            del txn["writes"][mark[1]:]
            failed = True
            out = {"success": False, "errors": [e.as_record_error()]}
            if rec.get("id"):
                out["id"] = rec.get("id")
            results.append(out)
    if all_or_none and failed:
        org.db.execute("ROLLBACK TO call")
        org.db.execute("RELEASE call")
        results = [r if not r["success"] else {"success": False, "errors": [ROLLED_BACK]}
                   for r in results]
        return h._send(200, results)
    org.db.execute("RELEASE call")
    return h._answer_write(200, results, txn)


class _Sub(Handler):
    """A Composite subrequest run through the same handlers, its answer captured."""

    def __init__(self, parent, body):  # no socket: BaseHTTPRequestHandler.__init__ not run
        self.emu = parent.emu
        self.headers = parent.headers
        self.origin = parent.origin
        self.body = body
        self.answer = None
        self.txns = []

    def _json_body(self):
        return self.body

    def _send(self, status, body=None, headers=None, api=True):
        self.answer = (status, body, headers or {})

    def _answer_write(self, status, body, txn, headers=None):
        self.txns.append(txn)  # committed (or dropped) with the whole Composite
        self._send(status, body, headers)


def composite(h):
    body = h._json_body() or {}
    subs = body.get("compositeRequest")
    if not isinstance(subs, list) or not subs:
        raise ApiError(400, "JSON_PARSER_ERROR", "compositeRequest is required")
    if len(subs) > MAX_SUBREQUESTS:
        raise ApiError(400, "INVALID_BATCH_SIZE", "Limit Exceeded: at most %d subrequests"
                       % MAX_SUBREQUESTS)
    heavy = [sub for sub in subs if isinstance(sub, dict) and _heavy(sub.get("url", ""))]
    if len(heavy) > MAX_HEAVY_SUBREQUESTS:
        raise ApiError(400, "INVALID_BATCH_SIZE", "Limit Exceeded: a composite request may hold "
                       "at most %d sObject Collections or query subrequests"
                       % MAX_HEAVY_SUBREQUESTS)
    all_or_none = _flag(body.get("allOrNone", False))
    org = h.emu.org
    refs, out, txns, failed = {}, [], [], None
    org.db.execute("SAVEPOINT composite")
    for sub in subs:
        ref = sub.get("referenceId", "")
        if failed is not None and (all_or_none or _depends(sub, failed)):
            out.append({"body": [{"errorCode": "PROCESSING_HALTED", "message": "The transaction "
                                  "was rolled back since another operation in the same "
                                  "transaction failed."}], "httpHeaders": {},
                        "httpStatusCode": 400, "referenceId": ref})
            continue
        try:
            url = _substitute(sub.get("url", ""), refs)
            payload = json.loads(_substitute(json.dumps(sub.get("body")), refs)) \
                if sub.get("body") is not None else None
        except KeyError as e:
            status, answer = 400, [{"errorCode": "INVALID_REFERENCE", "message":
                                    "Invalid reference specified: %s" % e}]
        else:
            status, answer = _run_sub(h, sub.get("method", "GET"), url, payload, txns)
        out.append({"body": answer, "httpHeaders": {}, "httpStatusCode": status,
                    "referenceId": ref})
        if status >= 400:
            failed = ref if failed is None else failed
        elif isinstance(answer, dict):
            refs[ref] = answer
    if all_or_none and failed is not None:
        org.db.execute("ROLLBACK TO composite")
        org.db.execute("RELEASE composite")
        for item in out:
            if item["httpStatusCode"] < 400:
                item["httpStatusCode"] = 400
                item["body"] = [{"errorCode": "PROCESSING_HALTED", "message": "The transaction was "
                                 "rolled back since another operation in the same transaction "
                                 "failed."}]
        return h._send(200, {"compositeResponse": out})
    org.db.execute("RELEASE composite")
    for txn in txns:
        org.commit(txn)
    if h.emu.take_fault({"DROP_RESPONSE_AFTER_COMMIT"}):
        raise Dropped()
    return h._send(200, {"compositeResponse": out})


def _run_sub(h, method, url, payload, txns):
    split = urllib.parse.urlsplit(url)
    if not split.path.startswith(API):
        return 400, [{"errorCode": "INVALID_URL", "message": "url must start with " + API}]
    sub = _Sub(h, payload)
    try:
        sub._api(method.upper(), split.path[len(API):], urllib.parse.parse_qs(split.query))
    except ApiError as e:
        return e.status, [{"message": e.message, "errorCode": e.code, "fields": e.fields}]
    txns.extend(sub.txns)
    status, body, _ = sub.answer
    return status, body


def _substitute(text, refs):
    def one(m):
        ref, _, path = m.group(1).partition(".")
        value = refs[ref]
        for part in path.split(".") if path else []:
            value = value[part]
        return str(value)
    return re.sub(r"@\{([^}]+)\}", one, text)


def _heavy(url):
    path = urllib.parse.urlsplit(url).path
    rest = path[len(API):] if path.startswith(API) else path
    return rest.startswith(("/composite/sobjects", "/query", "/queryAll"))


def _depends(sub, failed):
    return ("@{%s." % failed) in json.dumps(sub)
