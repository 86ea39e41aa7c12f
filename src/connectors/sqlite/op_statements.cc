#include "connectors/sqlite/op_statements.h"

#include "connectors/sqlite/images.h"

namespace duplex::sqlite {

Result<OpStmt*> OpStatements::For(const BoundTable& t, const RowOp& op) {
  // Shape key: op, collection, the fields of `values` and of `expected` (objects iterate sorted,
  // so the parameter order below follows the same order).
  std::string& key = shape_buf_;
  key.clear();
  key += static_cast<char>(op.op);
  key += t.binding.collection;
  key += '\x1f';
  if (op.values.is_object()) {
    for (const auto& item : op.values.items()) {
      key += item.key();
      key += '\x1e';
    }
  }
  key += '\x1f';
  if (op.expected.is_object()) {
    for (const auto& item : op.expected.items()) {
      key += item.key();
      key += '\x1e';
    }
  }
  auto hit = stmts_.find(key);
  if (hit != stmts_.end()) return &hit->second;

  const std::string where = ep_.Where(t.binding.table) + ", key " + op.key.dump();
  if (!op.values.is_null() && !op.values.is_object()) {
    return Status::Refused(where + ": values must be a JSON object");
  }
  if (!op.expected.is_null() && !op.expected.is_object()) {
    return Status::Refused(where + ": expected must be a JSON object");
  }
  auto column = [&](const std::string& field) -> Result<std::string> {
    auto it = t.column_of_field.find(field);
    if (it == t.column_of_field.end()) {
      return Status::Refused(where + ": field '" + field +
                             "' is not mapped to a column of this table");
    }
    return QuoteIdent(it->second);
  };

  OpStmt out;
  using Source = OpStmt::Source;
  std::string table = QuoteIdent(t.binding.table);
  std::string cond;  // WHERE for update/delete: the key, then the expected values
  if (op.op != WriteOp::kInsert) {
    for (const std::string& k : t.binding.key) {
      DUPLEX_ASSIGN_OR_RETURN(std::string c, column(k));
      cond += (cond.empty() ? " WHERE " : " AND ") + c + " IS ?";
      out.params.emplace_back(Source::kKey, k);
    }
    if (op.expected.is_object()) {
      for (const auto& item : op.expected.items()) {
        DUPLEX_ASSIGN_OR_RETURN(std::string c, column(item.key()));
        cond += " AND " + c + " IS ?";
        out.params.emplace_back(Source::kExpected, item.key());
      }
    }
  }
  std::string sql;
  switch (op.op) {
    case WriteOp::kInsert: {
      if (t.binding.mapped_key) {
        // The endpoint generates the key (never written by duplex); RETURNING hands it back as
        // the key map spells it.
        std::string cols, params;
        if (op.values.is_object()) {
          for (const auto& item : op.values.items()) {
            if (t.key_fields.count(item.key())) continue;
            DUPLEX_ASSIGN_OR_RETURN(std::string c, column(item.key()));
            cols += (cols.empty() ? "" : ", ") + c;
            params += params.empty() ? "?" : ", ?";
            out.params.emplace_back(Source::kValues, item.key());
          }
        }
        sql = "INSERT INTO " + table +
              (cols.empty() ? " DEFAULT VALUES" : "(" + cols + ") VALUES(" + params + ")") +
              " RETURNING " + NativeExpr(QuoteIdent(t.column_of_field.at(t.binding.key.front())));
        break;
      }
      std::string cols, params, keys;
      for (const std::string& k : t.binding.key) {
        DUPLEX_ASSIGN_OR_RETURN(std::string c, column(k));
        cols += (cols.empty() ? "" : ", ") + c;
        keys += (keys.empty() ? "" : ", ") + c;
        params += params.empty() ? "?" : ", ?";
        out.params.emplace_back(Source::kKey, k);
      }
      if (op.values.is_object()) {
        for (const auto& item : op.values.items()) {
          if (t.key_fields.count(item.key())) continue;  // taken from `key`
          DUPLEX_ASSIGN_OR_RETURN(std::string c, column(item.key()));
          cols += ", " + c;
          params += ", ?";
          out.params.emplace_back(Source::kValues, item.key());
        }
      }
      // The conflict target is the key only, so NOT NULL, CHECK and other UNIQUE violations
      // still fail the transaction instead of silently dropping the row.
      sql = "INSERT INTO " + table + "(" + cols + ") VALUES(" + params + ") ON CONFLICT(" + keys +
            ") DO NOTHING";
      break;
    }
    case WriteOp::kUpdate: {
      std::string set;
      std::vector<std::pair<Source, std::string>> set_params;
      if (op.values.is_object()) {
        for (const auto& item : op.values.items()) {
          if (t.key_fields.count(item.key())) continue;  // keys change by delete + insert
          DUPLEX_ASSIGN_OR_RETURN(std::string c, column(item.key()));
          set += (set.empty() ? "" : ", ") + c + " = ?";
          set_params.emplace_back(Source::kValues, item.key());
        }
      }
      if (set.empty()) {
        // Nothing to set: a pure compare-and-set check, which still counts the matching row.
        DUPLEX_ASSIGN_OR_RETURN(std::string c, column(t.binding.key.front()));
        set = c + " = " + c;
      }
      sql = "UPDATE " + table + " SET " + set + cond;
      set_params.insert(set_params.end(), out.params.begin(), out.params.end());
      out.params = std::move(set_params);
      break;
    }
    case WriteOp::kDelete:
      sql = "DELETE FROM " + table + cond;
      break;
  }
  Result<Stmt> stmt = ep_.db().Prepare(sql);
  if (!stmt.ok()) return stmt.status().WithContext(where);
  out.stmt = std::move(stmt).value();
  auto inserted = stmts_.emplace(key, std::move(out));
  return &inserted.first->second;
}

}  // namespace duplex::sqlite
