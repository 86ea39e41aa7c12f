"""The emulator's org: objects described by a schema, records with 18-character ids, soft
deletes with a delete log, the change-event feed, kept in DIR/org.db (SQLite) across restarts.

The transaction model of shared/SALESFORCE.md §9.3: a write takes its SystemModstamp (and
LastModifiedDate) at its start, at one-second precision, and becomes visible when it commits;
`hold` makes the next write commit seconds after its stamp (the transaction-start pitfall).
"""

import copy
import datetime as dt
import json
import sqlite3
import threading
import time

SYSTEM_FIELDS = {
    "Id": {"type": "id", "length": 18, "nillable": False, "createable": False, "updateable": False},
    "IsDeleted": {"type": "boolean", "nillable": False, "createable": False, "updateable": False},
    "CreatedDate": {"type": "datetime", "nillable": False, "createable": False,
                    "updateable": False},
    "CreatedById": {"type": "reference", "length": 18, "nillable": False, "createable": False,
                    "updateable": False, "referenceTo": ["User"]},
    "LastModifiedDate": {"type": "datetime", "nillable": False, "createable": False,
                         "updateable": False},
    "LastModifiedById": {"type": "reference", "length": 18, "nillable": False,
                         "createable": False, "updateable": False, "referenceTo": ["User"]},
    "SystemModstamp": {"type": "datetime", "nillable": False, "createable": False,
                       "updateable": False},
}

DEFAULT_SCHEMA = {
    "objects": {
        "Account": {
            "keyPrefix": "001",
            "fields": {
                "Name": {"type": "string", "length": 255, "nillable": False},
                "Industry": {"type": "string", "length": 40},
                "Rating": {"type": "picklist", "picklistValues": ["Hot", "Warm", "Cold"]},
                "AnnualRevenue": {"type": "currency", "precision": 18, "scale": 0},
                "NumberOfEmployees": {"type": "int", "digits": 8},
                "Description": {"type": "textarea", "length": 32000},
                "External_Id__c": {"type": "string", "length": 255, "externalId": True,
                                   "unique": True},
            },
            "rules": [],
        },
        "Contact": {
            "keyPrefix": "003",
            "fields": {
                "FirstName": {"type": "string", "length": 40},
                "LastName": {"type": "string", "length": 80, "nillable": False},
                "Email": {"type": "email", "length": 80},
                "Phone": {"type": "phone", "length": 40},
                "AccountId": {"type": "reference", "length": 18, "referenceTo": ["Account"],
                              "relationshipName": "Account"},
                "External_Id__c": {"type": "string", "length": 255, "externalId": True,
                                   "unique": True},
            },
            "rules": [],
        },
    }
}

KNOWN_PREFIXES = {"Account": "001", "Contact": "003", "Opportunity": "006", "User": "005",
                  "Lead": "00Q", "Case": "500", "Campaign": "701"}
USER_ID = "005000000000001AAA"
ORG_ID = "00D000000000001EAA"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def id18(id15):
    """The 18-character form: three checksum characters, one per run of five."""
    suffix = ""
    for run in range(3):
        bits = 0
        for i, c in enumerate(id15[run * 5:run * 5 + 5]):
            if "A" <= c <= "Z":
                bits |= 1 << i
        suffix += "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"[bits]
    return id15 + suffix


def valid_id(value):
    if not isinstance(value, str) or len(value) not in (15, 18):
        return False
    if any(c not in _BASE62 for c in value[:15]):
        return False
    return len(value) == 15 or id18(value[:15]).lower() == value.lower()


def normalize_id(value):
    """An id as the API returns it (18 characters), or None if it is not one."""
    if not valid_id(value):
        return None
    return id18(value[:15])


