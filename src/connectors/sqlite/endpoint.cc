#include "connectors/sqlite/endpoint.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <string_view>
#include <utility>

#include "connectors/binding.h"

namespace duplex::sqlite {

namespace {

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

Endpoint::Endpoint(std::string name, std::string path)
    : name_(std::move(name)), path_(std::move(path)) {}

std::string Endpoint::Where() const { return "endpoint '" + name_ + "' (" + path_ + ")"; }

std::string Endpoint::Where(const std::string& table) const {
  return Where() + ", table '" + table + "'";
}

Status Endpoint::CheckOpen() const {
  if (db_.get() == nullptr) return Status::InvalidArgument(Where() + ": not open (call Open())");
  return Status::Ok();
}

Status Endpoint::NotInstalled() const {
  return Status::InvalidArgument(Where() + ": change capture is not installed (run Install())");
}

Status Endpoint::Open() {
  if (db_.get() != nullptr) return Status::Ok();
  std::error_code ec;
  // A file that is not there is a wrong path more often than an outage: the engine does not
  // wait for it (only Unavailable, a connection failure, is waited for at start), and `run`
  // ends with exit code 1. duplex never creates an application's database file.
  if (!std::filesystem::exists(path_, ec)) {
    return Status::IOError("endpoint '" + name_ + "': SQLite file '" + path_ + "' does not exist");
  }
  Result<Db> db = Db::Open(path_, /*create=*/false, kBusyTimeoutMs);
  if (!db.ok()) {
    if (db.status().IsNotFound()) {
      return Status::IOError("endpoint '" + name_ + "': " + db.status().message());
    }
    return db.status().WithContext(Where());
  }
  // Off is SQLite's runtime default, but compile options can change it and our triggers insert
  // into a table that must never fire triggers of its own (CDC-FACTS Q5).
  DUPLEX_RETURN_IF_ERROR(db->Exec("PRAGMA recursive_triggers=0").WithContext(Where()));
  // Duplex's writes must not orphan rows: with foreign keys on, Apply's transactions check them
  // (deferred to commit, see Applier). The setting is per connection, so the applications' own
  // connections are not affected.
  DUPLEX_RETURN_IF_ERROR(db->Exec("PRAGMA foreign_keys=ON").WithContext(Where()));
  db_ = std::move(db).value();
  own_commit_ = false;
  return Status::Ok();
}

Result<Stmt*> Endpoint::Prepared(Stmt& slot, const char* sql) {
  if (!slot.valid()) {
    Result<Stmt> stmt = db_.Prepare(sql);
    if (!stmt.ok()) return stmt.status().WithContext(Where());
    slot = std::move(stmt).value();
  }
  return &slot;
}

Result<bool> Endpoint::BookkeepingExists() {
  DUPLEX_ASSIGN_OR_RETURN(Stmt stmt,
                          db_.Prepare("SELECT count(*) FROM sqlite_master WHERE type = 'table' "
                                      "AND name IN ('_duplex_changelog', '_duplex_apply', "
                                      "'_duplex_applied', '_duplex_captured')"));
  Result<bool> row = stmt.Step();
  if (!row.ok()) return row.status().WithContext(Where());
  return *row && stmt.Int(0) == 4;
}

Result<TableInfo> Endpoint::Describe(const std::string& table) {
  DUPLEX_RETURN_IF_ERROR(CheckOpen());
  Result<Stmt> stmt = db_.Prepare(
      "SELECT name, type, \"notnull\", dflt_value IS NOT NULL, pk FROM pragma_table_info(?1)");
  if (!stmt.ok()) return stmt.status().WithContext(Where(table));
  stmt->Bind(1, table);
  TableInfo info;
  info.name = table;
  while (true) {
    Result<bool> row = stmt->Step();
    if (!row.ok()) return row.status().WithContext(Where(table));
    if (!*row) break;
    ColumnInfo col;
    col.name = stmt->Text(0);
    col.type = stmt->Text(1);
    col.kind = KindOfDeclaredType(col.type);
    col.not_null = stmt->Int(2) != 0;
    col.has_default = stmt->Int(3) != 0;
    col.pk = static_cast<int>(stmt->Int(4));
    info.columns.push_back(std::move(col));
  }
  info.exists = !info.columns.empty();
  if (!info.exists) return info;

  // A single-column INTEGER PRIMARY KEY is the rowid, which SQLite generates when an insert
  // leaves it out; unless the table is WITHOUT ROWID or the key is declared DESC, and then the
  // key has an index of its own (origin 'pk'), which a rowid alias never has.
  int pk_columns = 0;
  ColumnInfo* pk = nullptr;
  for (ColumnInfo& col : info.columns) {
    if (col.pk == 0) continue;
    ++pk_columns;
    pk = &col;
  }
  if (pk_columns == 1 && EqualsIgnoreCase(pk->type, "INTEGER")) {
    Result<Stmt> idx =
        db_.Prepare("SELECT count(*) FROM pragma_index_list(?1) WHERE origin = 'pk'");
    if (!idx.ok()) return idx.status().WithContext(Where(table));
    idx->Bind(1, table);
    Result<bool> row = idx->Step();
    if (!row.ok()) return row.status().WithContext(Where(table));
    pk->generated = *row && idx->Int(0) == 0;
  }

  // Every foreign key can be deferred: Apply sets PRAGMA defer_foreign_keys, which defers even
  // those declared NOT DEFERRABLE. A NULL `to` means the parent's primary key.
  Result<Stmt> fks = db_.Prepare(
      "SELECT id, \"table\", \"from\", \"to\" FROM pragma_foreign_key_list(?1) ORDER BY id, seq");
  if (!fks.ok()) return fks.status().WithContext(Where(table));
  fks->Bind(1, table);
  int64_t current = -1;
  while (true) {
    Result<bool> row = fks->Step();
    if (!row.ok()) return row.status().WithContext(Where(table));
    if (!*row) break;
    if (fks->Int(0) != current || info.foreign_keys.empty()) {
      current = fks->Int(0);
      info.foreign_keys.push_back(ForeignKeyInfo{{}, fks->Text(1), {}, /*deferrable=*/true});
    }
    ForeignKeyInfo& fk = info.foreign_keys.back();
    fk.columns.push_back(fks->Text(2));
    if (!fks->IsNull(3)) fk.ref_columns.push_back(fks->Text(3));
  }
  for (ForeignKeyInfo& fk : info.foreign_keys) {
    if (fk.ref_columns.size() == fk.columns.size()) continue;
    fk.ref_columns.clear();
    Result<Stmt> parent =
        db_.Prepare("SELECT name FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk");
    if (!parent.ok()) return parent.status().WithContext(Where(table));
    parent->Bind(1, fk.ref_table);
    while (true) {
      Result<bool> row = parent->Step();
      if (!row.ok()) return row.status().WithContext(Where(table));
      if (!*row) break;
      fk.ref_columns.push_back(parent->Text(0));
    }
  }
  return info;
}

Status Endpoint::Bind(std::vector<CollectionBinding> bindings) {
  DUPLEX_RETURN_IF_ERROR(ValidateBindings(Where(), bindings));
  std::vector<BoundTable> tables;
  std::unordered_map<std::string, size_t> by_table;
  std::unordered_map<std::string, size_t> by_collection;
  for (CollectionBinding& b : bindings) {
    by_table.emplace(b.table, tables.size());
    by_collection.emplace(b.collection, tables.size());
    BoundTable t;
    for (const auto& [field, column] : b.fields) {
      t.column_of_field.emplace(field, column);
      t.columns.push_back(column);
    }
    t.key_fields.insert(b.key.begin(), b.key.end());
    if (b.mapped_key)
      t.record_table_of_column.emplace(t.column_of_field.at(b.key.front()), b.table);
    t.binding = std::move(b);
    tables.push_back(std::move(t));
  }
  for (BoundTable& t : tables) {
    const std::string at = Where(t.binding.table) + ", collection '" + t.binding.collection + "'";
    for (const auto& [field, collection] : t.binding.mapped_refs) {
      auto column = t.column_of_field.find(field);
      if (column == t.column_of_field.end()) {
        return Status::InvalidArgument(at + ": mapped reference field '" + field +
                                       "' is not a mapped field");
      }
      auto parent = by_collection.find(collection);
      if (parent == by_collection.end() || !tables[parent->second].binding.mapped_key) {
        return Status::InvalidArgument(at + ": field '" + field + "' references collection '" +
                                       collection +
                                       "', which is not bound to this endpoint with a mapped key");
      }
      if (t.binding.mapped_key && field == t.binding.key.front()) {
        return Status::InvalidArgument(at + ": the mapped key field '" + field +
                                       "' cannot also reference another collection");
      }
      t.record_table_of_column[column->second] = tables[parent->second].binding.table;
      t.ref_fields.emplace_back(field, parent->second);
    }
  }
  tables_ = std::move(tables);
  by_table_ = std::move(by_table);
  by_collection_ = std::move(by_collection);
  return Status::Ok();
}

const BoundTable* Endpoint::ByTable(const std::string& table) const {
  auto it = by_table_.find(table);
  return it == by_table_.end() ? nullptr : &tables_[it->second];
}

const BoundTable* Endpoint::ByCollection(const std::string& collection) const {
  auto it = by_collection_.find(collection);
  return it == by_collection_.end() ? nullptr : &tables_[it->second];
}

}  // namespace duplex::sqlite
