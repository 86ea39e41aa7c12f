#include "core/set_merge.h"

#include <algorithm>
#include <cctype>
#include <set>

namespace duplex {

namespace {

enum class Form { kNull, kJsonArray, kJsonText, kPgArray, kDelimited };

// One element: `key` is what sets compare (and additions sort by); `json` the element itself
// for the JSON forms. A NULL element of a PostgreSQL array has a key no text element can have.
struct Element {
  std::string key;
  Value json;
};

constexpr std::string_view kPgNullKey("\0NULL", 5);

struct Parsed {
  Form form = Form::kNull;
  std::vector<Element> elements;
};

bool IsSpace(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

std::string_view TrimLeft(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  return s;
}

bool EqualsNoCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// A one-dimensional PostgreSQL array literal, as array_out prints it: elements separated by
// commas, double-quoted (with backslash escapes) when they need it, unquoted NULL for a null
// element. Nested braces (more dimensions) and explicit bounds ("[1:2]={...}") are not sets.
std::optional<std::vector<Element>> ParsePgArray(std::string_view s) {
  s = TrimLeft(s);
  if (s.empty() || s.front() != '{') return std::nullopt;
  size_t i = 1;
  std::vector<Element> out;
  auto skip_space = [&] {
    while (i < s.size() && IsSpace(s[i])) ++i;
  };
  skip_space();
  if (i < s.size() && s[i] == '}') {
    ++i;
    skip_space();
    return i == s.size() ? std::optional(out) : std::nullopt;
  }
  while (true) {
    skip_space();
    if (i >= s.size() || s[i] == '{') return std::nullopt;
    std::string text;
    bool quoted = false;
    if (s[i] == '"') {
      quoted = true;
      ++i;
      while (i < s.size() && s[i] != '"') {
        if (s[i] == '\\') ++i;
        if (i >= s.size()) return std::nullopt;
        text += s[i++];
      }
      if (i >= s.size()) return std::nullopt;
      ++i;  // the closing quote
    } else {
      while (i < s.size() && s[i] != ',' && s[i] != '}') {
        if (s[i] == '"' || s[i] == '{') return std::nullopt;
        if (s[i] == '\\' && ++i >= s.size()) return std::nullopt;
        text += s[i++];
      }
      while (!text.empty() && IsSpace(text.back())) text.pop_back();
      if (text.empty()) return std::nullopt;
    }
    skip_space();
    if (i >= s.size()) return std::nullopt;
    const bool is_null = !quoted && EqualsNoCase(text, "NULL");
    out.push_back({is_null ? std::string(kPgNullKey) : std::move(text), Value()});
    if (s[i] == '}') {
      ++i;
      skip_space();
      return i == s.size() ? std::optional(out) : std::nullopt;
    }
    if (s[i] != ',') return std::nullopt;
    ++i;
  }
}

// An element as array_out would print it: quoted if it is empty, could be read as NULL, or
// holds a character with a meaning in the literal.
std::string PgElementText(const std::string& key) {
  if (key == kPgNullKey) return "NULL";
  bool quote = key.empty() || EqualsNoCase(key, "NULL");
  for (char c : key) {
    if (c == '{' || c == '}' || c == ',' || c == '"' || c == '\\' || IsSpace(c)) quote = true;
  }
  if (!quote) return key;
  std::string out = "\"";
  for (char c : key) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::vector<Element> FromJsonArray(const Value& array) {
  std::vector<Element> out;
  for (const Value& e : array) out.push_back({e.dump(), e});
  return out;
}

std::optional<Parsed> Parse(const Value& v, std::string_view separator) {
  Parsed p;
  if (v.is_null()) return p;
  if (!separator.empty()) {
    if (!v.is_string()) return std::nullopt;
    p.form = Form::kDelimited;
    std::string_view s = v.get_ref<const std::string&>();
    while (!s.empty()) {
      size_t at = s.find(separator);
      std::string_view piece = s.substr(0, at);
      // "a;;b" and a trailing separator hold no empty element: a multipicklist has none.
      if (!piece.empty()) p.elements.push_back({std::string(piece), Value()});
      if (at == std::string_view::npos) break;
      s.remove_prefix(at + separator.size());
    }
    return p;
  }
  if (v.is_array()) {
    p.form = Form::kJsonArray;
    p.elements = FromJsonArray(v);
    return p;
  }
  if (!v.is_string()) return std::nullopt;
  std::string_view s = TrimLeft(v.get_ref<const std::string&>());
  if (!s.empty() && s.front() == '[') {
    Value doc = Value::parse(s, nullptr, /*allow_exceptions=*/false);
    if (!doc.is_array()) return std::nullopt;
    p.form = Form::kJsonText;
    p.elements = FromJsonArray(doc);
    return p;
  }
  std::optional<std::vector<Element>> pg = ParsePgArray(s);
  if (!pg) return std::nullopt;
  p.form = Form::kPgArray;
  p.elements = std::move(*pg);
  return p;
}

Value Format(Form form, const std::vector<const Element*>& elements, std::string_view separator) {
  std::string text;
  Value array = Value::array();
  for (size_t i = 0; i < elements.size(); ++i) {
    const Element& e = *elements[i];
    switch (form) {
      case Form::kJsonArray:
        array.push_back(e.json);
        break;
      case Form::kJsonText:
        text += (i ? ", " : "") + e.key;
        break;
      case Form::kPgArray:
        text += (i ? "," : "") + PgElementText(e.key);
        break;
      case Form::kDelimited:
        text += (i ? std::string(separator) : "") + e.key;
        break;
      case Form::kNull:
        break;
    }
  }
  switch (form) {
    case Form::kJsonArray:
      return array;
    case Form::kJsonText:
      return "[" + text + "]";
    case Form::kPgArray:
      return "{" + text + "}";
    case Form::kDelimited:
      return text;
    case Form::kNull:
      break;
  }
  return Value();
}

}  // namespace

bool IsSetValue(const Value& v, std::string_view separator) {
  return Parse(v, separator).has_value();
}

std::optional<Value> KeepReAdded(const Value& held, const Value& edited, const Value& current,
                                 const std::vector<Value>& unseen, std::string_view separator) {
  std::optional<Parsed> h = Parse(held, separator), e = Parse(edited, separator),
                        c = Parse(current, separator);
  if (!h || !e || !c) return std::nullopt;
  std::vector<std::set<std::string>> written;
  for (const Value& v : unseen) {
    std::optional<Parsed> w = Parse(v, separator);
    if (!w) return std::nullopt;
    written.emplace_back();
    for (const Element& el : w->elements) written.back().insert(el.key);
  }
  std::set<std::string> kept, now;
  for (const Element& el : e->elements) kept.insert(el.key);
  for (const Element& el : c->elements) now.insert(el.key);
  std::vector<const Element*> out;
  for (const Element& el : e->elements) out.push_back(&el);
  bool any = false;
  for (const Element& el : h->elements) {
    if (kept.count(el.key) || !now.count(el.key)) continue;
    if (std::none_of(written.begin(), written.end(),
                     [&](const auto& w) { return !w.count(el.key); })) {
      continue;
    }
    kept.insert(el.key);
    out.push_back(&el);
    any = true;
  }
  if (!any) return edited;
  Form form = e->form != Form::kNull ? e->form : h->form;
  return Format(form, out, separator);
}

std::optional<Value> UnionMerge(const Value& base, const std::vector<Value>& sides,
                                std::string_view separator) {
  std::optional<Parsed> b = Parse(base, separator);
  if (!b) return std::nullopt;
  Form form = b->form;
  std::vector<Parsed> parsed;
  for (const Value& v : sides) {
    std::optional<Parsed> p = Parse(v, separator);
    if (!p) return std::nullopt;
    if (p->form != Form::kNull) {
      if (form != Form::kNull && form != p->form) return std::nullopt;
      form = p->form;
    }
    parsed.push_back(std::move(*p));
  }
  if (form == Form::kNull) return Value();

  std::set<std::string> in_base;
  for (const Element& e : b->elements) in_base.insert(e.key);
  std::vector<std::set<std::string>> held(parsed.size());
  for (size_t i = 0; i < parsed.size(); ++i) {
    for (const Element& e : parsed[i].elements) held[i].insert(e.key);
  }
  std::vector<const Element*> out;
  std::set<std::string> taken;
  // The base's elements that no side removed, in the base's order.
  for (const Element& e : b->elements) {
    if (taken.count(e.key)) continue;
    bool kept =
        std::all_of(held.begin(), held.end(), [&](const auto& h) { return h.count(e.key); });
    if (!kept) continue;
    taken.insert(e.key);
    out.push_back(&e);
  }
  // Then what any side added, in one order whatever side it came from and whatever order the
  // sides are merged in.
  std::vector<const Element*> added;
  for (const Parsed& p : parsed) {
    for (const Element& e : p.elements) {
      if (in_base.count(e.key) || taken.count(e.key)) continue;
      taken.insert(e.key);
      added.push_back(&e);
    }
  }
  std::sort(added.begin(), added.end(),
            [](const Element* x, const Element* y) { return x->key < y->key; });
  out.insert(out.end(), added.begin(), added.end());
  return Format(form, out, separator);
}

}  // namespace duplex