def format_datetime(seconds):
    """A datetime as the API prints it: 2013-05-07T22:07:19.000+0000."""
    t = dt.datetime.fromtimestamp(seconds, dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03d+0000" % (t.microsecond // 1000)


class Schema:
    def __init__(self, doc):
        self.objects = {}
        used = set()
        for name, obj in doc.get("objects", {}).items():
            prefix = obj.get("keyPrefix") or KNOWN_PREFIXES.get(name)
            if not prefix:
                n = len(used)
                prefix = "a%02d" % n
            used.add(prefix)
            fields = {}
            for fname, f in SYSTEM_FIELDS.items():
                fields[fname] = dict(f, name=fname, system=True)
            for fname, f in obj.get("fields", {}).items():
                g = {"type": f.get("type", "string"), "nillable": f.get("nillable", True),
                     "createable": True, "updateable": True}
                g.update(f)
                g["name"] = fname
                if g["type"] in ("string", "textarea", "email", "phone", "url", "picklist",
                                 "multipicklist") and "length" not in g:
                    g["length"] = 255
                fields[fname] = g
            self.objects[name] = {"name": name, "keyPrefix": prefix, "fields": fields,
                                  "rules": obj.get("rules", [])}
        self.by_prefix = {o["keyPrefix"]: n for n, o in self.objects.items()}

    def find(self, name):
        """The object by name (case-insensitive), or None."""
        for n, o in self.objects.items():
            if n.lower() == name.lower():
                return o
        return None

    @staticmethod
    def field(obj, name):
        for n, f in obj["fields"].items():
            if n.lower() == name.lower():
                return f
        return None


class RecordError(Exception):
    """A per-record failure: statusCode, message, fields (the API's shapes)."""

    def __init__(self, code, message, fields=None, http=400):
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields = fields or []
        self.http = http

    def as_record_error(self):
        return {"statusCode": self.code, "message": self.message, "fields": self.fields}

    def as_error(self):
        return {"message": self.message, "errorCode": self.code, "fields": self.fields}


class Org:
    """The records and the event feed. One lock: every request is short."""

    def __init__(self, data_dir, schema):
        self.schema = schema
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.db = sqlite3.connect(data_dir + "/org.db", check_same_thread=False,
                                  isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        # Every statement commits on its own; in WAL mode NORMAL still keeps each commit when
        # the process is killed (only a machine crash can lose the last ones), without an fsync
        # per statement, which made writes 3x slower (bench/salesforce loads 400k records).
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript("""
          CREATE TABLE IF NOT EXISTS records(id TEXT PRIMARY KEY, type TEXT NOT NULL,
            fields TEXT NOT NULL, deleted INTEGER NOT NULL DEFAULT 0, modstamp REAL NOT NULL,
            visible_at REAL NOT NULL, deleted_at REAL);
          CREATE INDEX IF NOT EXISTS records_type ON records(type, modstamp);
          CREATE TABLE IF NOT EXISTS events(replay_id INTEGER PRIMARY KEY AUTOINCREMENT,
            payload TEXT NOT NULL, visible_at REAL NOT NULL);
          CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v);
          CREATE TABLE IF NOT EXISTS uniq(type TEXT NOT NULL, field TEXT NOT NULL,
            value TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY(type, field, value, id));
          CREATE INDEX IF NOT EXISTS uniq_id ON uniq(id);
        """)
        self.hold_next = 0.0
        self.txn_counter = 0
        self.pending = []  # (visible_at, events) of held transactions not committed yet

    # -- ids and time ------------------------------------------------------------------------

    def _next_id(self, obj):
        key = "seq:" + obj["keyPrefix"]
        row = self.db.execute("SELECT v FROM meta WHERE k = ?", (key,)).fetchone()
        n = (row[0] if row else 0) + 1
        self.db.execute("INSERT INTO meta(k, v) VALUES(?, ?) ON CONFLICT(k) DO UPDATE SET v = ?",
                        (key, n, n))
        body = ""
        x = n
        for _ in range(9):
            body = _BASE62[x % 62] + body
            x //= 62
        return id18(obj["keyPrefix"] + "000" + body)

    def meta(self, key, default=None):
        row = self.db.execute("SELECT v FROM meta WHERE k = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key, value):
        self.db.execute("INSERT INTO meta(k, v) VALUES(?, ?) ON CONFLICT(k) DO UPDATE SET v = ?",
                        (key, value, value))

    # -- reads -------------------------------------------------------------------------------

    def visible(self, obj_name, include_deleted, now=None, since=None, ids=None):
        """Every committed record of the object (dicts with system fields), by id; with `since`
        (epoch seconds), only those whose SystemModstamp is at or after it (read through the
        (type, modstamp) index, so a poll of recent changes does not decode every record); with
        `ids` (a list of ids, 15 or 18 characters), only those (read by primary key: a look-up
        of 200 records by Id does not decode every record of the object)."""
        now = time.time() if now is None else now
        sql = "SELECT fields, deleted FROM records WHERE type = ? AND visible_at <= ?"
        params = [obj_name, now]
        if ids is not None:
            full = sorted({normalize_id(i) for i in ids if normalize_id(i)})
            if not full:
                return []
            sql += " AND id IN (%s)" % ", ".join("?" * len(full))
            params.extend(full)
        if not include_deleted:
            sql += " AND deleted = 0"
        if since is not None:
            sql += " AND modstamp >= ?"
            params.append(since)
        return [json.loads(r[0]) for r in self.db.execute(sql, params).fetchall()]

    def get(self, rid, include_deleted=False, now=None):
        now = time.time() if now is None else now
        row = self.db.execute("SELECT type, fields, deleted FROM records WHERE id = ? AND "
                              "visible_at <= ?", (rid, now)).fetchone()
        if not row or (row[2] and not include_deleted):
            return None, None
        return row[0], json.loads(row[1])

    def oldest_open_stamp(self, now=None):
        """The SystemModstamp of the oldest write not visible yet, or None."""
        now = time.time() if now is None else now
        row = self.db.execute("SELECT min(modstamp) FROM records WHERE visible_at > ?",
                              (now,)).fetchone()
        return row[0]

    # -- writes ------------------------------------------------------------------------------

    def begin(self, origin):
        """A write transaction: the stamp now (whole seconds), visible when it commits."""
        now = time.time()
        hold, self.hold_next = self.hold_next, 0.0
        self.txn_counter += 1
        return {"stamp": float(int(now)), "visible_at": now + hold, "origin": origin,
                "key": "%016x%08x" % (int(now * 1000), self.txn_counter), "events": [],
                "writes": []}

    def _validate(self, obj, values, creating, current=None):
        out = {}
        for name, value in values.items():
            if name == "attributes":
                continue
            f = Schema.field(obj, name)
            if f is None:
                raise RecordError("INVALID_FIELD", "No such column '%s' on sobject of type %s"
                                  % (name, obj["name"]), [name])
            name = f["name"]
            if f.get("system") or (creating and not f.get("createable", True)) or (
                    not creating and not f.get("updateable", True)):
                raise RecordError("INVALID_FIELD_FOR_INSERT_UPDATE",
                                  "Unable to create/update fields: %s. Please check the security "
                                  "settings of this field and verify that it is read/write for "
                                  "your profile or permission set." % name, [name])
            out[name] = self._convert(obj, f, value)
        merged = dict(current or {})
        merged.update(out)
        for name, f in obj["fields"].items():
            if f.get("system") or f.get("nillable", True):
                continue
            if merged.get(name) in (None, ""):
                raise RecordError("REQUIRED_FIELD_MISSING",
                                  "Required fields are missing: [%s]" % name, [name])
        return out

    def _convert(self, obj, f, value):
        name, t = f["name"], f["type"]
        if value is None:
            return None
        bad = RecordError("INVALID_TYPE_ON_FIELD_IN_RECORD",
                          "%s: value not of required type: %s" % (name, json.dumps(value)), [name])
        if t in ("string", "textarea", "email", "phone", "url", "picklist", "multipicklist"):
            if t == "multipicklist" and isinstance(value, list):
                raise RecordError("JSON_PARSER_ERROR", "Cannot deserialize instance of string "
                                  "from START_ARRAY value", [name])
            if not isinstance(value, str):
                value = json.dumps(value) if not isinstance(value, (int, float)) else str(value)
            if len(value) > f.get("length", 255):
                raise RecordError("STRING_TOO_LONG", "%s: data value too large: %s (max length=%d)"
                                  % (name, value[:40], f.get("length", 255)), [name])
            if t == "picklist" and f.get("picklistValues") and f.get("restrictedPicklist", True):
                allowed = [p if isinstance(p, str) else p.get("value")
                           for p in f["picklistValues"]]
                if value not in allowed:
                    raise RecordError("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                                      "%s: bad value for restricted picklist field: %s"
                                      % (name, value), [name])
            return value
        if t in ("int",):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                    isinstance(value, float) and not value.is_integer()):
                raise bad
            return int(value)
        if t in ("double", "currency", "percent"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise bad
            return value
        if t == "boolean":
            if not isinstance(value, bool):
                raise bad
            return value
        if t == "date":
            if not isinstance(value, str) or len(value) != 10:
                raise bad
            return value
        if t == "datetime":
            from .soql import parse_datetime
            try:
                return format_datetime(parse_datetime(value))
            except Exception:
                raise bad
        if t in ("reference", "id"):
            rid = normalize_id(value) if isinstance(value, str) else None
            if rid is None:
                raise RecordError("MALFORMED_ID", "%s: id value of incorrect type: %s"
                                  % (name, value), [name])
            target_type, _ = self.get(rid)
            targets = f.get("referenceTo", [])
            if target_type is None or (targets and target_type not in targets):
                raise RecordError("INVALID_CROSS_REFERENCE_KEY",
                                  "invalid cross reference id", [name])
            return rid
        return value

    @staticmethod
    def _unique_fields(obj):
        return [n for n, f in obj["fields"].items() if f.get("unique") or f.get("externalId")]

    def find_unique(self, obj_name, field, value):
        """Live records whose unique or external-id `field` equals `value` (case-insensitive)."""
        rows = self.db.execute(
            "SELECT r.fields FROM uniq u JOIN records r ON r.id = u.id WHERE u.type = ? AND "
            "u.field = ? AND u.value = ? AND r.deleted = 0 ORDER BY r.id",
            (obj_name, field, str(value).lower())).fetchall()
        return [json.loads(r[0]) for r in rows]

    def _check_unique(self, obj, values, own_id):
        for name in self._unique_fields(obj):
            v = values.get(name)
            if v is None:
                continue
            for other in self.find_unique(obj["name"], name, v):
                if other["Id"] != own_id:
                    raise RecordError("DUPLICATE_VALUE",
                                      "duplicate value found: %s duplicates value on record with "
                                      "id: %s" % (name, other["Id"]), [name])

    def _apply_rules(self, obj, before, after, changed):
        for rule in obj.get("rules", []):
            field = rule.get("when_changed")
            if field in changed and (before or {}).get(field) != after.get(field):
                for k, v in rule.get("set", {}).items():
                    if after.get(k) != v:
                        after[k] = v
                        changed.add(k)

    def create(self, txn, obj, values):
        fields = self._validate(obj, values, True)
        rid = self._next_id(obj)
        record = {"Id": rid, "IsDeleted": False}
        for name, f in obj["fields"].items():
            if not f.get("system"):
                record[name] = None
        record.update(fields)
        changed = set(fields)
        self._apply_rules(obj, None, record, changed)
        self._check_unique(obj, record, rid)
        stamp = format_datetime(txn["stamp"])
        record.update({"CreatedDate": stamp, "CreatedById": USER_ID, "LastModifiedDate": stamp,
                       "LastModifiedById": USER_ID, "SystemModstamp": stamp})
        self._store(txn, obj, record)
        self._event(txn, obj, "CREATE", rid, record, None)
        return rid

    def update(self, txn, obj, rid, values):
        rtype, current = self.get(rid, include_deleted=True, now=float("inf"))
        if current is None or rtype != obj["name"]:
            raise RecordError("NOT_FOUND", "The requested resource does not exist", [], 404)
        if current.get("IsDeleted"):
            raise RecordError("ENTITY_IS_DELETED", "entity is deleted", [], 404)
        fields = self._validate(obj, values, False, current)
        after = dict(current)
        after.update(fields)
        changed = {k for k in fields if current.get(k) != fields[k]}
        self._apply_rules(obj, current, after, changed)
        self._check_unique(obj, after, rid)
        stamp = format_datetime(txn["stamp"])
        after.update({"LastModifiedDate": stamp, "LastModifiedById": USER_ID,
                      "SystemModstamp": stamp})
        self._store(txn, obj, after)
        self._event(txn, obj, "UPDATE", rid, after, sorted(changed) + ["LastModifiedDate"])

    def delete(self, txn, obj_name, rid):
        rtype, current = self.get(rid, include_deleted=True, now=float("inf"))
        if current is None or (obj_name and rtype != obj_name):
            raise RecordError("NOT_FOUND", "The requested resource does not exist", [], 404)
        if current.get("IsDeleted"):
            raise RecordError("ENTITY_IS_DELETED", "entity is deleted", [], 404)
        obj = self.schema.objects[rtype]
        after = dict(current)
        stamp = format_datetime(txn["stamp"])
        after.update({"IsDeleted": True, "LastModifiedDate": stamp, "SystemModstamp": stamp})
        self._store(txn, obj, after, deleted=True)
        self._event(txn, obj, "DELETE", rid, None, None)

    def _store(self, txn, obj, record, deleted=False):
        self.db.execute(
            "INSERT INTO records(id, type, fields, deleted, modstamp, visible_at, deleted_at) "
            "VALUES(?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET fields = excluded.fields, "
            "deleted = excluded.deleted, modstamp = excluded.modstamp, "
            "visible_at = excluded.visible_at, deleted_at = excluded.deleted_at",
            (record["Id"], obj["name"], json.dumps(record), 1 if deleted else 0, txn["stamp"],
             txn["visible_at"], txn["stamp"] if deleted else None))
        self.db.execute("DELETE FROM uniq WHERE id = ?", (record["Id"],))
        if not deleted:
            for name in self._unique_fields(obj):
                if record.get(name) is not None:
                    self.db.execute("INSERT OR IGNORE INTO uniq(type, field, value, id) "
                                    "VALUES(?, ?, ?, ?)", (obj["name"], name,
                                                           str(record[name]).lower(),
                                                           record["Id"]))
        txn["writes"].append(record["Id"])

    def _event(self, txn, obj, change, rid, record, changed):
        header = {
            "entityName": obj["name"], "recordIds": [rid], "changeType": change,
            "changeOrigin": ("com/salesforce/api/rest/61.0;client=" + txn["origin"])
            if txn["origin"] else "com/salesforce/api/rest/61.0",
            "transactionKey": txn["key"], "sequenceNumber": len(txn["events"]) + 1,
            "commitTimestamp": int(txn["visible_at"] * 1000), "commitNumber": 0,
            "commitUser": USER_ID,
        }
        payload = {"ChangeEventHeader": header}
        if change == "CREATE":
            header["changedFields"] = []
            for k, v in record.items():
                if k not in ("Id", "IsDeleted", "SystemModstamp") and v is not None:
                    payload[k] = v
        elif change == "UPDATE":
            header["changedFields"] = changed
            for k in changed:
                payload[k] = record.get(k)
        else:
            header["changedFields"] = []
        txn["events"].append(payload)

    def commit(self, txn):
        """Makes the transaction's events part of the feed when its rows become visible: a
        held transaction's events get their replay ids when it commits, after the ones of
        transactions that committed meanwhile (events arrive in commit order)."""
        if txn["events"]:
            self.pending.append((txn["visible_at"], txn["events"]))
        self.flush(time.time())

    def flush(self, now):
        """Moves the events of transactions that have committed by `now` into the feed."""
        due = sorted((p for p in self.pending if p[0] <= now), key=lambda p: p[0])
        if not due:
            return
        self.pending = [p for p in self.pending if p[0] > now]
        for visible_at, events in due:
            for payload in events:
                self.db.execute("INSERT INTO events(payload, visible_at) VALUES(?, ?)",
                                (json.dumps(payload), visible_at))
        self.changed.notify_all()

    def events_after(self, replay_id, now=None, limit=1000):
        """Visible change events after `replay_id` (-1: none but new ones; -2: all kept)."""
        now = time.time() if now is None else now
        self.flush(now)
        cutoff = now - 72 * 3600
        rows = self.db.execute(
            "SELECT replay_id, payload FROM events WHERE replay_id > ? AND visible_at <= ? AND "
            "visible_at > ? ORDER BY replay_id LIMIT ?", (replay_id, now, cutoff, limit)).fetchall()
        return [(r[0], json.loads(r[1])) for r in rows]

    def replay_id_valid(self, replay_id, now=None):
        """Whether a subscription may resume after `replay_id`: 0 (all) or an id given out
        whose event is still retained (72 h), or the newest id."""
        if replay_id == 0:
            return True
        now = time.time() if now is None else now
        self.flush(now)
        row = self.db.execute("SELECT 1 FROM events WHERE replay_id = ? AND visible_at > ?",
                              (replay_id, now - 72 * 3600)).fetchone()
        return row is not None

    def expire_events(self, through):
        """Ages the events up to `through` past the retention (a test hook: 72 h in a call)."""
        self.db.execute("UPDATE events SET visible_at = visible_at - 73 * 3600 WHERE "
                        "replay_id <= ?", (through,))

    def add_gap(self, entity, change_type, record_ids):
        """A gap event, as Salesforce sends when it could not build the change events of a
        transaction (GAP_CREATE, GAP_UPDATE, ...) or when too many changes came at once
        (GAP_OVERFLOW, whose recordIds is a wildcard: the object's key prefix and '*')."""
        obj = self.schema.find(entity)
        if obj is None:
            raise KeyError(entity)
        if change_type == "GAP_OVERFLOW" and not record_ids:
            record_ids = [obj["keyPrefix"] + "*"]
        now = time.time()
        header = {"entityName": obj["name"], "recordIds": list(record_ids),
                  "changeType": change_type, "changedFields": [], "changeOrigin": "",
                  "transactionKey": "%016x%08x" % (int(now * 1000), 0), "sequenceNumber": 1,
                  "commitTimestamp": int(now * 1000), "commitNumber": 0, "commitUser": USER_ID}
        self.db.execute("INSERT INTO events(payload, visible_at) VALUES(?, ?)",
                        (json.dumps({"ChangeEventHeader": header}), now))
        self.changed.notify_all()

    def last_replay_id(self):
        row = self.db.execute("SELECT max(replay_id) FROM events").fetchone()
        return row[0] or 0

    def snapshot(self):
        return copy.deepcopy(self.schema.objects)
