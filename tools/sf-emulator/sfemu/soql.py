"""The SOQL subset the emulator answers (shared/SALESFORCE.md §9.4).

SELECT f1, f2 FROM T [WHERE cond] [ORDER BY f [ASC|DESC] [NULLS FIRST|LAST], ...] [LIMIT n]
cond: AND / OR / NOT-free boolean of comparisons `field op literal` (= != <> < <= > >=) and
`field [NOT] IN (literal, ...)`, with parentheses. Literals: 'strings' (\\' escapes), numbers,
true, false, null, unquoted datetimes (2024-01-02T03:04:05Z, +hh:mm offsets) and dates.
Anything else is MALFORMED_QUERY, as Salesforce answers it.
"""

import datetime as dt
import re


class MalformedQuery(Exception):
    pass


_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>'(?:[^'\\]|\\.)*')
    | (?P<dt>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2}))
    | (?P<date>\d{4}-\d{2}-\d{2})
    | (?P<num>-?\d+(?:\.\d+)?)
    | (?P<op><=|>=|!=|<>|=|<|>)
    | (?P<punct>[(),])
    | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)

KEYWORDS = {"SELECT", "FROM", "WHERE", "AND", "OR", "ORDER", "BY", "ASC", "DESC", "LIMIT",
            "IN", "NOT", "NULLS", "FIRST", "LAST", "TRUE", "FALSE", "NULL"}


def _tokens(text):
    pos, out = 0, []
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise MalformedQuery("unexpected token at position %d: %r" % (pos, text[pos:pos + 20]))
        pos = m.end()
        kind = m.lastgroup
        value = m.group(kind)
        if kind == "word" and value.upper() in KEYWORDS:
            kind, value = "kw", value.upper()
        out.append((kind, value))
    return out


def parse_datetime(text):
    """An ISO 8601 datetime (SOQL literal or API value) as epoch seconds (float)."""
    t = text.strip()
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    m = re.match(r"^(.*[+-]\d{2})(\d{2})$", t)  # +0000 without a colon
    if m and ":" not in t[-5:]:
        t = m.group(1) + ":" + m.group(2)
    if re.match(r"^\d{4}-\d{2}-\d{2}$", t):
        t += "T00:00:00+00:00"
    value = dt.datetime.fromisoformat(t)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.timestamp()


class _Parser:
    def __init__(self, text):
        self.toks = _tokens(text)
        self.i = 0

    def peek(self, kind=None, value=None):
        if self.i >= len(self.toks):
            return None
        k, v = self.toks[self.i]
        if kind and k != kind:
            return None
        if value and v != value:
            return None
        return self.toks[self.i]

    def take(self, kind=None, value=None):
        t = self.peek(kind, value)
        if t is None:
            got = self.toks[self.i][1] if self.i < len(self.toks) else "end of query"
            raise MalformedQuery("expected %s, found %r" % (value or kind, got))
        self.i += 1
        return t[1]

    def query(self):
        self.take("kw", "SELECT")
        fields = [self.take("word")]
        while self.peek("punct", ","):
            self.take()
            fields.append(self.take("word"))
        self.take("kw", "FROM")
        obj = self.take("word")
        where = None
        order = []
        limit = None
        if self.peek("kw", "WHERE"):
            self.take()
            where = self.expr()
        if self.peek("kw", "ORDER"):
            self.take()
            self.take("kw", "BY")
            while True:
                f = self.take("word")
                desc = False
                if self.peek("kw", "ASC"):
                    self.take()
                elif self.peek("kw", "DESC"):
                    self.take()
                    desc = True
                nulls_last = desc
                if self.peek("kw", "NULLS"):
                    self.take()
                    nulls_last = self.take("kw") == "LAST"
                order.append((f, desc, nulls_last))
                if not self.peek("punct", ","):
                    break
                self.take()
        if self.peek("kw", "LIMIT"):
            self.take()
            limit = int(float(self.take("num")))
        if self.i != len(self.toks):
            raise MalformedQuery("unexpected %r" % self.toks[self.i][1])
        return {"fields": fields, "object": obj, "where": where, "order": order, "limit": limit}

    def expr(self):
        left = self.conj()
        while self.peek("kw", "OR"):
            self.take()
            left = ("or", left, self.conj())
        return left

    def conj(self):
        left = self.atom()
        while self.peek("kw", "AND"):
            self.take()
            left = ("and", left, self.atom())
        return left

    def atom(self):
        if self.peek("punct", "("):
            self.take()
            e = self.expr()
            self.take("punct", ")")
            return e
        field = self.take("word")
        negate = False
        if self.peek("kw", "NOT"):
            self.take()
            negate = True
            if not self.peek("kw", "IN"):
                raise MalformedQuery("NOT must be followed by IN")
        if self.peek("kw", "IN"):
            self.take()
            self.take("punct", "(")
            values = [self.literal()]
            while self.peek("punct", ","):
                self.take()
                values.append(self.literal())
            self.take("punct", ")")
            return ("notin" if negate else "in", field, values)
        op = self.take("op")
        return ("cmp", field, "!=" if op == "<>" else op, self.literal())

    def literal(self):
        if self.i >= len(self.toks):
            raise MalformedQuery("expected a value, found end of query")
        kind, value = self.toks[self.i]
        self.i += 1
        if kind == "str":
            return ("str", re.sub(r"\\(.)", r"\1", value[1:-1]))
        if kind == "num":
            return ("num", float(value))
        if kind == "dt":
            return ("datetime", parse_datetime(value))
        if kind == "date":
            return ("date", value)
        if kind == "kw" and value in ("TRUE", "FALSE"):
            return ("bool", value == "TRUE")
        if kind == "kw" and value == "NULL":
            return ("null", None)
        raise MalformedQuery("expected a value, found %r" % value)


