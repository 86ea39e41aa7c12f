#include "connectors/postgres/key_map.h"

#include <map>
#include <set>

#include "connectors/binding.h"
#include "connectors/postgres/pg_types.h"
#include "util/json_value.h"

namespace duplex::pg {

Status KeyMap::Bind() {
  Reset();
  any_records_ = false;
  for (BoundTable& t : ep_.tables) {
    if (t.binding.mapped_key) t.record_table[t.binding.key.front()] = t.binding.table;
    for (const auto& [field, collection] : t.binding.mapped_refs) {
      const std::string at = ep_.Where(t.binding.table) + ", field '" + field + "'";
      if (!t.column_of_field.count(field)) {
        return Status::InvalidArgument(at + ": references collection '" + collection +
                                       "' but is not a mapped field");
      }
      const BoundTable* ref = ep_.ByCollection(collection);
      if (ref == nullptr || !ref->binding.mapped_key) {
        return Status::InvalidArgument(
            at + ": references collection '" + collection +
            "', which is not bound to this endpoint with a mapped key (its record ids could "
            "not be translated)");
      }
      t.record_table[field] = ref->binding.table;
    }
    any_records_ = any_records_ || !t.record_table.empty();
  }
  return Status::Ok();
}

void KeyMap::Reset() {
  records_.clear();
  records_cached_ = 0;
}

Status KeyMap::Install() {
  // Written by apply in the row's transaction, never published nor captured. `native` is the
  // native key as JSON, exactly as RecordId prints it.
  const std::string keymap = ep_.Q(ep_.TableName("keymap"));
  const std::string own = QuoteLiteral(ep_.opt.name + ":");
  return ep_.db.Run("CREATE TABLE IF NOT EXISTS " + keymap +
                    " (tbl text NOT NULL, record text NOT NULL, native text NOT NULL, "
                    "PRIMARY KEY (tbl, record), UNIQUE (tbl, native));"
                    "CREATE OR REPLACE FUNCTION " +
                    ep_.Q(ep_.TableName("native")) +
                    "(p_tbl text, p_record text, p_refusal text) RETURNS text LANGUAGE plpgsql "
                    "STABLE AS $duplex$\n"
                    "DECLARE n text;\n"
                    "BEGIN\n"
                    "  IF p_record IS NULL THEN RETURN NULL; END IF;\n"
                    "  SELECT m.native INTO n FROM " +
                    keymap +
                    " m WHERE m.tbl = p_tbl AND m.record = p_record;\n"
                    // A record first seen here (OwnNativeKey): its native key is in its id.
                    "  IF n IS NULL AND starts_with(p_record, " +
                    own + ") THEN\n    n := substr(p_record, length(" + own +
                    ") + 1);\n"
                    "  END IF;\n"
                    "  IF n IS NULL OR jsonb_typeof(n::jsonb) NOT IN ('number', 'string') THEN\n"
                    "    IF p_refusal IS NOT NULL THEN\n"
                    "      RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation', "
                    "MESSAGE = replace(p_refusal, '{record}', p_record);\n"
                    "    END IF;\n"
                    "    RETURN NULL;\n"
                    "  END IF;\n"
                    "  RETURN n::jsonb #>> '{}';\n"
                    "END\n$duplex$");
}

std::string KeyMap::ValueSql(const BoundTable& t, const std::string& field, const std::string& ph,
                             bool refuse) const {
  const std::string& type = t.type_of_column.at(t.column_of_field.at(field));
  auto rt = t.record_table.find(field);
  if (rt == t.record_table.end()) return ph + "::" + type;
  std::string refusal = "NULL";
  if (refuse) {
    const std::string& collection = ep_.tables[ep_.by_table.at(rt->second)].binding.collection;
    refusal = QuoteLiteral("field '" + field + "' of collection '" + t.binding.collection +
                           "' references record '{record}' of collection '" + collection +
                           "', which endpoint '" + ep_.opt.name + "' does not hold");
  }
  return "(" + ep_.Q(ep_.TableName("native")) + "(" + QuoteLiteral(rt->second) + ", " + ph +
         "::text, " + refusal + "))::" + type;
}

Status KeyMap::PresentRecords(std::vector<Change>* changes) {
  if (!any_records_) return Status::Ok();
  // Every row image of a change, with the table it belongs to. A rejected write's key is the
  // one duplex sent (record ids already).
  auto rows_of = [&](Change& c, auto&& fn) {
    const BoundTable* t = ep_.ByCollection(c.collection);
    if (t == nullptr || t->record_table.empty()) return;
    for (Row* row : {&c.key, &c.before, &c.after}) {
      if (row == &c.key && c.op == Op::kRejected) continue;
      if (!row->is_object()) continue;
      for (const auto& [field, table] : t->record_table) {
        auto v = row->find(field);
        if (v == row->end() || v->is_null()) continue;
        fn(*v, table);
      }
    }
  };
  if (records_cached_ > 200000) {
    records_.clear();
    records_cached_ = 0;
  }
  // table -> native keys (JSON texts) not in the cache
  std::map<std::string, std::set<std::string>> wanted;
  for (Change& c : *changes) {
    rows_of(c, [&](Value& v, const std::string& table) {
      std::string native = v.dump();
      if (!records_[table].count(native)) wanted[table].insert(std::move(native));
    });
  }
  for (auto& [table, natives] : wanted) {
    DUPLEX_ASSIGN_OR_RETURN(
        PgResult res, ep_.db.Exec("SELECT native, record FROM " + ep_.Q(ep_.TableName("keymap")) +
                                      " WHERE tbl = $1 AND native IN "
                                      "(SELECT jsonb_array_elements_text($2::jsonb))",
                                  {table, Value(natives).dump()}));
    auto& cache = records_[table];
    for (int r = 0; r < PQntuples(res.get()); ++r) {
      cache[PQgetvalue(res.get(), r, 0)] = PQgetvalue(res.get(), r, 1);
    }
    // Not in the key map: the application's own row, first seen here.
    for (const std::string& native : natives) {
      if (!cache.count(native)) cache[native] = RecordId(ep_.opt.name, Value::parse(native));
    }
    records_cached_ += natives.size();
  }
  for (Change& c : *changes) {
    rows_of(c, [&](Value& v, const std::string& table) { v = records_[table].at(v.dump()); });
  }
  return Status::Ok();
}

Result<std::vector<std::vector<std::string>>> KeyMap::NativeKeyTexts(
    const std::vector<const ApplyBatch*>& todo) {
  // Records the key map knows, for key fields that hold record ids.
  Value pairs = Value::array();
  for (const ApplyBatch* b : todo) {
    for (const RowOp& op : b->ops) {
      const BoundTable* t = ep_.ByCollection(op.collection);
      if (t == nullptr || !op.key.is_object()) continue;
      for (const std::string& k : t->binding.key) {
        auto rt = t->record_table.find(k);
        auto v = op.key.find(k);
        if (rt == t->record_table.end() || v == op.key.end() || !v->is_string()) continue;
        pairs.push_back({rt->second, *v});
      }
    }
  }
  std::map<std::pair<std::string, std::string>, Value> natives;
  if (!pairs.empty()) {
    DUPLEX_ASSIGN_OR_RETURN(
        PgResult res,
        ep_.apply.Exec("SELECT m.tbl, m.record, m.native FROM " + ep_.Q(ep_.TableName("keymap")) +
                           " m JOIN jsonb_array_elements($1::jsonb) x ON m.tbl = x->>0 AND "
                           "m.record = x->>1",
                       {pairs.dump()}));
    for (int r = 0; r < PQntuples(res.get()); ++r) {
      natives[{PQgetvalue(res.get(), r, 0), PQgetvalue(res.get(), r, 1)}] =
          Value::parse(PQgetvalue(res.get(), r, 2));
    }
  }
  std::vector<std::vector<std::string>> out;
  for (const ApplyBatch* b : todo) {
    out.emplace_back();
    for (const RowOp& op : b->ops) {
      const BoundTable* t = ep_.ByCollection(op.collection);
      if (t == nullptr || t->record_table.empty() || !op.key.is_object()) {
        out.back().push_back(t == nullptr ? std::string() : KeyText(op.key, t->binding.key));
        continue;
      }
      Row key = op.key;
      for (const std::string& k : t->binding.key) {
        auto rt = t->record_table.find(k);
        if (rt == t->record_table.end() || !key[k].is_string()) continue;
        const std::string record = key[k].get<std::string>();
        auto m = natives.find({rt->second, record});
        // A record unknown here has no row: null matches no change the stream showed.
        key[k] =
            m != natives.end() ? m->second : OwnNativeKey(ep_.opt.name, record).value_or(Value());
      }
      out.back().push_back(KeyText(key, t->binding.key));
    }
  }
  return out;
}

Result<Value> KeyMap::ReadImage(const BoundTable& t, const Row& key, bool records) {
  DUPLEX_ASSIGN_OR_RETURN(std::string image, ep_.ImageSql(t, "s."));
  std::vector<std::string> cond;
  std::vector<Param> args;
  int i = 1;
  for (const std::string& k : t.binding.key) {
    const std::string& c = t.column_of_field.at(k);
    const std::string ph = Placeholder(i++);
    cond.push_back("s." + QuoteIdent(c) + " = " +
                   (records ? ValueSql(t, k, ph, false) : ph + "::" + t.type_of_column.at(c)));
    auto it = key.find(k);
    args.push_back(ToText(it == key.end() ? Value() : *it));
  }
  Conn& conn = ep_.apply.connected() ? ep_.apply : ep_.db;
  DUPLEX_ASSIGN_OR_RETURN(
      PgResult res, conn.Exec("SELECT " + image + " FROM " + ep_.Q(t.binding.table) + " s WHERE " +
                                  Join(cond, " AND "),
                              args));
  if (PQntuples(res.get()) == 0) return Value();
  return Value::parse(PQgetvalue(res.get(), 0, 0));
}

}  // namespace duplex::pg
