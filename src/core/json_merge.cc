#include "core/json_merge.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "core/decimal.h"
#include "core/set_merge.h"
#include "util/json_value.h"

namespace duplex {

namespace {

// A document read from a field value; `text` if it came as text holding one.
struct Doc {
  Value object;
  bool text = false;
};

std::optional<Doc> ReadDoc(const Value& v) {
  if (v.is_object()) {
    if (IsBlob(v)) return std::nullopt;  // binary data travels as {"$blob": ...}
    return Doc{v, false};
  }
  if (!v.is_string()) return std::nullopt;
  const std::string& s = v.get_ref<const std::string&>();
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  if (i == s.size() || s[i] != '{') return std::nullopt;
  Value doc = Value::parse(s, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) return std::nullopt;  // invalid JSON (discarded): a leaf
  return Doc{std::move(doc), true};
}

// JSON Pointer's escaping of one key (RFC 6901).
std::string PointerToken(const std::string& key) {
  std::string out;
  for (char c : key) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

const Value* Child(const Value* v, const std::string& key) {
  if (!v || !v->is_object()) return nullptr;
  auto it = v->find(key);
  return it == v->end() ? nullptr : &*it;
}

bool Same(const Value* a, const Value* b) {
  if (!a || !b) return !a && !b;
  return *a == *b;
}

std::optional<Value> Opt(const Value* v) { return v ? std::optional<Value>(*v) : std::nullopt; }

class Merger {
 public:
  Merger(const Candidate& current, const Candidate& incoming, const FieldPolicy& nested)
      : current_(current), incoming_(incoming), nested_(nested) {}

  // The value at `path` (nullopt: absent), from the base's, the current and the incoming one.
  std::optional<Value> At(const std::string& path, const Value* b, const Value* c, const Value* i) {
    if (Same(c, i) || Same(b, i)) return Opt(c);
    if (Same(b, c)) return Opt(i);
    if (c && i && c->is_object() && i->is_object()) {
      // Both changed an object: key by key. Keys in the object's order (sorted), whatever
      // side they come from.
      std::set<std::string> keys;
      for (const auto& [k, v] : c->items()) keys.insert(k);
      for (const auto& [k, v] : i->items()) keys.insert(k);
      Value out = Value::object();
      for (const std::string& k : keys) {
        std::optional<Value> v =
            At(path + "/" + PointerToken(k), Child(b, k), Child(c, k), Child(i, k));
        if (v) out[k] = std::move(*v);
      }
      return out;
    }
    return Decide(path, b, c, i);
  }

  std::vector<PathConflict> conflicts;
  bool manual = false;

 private:
  std::optional<Value> Decide(const std::string& path, const Value* b, const Value* c,
                              const Value* i) {
    PathConflict pc{path, Opt(b), Opt(c), Opt(i), std::nullopt, PathConflict::Outcome::kCurrent};
    std::optional<Value> merged;
    if (nested_.policy == Policy::kManual) {
      manual = true;
      pc.outcome = PathConflict::Outcome::kManual;  // no result: an operator decides
      conflicts.push_back(std::move(pc));
      return Opt(c);
    }
    if (nested_.policy == Policy::kSum && b && c && i) {
      merged = AddDelta(*c, *b, *i);
    } else if (nested_.policy == Policy::kUnion && c && i && c->is_array() && i->is_array() &&
               (!b || b->is_array())) {
      merged = UnionMerge(b ? *b : Value(), {*c, *i}, "");
    }
    if (merged) {
      pc.outcome = PathConflict::Outcome::kMerged;
    } else {
      // An absent side is a null candidate: max and min compare it as null; lww and prefer go
      // by the versions.
      Candidate cur{c ? *c : Value(), current_.version};
      Candidate inc{i ? *i : Value(), incoming_.version};
      const bool wins = IncomingWins(nested_, cur, inc);
      pc.outcome = wins ? PathConflict::Outcome::kIncoming : PathConflict::Outcome::kCurrent;
      merged = wins ? Opt(i) : Opt(c);
    }
    pc.result = merged;
    conflicts.push_back(std::move(pc));
    return merged;
  }

  const Candidate& current_;
  const Candidate& incoming_;
  FieldPolicy nested_;
};

void WriteJsonb(const Value& v, std::string& out) {
  if (v.is_object()) {
    // jsonb keeps an object's keys ordered by length, then bytes.
    std::vector<const std::string*> keys;
    for (const auto& [k, x] : v.items()) keys.push_back(&k);
    std::sort(keys.begin(), keys.end(), [](const std::string* a, const std::string* b) {
      return a->size() != b->size() ? a->size() < b->size() : *a < *b;
    });
    out += '{';
    for (size_t n = 0; n < keys.size(); ++n) {
      if (n) out += ", ";
      out += Value(*keys[n]).dump(-1, ' ', false, Value::error_handler_t::replace);
      out += ": ";
      WriteJsonb(v.at(*keys[n]), out);
    }
    out += '}';
    return;
  }
  if (v.is_array()) {
    out += '[';
    for (size_t n = 0; n < v.size(); ++n) {
      if (n) out += ", ";
      WriteJsonb(v[n], out);
    }
    out += ']';
    return;
  }
  out += v.dump(-1, ' ', false, Value::error_handler_t::replace);
}

}  // namespace

bool SameDocument(const Value& a, const Value& b) {
  if (ValuesEqual(a, b)) return true;
  std::optional<Doc> x = ReadDoc(a), y = ReadDoc(b);
  return x && y && x->object == y->object;
}

std::string JsonbText(const Value& v) {
  std::string out;
  WriteJsonb(v, out);
  return out;
}

std::optional<JsonMerge> MergeJson(const Value& base, const Candidate& current,
                                   const Candidate& incoming, const FieldPolicy& rule) {
  std::optional<Doc> c = ReadDoc(current.value), i = ReadDoc(incoming.value);
  if (!c || !i) return std::nullopt;
  std::optional<Doc> b = ReadDoc(base);
  const Value empty = Value::object();
  Merger m(current, incoming, NestedRule(rule));
  std::optional<Value> merged = m.At("", b ? &b->object : &empty, &c->object, &i->object);
  JsonMerge out;
  out.conflicts = std::move(m.conflicts);
  out.manual = m.manual;
  if (out.manual) return out;
  // Two objects merge into an object (At decides leaves only, never the root of two objects).
  Value doc = merged ? std::move(*merged) : Value::object();
  out.value = c->text || i->text ? Value(JsonbText(doc)) : std::move(doc);
  return out;
}

}  // namespace duplex