def parse(text):
    return _Parser(text).query()


def _comparable(ftype, value, literal):
    """(record value, literal value) in one domain, or raises MalformedQuery on a type clash."""
    kind, lit = literal
    if kind == "null":
        return value, None
    if ftype == "datetime":
        if kind != "datetime":
            raise MalformedQuery("a datetime field compares with a datetime literal, not %s" % kind)
        return (parse_datetime(value) if value is not None else None), lit
    if ftype == "date":
        if kind != "date":
            raise MalformedQuery("a date field compares with a date literal (YYYY-MM-DD), not %s"
                                 % kind)
        return value, lit
    if ftype in ("int", "double", "currency", "percent"):
        if kind != "num":
            raise MalformedQuery("a number field compares with a number, not %s" % kind)
        return (float(value) if value is not None else None), lit
    if ftype == "boolean":
        if kind != "bool":
            raise MalformedQuery("a boolean field compares with true or false")
        return value, lit
    if kind != "str":
        raise MalformedQuery("a %s field compares with a quoted string" % ftype)
    if ftype in ("id", "reference") and value is not None:
        return value[:15], lit[:15]  # 15- and 18-character ids are the same record
    return (value.lower() if isinstance(value, str) else value), lit.lower()


def matches(cond, record, types):
    """Whether `record` (field -> value) satisfies `cond`; `types` maps field -> describe type."""
    if cond is None:
        return True
    tag = cond[0]
    if tag == "or":
        return matches(cond[1], record, types) or matches(cond[2], record, types)
    if tag == "and":
        return matches(cond[1], record, types) and matches(cond[2], record, types)
    field = cond[1]
    if field not in types:
        raise InvalidField(field)
    if tag in ("in", "notin"):
        hit = False
        for lit in cond[2]:
            a, b = _comparable(types[field], record.get(field), lit)
            hit = hit or (a == b)
        return hit if tag == "in" else not hit
    _, _, op, lit = cond
    a, b = _comparable(types[field], record.get(field), lit)
    if op == "=":
        return a == b
    if op == "!=":
        return a != b
    if a is None or b is None:
        return False
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def least_stamp(cond):
    """The earliest SystemModstamp a record matching `cond` can have, as epoch seconds: the
    largest lower bound (`SystemModstamp >= / > / = datetime`) among the top-level AND terms, or
    None. A bound only narrows what is read; `matches` still decides every record."""
    if cond is None:
        return None
    if cond[0] == "and":
        bounds = [b for b in (least_stamp(cond[1]), least_stamp(cond[2])) if b is not None]
        return max(bounds) if bounds else None
    if (cond[0] == "cmp" and cond[1] == "SystemModstamp" and cond[2] in (">=", ">", "=")
            and cond[3][0] == "datetime"):
        return cond[3][1]
    return None


def id_literals(cond):
    """The ids a record matching `cond` can have, as the literals name them (15 or 18
    characters): from an `Id IN (...)` or `Id = '...'` among the top-level AND terms, or None
    when the condition does not bound them. Like least_stamp, only narrows what is read."""
    if cond is None:
        return None
    if cond[0] == "and":
        a, b = id_literals(cond[1]), id_literals(cond[2])
        if a is None:
            return b
        if b is None:
            return a
        return [x for x in a if x[:15] in {y[:15] for y in b}]
    if cond[0] == "in" and cond[1] == "Id":
        values = [lit[1] for lit in cond[2]]
    elif cond[0] == "cmp" and cond[1] == "Id" and cond[2] == "=":
        values = [cond[3][1]]
    else:
        return None
    if not all(isinstance(v, str) for v in values):
        return None
    return values


class InvalidField(Exception):
    pass


def check(cond, types):
    """Raises InvalidField or MalformedQuery for a condition that cannot be evaluated, before any
    record is read (a type clash is an error even on an empty object)."""
    if cond is None:
        return
    if cond[0] in ("and", "or"):
        check(cond[1], types)
        check(cond[2], types)
        return
    field = cond[1]
    if field not in types:
        raise InvalidField(field)
    literals = cond[2] if cond[0] in ("in", "notin") else [cond[3]]
    for lit in literals:
        _comparable(types[field], None, lit)


def order_records(records, order, types):
    """Sorts in place by `order` (stable, one field at a time from the last)."""
    for field, desc, nulls_last in reversed(order):
        if field not in types:
            raise InvalidField(field)
        def k(r, field=field):
            v = r.get(field)
            if v is None:
                return (0,)
            if types.get(field) == "datetime":
                v = parse_datetime(v)
            elif isinstance(v, str) and types.get(field) not in ("id", "reference"):
                v = v.lower()
            return (1, v)
        present = [r for r in records if r.get(field) is not None]
        absent = [r for r in records if r.get(field) is None]
        present.sort(key=k, reverse=desc)
        records[:] = present + absent if nulls_last else absent + present
