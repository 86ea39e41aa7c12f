#include "connectors/conformance_harness.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <set>
#include <thread>
#include <tuple>
#include <utility>

#include "connectors/memory/memory_connector.h"
#include "connectors/postgres/postgres_connector.h"
#include "connectors/sqlite/sqlite_connector.h"
#include "support/test_util.h"
#include "util/json_value.h"
#include "util/sqlite.h"

namespace duplex::conformance {

AppWrite AppInsert(const std::string& table, Row row) {
  return AppWrite{Op::kInsert, table, Row::object(), std::move(row)};
}
AppWrite AppUpdate(const std::string& table, Row key, Row values) {
  return AppWrite{Op::kUpdate, table, std::move(key), std::move(values)};
}
AppWrite AppDelete(const std::string& table, Row key) {
  return AppWrite{Op::kDelete, table, std::move(key), Row::object()};
}

namespace {

// Orders rows by their "id" column.
void SortById(std::vector<Row>& rows) {
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
    return CompareValues(a.value("id", Value()), b.value("id", Value())) < 0;
  });
}

// ---------------------------------------------------------------------------------------------
// memory: the simulation's endpoint (src/connectors/memory/).

class MemoryHarness final : public Harness {
 public:
  void Create() override {
    ep_ = std::make_shared<memory::MemoryEndpoint>("mem");
    TableInfo items;
    items.name = "items";
    items.columns = {{"id", "INTEGER", false, false, 1, false},
                     {"name", "TEXT", false, false, 0, false},
                     {"qty", "INTEGER", false, false, 0, false},
                     {"price", "REAL", false, false, 0, false},
                     {"data", "BLOB", false, false, 0, false}};
    ep_->DeclareTable(items);
    TableInfo parts;
    parts.name = "parts";
    parts.columns = {{"id", "INTEGER", false, false, 1, false},
                     {"item_id", "INTEGER", false, false, 0, false}};
    ep_->DeclareTable(parts);
    ep_->DeclareForeignKey({"parts", "item_id", "items"});
  }
  std::unique_ptr<Connector> Connect() override {
    return std::make_unique<memory::MemoryConnector>(ep_);
  }
  void Write(const std::vector<AppWrite>& writes) override {
    ep_->Begin();
    for (const AppWrite& w : writes) {
      bool ok = false;
      if (w.op == Op::kInsert) ok = ep_->Insert(w.table, w.row);
      if (w.op == Op::kUpdate) ok = ep_->Update(w.table, w.key, w.row);
      if (w.op == Op::kDelete) ok = ep_->Delete(w.table, w.key);
      EXPECT_TRUE(ok) << "memory endpoint refused " << static_cast<char>(w.op) << " " << w.table
                      << " " << w.key.dump() << " " << w.row.dump();
    }
    ep_->Commit();
    ep_->Advance(1);
  }
  std::vector<std::pair<std::string, ColumnKind>> CreateKinds() override {
    // Declared with SQL type names, read as SQLite would (KindOfDeclaredType).
    const std::vector<std::tuple<std::string, std::string, ColumnKind>> columns = {
        {"k_integer", "INTEGER", ColumnKind::kInteger},
        {"k_real", "REAL", ColumnKind::kReal},
        {"k_decimal", "NUMERIC", ColumnKind::kDecimal},
        {"k_text", "TEXT", ColumnKind::kText},
        {"k_binary", "BLOB", ColumnKind::kBinary},
        {"k_boolean", "BOOLEAN", ColumnKind::kBoolean},
        {"k_time", "DATETIME", ColumnKind::kTime},
        {"k_json", "JSON", ColumnKind::kJson},
        {"k_any", "", ColumnKind::kAny}};
    TableInfo kinds;
    kinds.name = "kinds";
    kinds.columns = {{"id", "INTEGER", false, false, 1, false}};
    std::vector<std::pair<std::string, ColumnKind>> out = {{"id", ColumnKind::kInteger}};
    for (const auto& [name, type, kind] : columns) {
      kinds.columns.push_back({name, type, false, false, 0, false});
      out.emplace_back(name, kind);
    }
    ep_->DeclareTable(kinds);
    return out;
  }
  std::vector<Row> Rows(const std::string& table) override {
    std::vector<Row> out;
    auto t = ep_->rows().find(table);
    if (t == ep_->rows().end()) return out;
    for (const auto& [key, row] : t->second) out.push_back(row);
    SortById(out);
    return out;
  }
  bool Backup(std::string* why) override {
    *why = "the memory connector keeps the default CheckRestored";
    return false;
  }
  void Restore() override {}
  std::string DefaultScan() const override {
    return "the memory connector keeps Connector's default Scan (InvalidArgument), which the "
           "README accepts: the endpoint then cannot be brought back after a restore";
  }
  std::string DefaultCheckRestored() const override {
    return "the memory connector keeps Connector's default CheckRestored (finds nothing), which "
           "the README accepts: the engine still compares AppliedId with its watermark";
  }
  std::string Fixme(const std::string& check) const override {
    if (check != "txn") return "";
    return "FIXME(conformance): MemoryConnector gives markers and rejected writes Change::txn = "
           "-apply_id, so batch 1's are -1, the engine's kWholeBatch (README: do not use -1)";
  }

 private:
  std::shared_ptr<memory::MemoryEndpoint> ep_;
};

// ---------------------------------------------------------------------------------------------
// SQLite: a file in a temp dir; the application writes through a connection of its own.

class SqliteHarness final : public Harness {
 public:
  void Create() override {
    path_ = dir_.File("endpoint.db");
    testing::SqlExec(path_,
                     "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, qty INTEGER, "
                     "price REAL, data BLOB);"
                     "CREATE TABLE parts(id INTEGER PRIMARY KEY, "
                     "item_id INTEGER REFERENCES items(id));");
  }
  std::unique_ptr<Connector> Connect() override {
    return std::make_unique<sqlite::SqliteConnector>("lite", path_);
  }
  std::vector<std::pair<std::string, ColumnKind>> CreateKinds() override {
    // SQLite's affinity rules, refined by the names applications use (KindOfDeclaredType).
    testing::SqlExec(path_,
                     "CREATE TABLE kinds(id INTEGER PRIMARY KEY, k_integer BIGINT, "
                     "k_real DOUBLE PRECISION, k_decimal DECIMAL(10,2), k_text VARCHAR(20), "
                     "k_clob CLOB, k_binary BLOB, k_boolean BOOLEAN, k_time DATETIME, "
                     "k_date DATE, k_json JSON, k_any)");
    return {{"id", ColumnKind::kInteger},      {"k_integer", ColumnKind::kInteger},
            {"k_real", ColumnKind::kReal},     {"k_decimal", ColumnKind::kDecimal},
            {"k_text", ColumnKind::kText},     {"k_clob", ColumnKind::kText},
            {"k_binary", ColumnKind::kBinary}, {"k_boolean", ColumnKind::kBoolean},
            {"k_time", ColumnKind::kTime},     {"k_date", ColumnKind::kTime},
            {"k_json", ColumnKind::kJson},     {"k_any", ColumnKind::kAny}};
  }
  void Write(const std::vector<AppWrite>& writes) override {
    Result<sqlite::Db> db = sqlite::Db::Open(path_, false);
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    ASSERT_OK(db->Exec("PRAGMA foreign_keys = ON; BEGIN IMMEDIATE"));
    for (const AppWrite& w : writes) {
      // Bound, not spelled as literals: SQLite's parser does not round every real exactly.
      std::string sql;
      std::vector<Value> args;
      if (w.op == Op::kInsert) {
        std::string cols, marks;
        for (const auto& item : w.row.items()) {
          cols += (cols.empty() ? "" : ", ") + sqlite::QuoteIdent(item.key());
          marks += marks.empty() ? "?" : ", ?";
          args.push_back(item.value());
        }
        sql = "INSERT INTO " + w.table + "(" + cols + ") VALUES(" + marks + ")";
      } else {
        std::string set;
        for (const auto& item : w.row.items()) {
          set += (set.empty() ? "" : ", ") + sqlite::QuoteIdent(item.key()) + " = ?";
          args.push_back(item.value());
        }
        sql = w.op == Op::kUpdate ? "UPDATE " + w.table + " SET " + set : "DELETE FROM " + w.table;
        std::string where;
        for (const auto& item : w.key.items()) {
          where += (where.empty() ? " WHERE " : " AND ") + sqlite::QuoteIdent(item.key()) + " = ?";
          args.push_back(item.value());
        }
        sql += where;
      }
      Result<sqlite::Stmt> stmt = db->Prepare(sql);
      ASSERT_TRUE(stmt.ok()) << stmt.status().ToString() << "\n" << sql;
      for (size_t i = 0; i < args.size(); ++i) stmt->BindValue(static_cast<int>(i + 1), args[i]);
      ASSERT_OK(stmt->Run());
      EXPECT_EQ(db->Changes(), 1) << sql;
    }
    ASSERT_OK(db->Exec("COMMIT"));
  }
  std::vector<Row> Rows(const std::string& table) override {
    std::vector<Row> out;
    Result<sqlite::Db> db = sqlite::Db::Open(path_, false);
    EXPECT_TRUE(db.ok()) << db.status().ToString();
    if (!db.ok()) return out;
    Result<sqlite::Stmt> stmt = db->Prepare("SELECT * FROM " + table + " ORDER BY id");
    EXPECT_TRUE(stmt.ok()) << stmt.status().ToString();
    if (!stmt.ok()) return out;
    while (true) {
      Result<bool> row = stmt->Step();
      EXPECT_TRUE(row.ok()) << row.status().ToString();
      if (!row.ok() || !*row) break;
      Row r = Row::object();
      for (int i = 0; i < sqlite3_column_count(stmt->get()); ++i) {
        r[sqlite3_column_name(stmt->get(), i)] = stmt->ColumnValue(i);
      }
      out.push_back(std::move(r));
    }
    return out;
  }
  bool Backup(std::string* /*why*/) override {
    return testing::RunCommand("cp '" + path_ + "' '" + path_ + ".bak'") == 0;
  }
  void Restore() override {
    // A WAL or shared-memory file left from the endpoint's later life must not replay onto the
    // copy.
    ASSERT_EQ(testing::RunCommand("rm -f '" + path_ + "-wal' '" + path_ + "-shm' && cp '" + path_ +
                                  ".bak' '" + path_ + "'"),
              0);
  }

 private:
  testing::TempDir dir_;
  std::string path_;
};

// ---------------------------------------------------------------------------------------------
// PostgreSQL: a schema of its own on the suite's shared cluster; either capture mode.

std::string PgLiteral(const Value& v) {
  if (v.is_null()) return "NULL";
  if (IsBlob(v)) return "'\\x" + v["$blob"].get<std::string>() + "'::bytea";
  if (v.is_number_float()) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.17g", v.get<double>());
    return std::string("'") + buf + "'::float8";
  }
  if (v.is_number()) return v.dump();
  std::string out = "'";
  for (char c : v.get<std::string>()) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

class PgHarness final : public Harness {
 public:
  PgHarness(testing::PgCluster* cluster, pg::PostgresConnector::CaptureMode mode)
      : cluster_(cluster),
        mode_(mode),
        db_(mode == pg::PostgresConnector::CaptureMode::kLogical ? "conf_logical"
                                                                 : "conf_trigger") {}
  // Drops the case's replication slot: the cluster has 20. (The schema stays.)
  ~PgHarness() override {
    if (schema_.empty() || mode_ != pg::PostgresConnector::CaptureMode::kLogical) return;
    const std::string sql =
        "SELECT count(pg_drop_replication_slot(slot_name)) FROM pg_replication_slots "
        "WHERE slot_name = 'duplex_" +
        Tag() + "'";
    // The walsender of a connector just closed may still hold its slot for a moment.
    for (int attempt = 0; attempt < 50 && !cluster_->Exec(sql, db_).ok(); ++attempt) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  // A schema of its own in the capture mode's database (made once per cluster: a database per
  // case would cost a copy of template1 and make the cluster slow to remove).
  void Create() override {
    ASSERT_NE(cluster_, nullptr) << "no PostgreSQL cluster";
    static std::set<std::pair<testing::PgCluster*, std::string>> made;
    if (made.emplace(cluster_, db_).second) ASSERT_OK(cluster_->CreateDatabase(db_));
    static int schemas = 0;
    schema_ = "s" + std::to_string(++schemas);
    ASSERT_OK(cluster_->Exec("CREATE SCHEMA " + schema_ + "; SET search_path TO " + schema_ +
                                 ";"
                                 "CREATE TABLE items(id bigint PRIMARY KEY, name text, qty bigint, "
                                 "price double precision, data bytea);"
                                 "CREATE TABLE parts(id bigint PRIMARY KEY, "
                                 "item_id bigint REFERENCES items(id));",
                             db_));
  }
  std::unique_ptr<Connector> Connect() override {
    pg::PostgresConnector::Options o;
    o.name = "pg";
    o.dsn = cluster_->dsn(db_);
    o.schema = schema_;
    o.capture = mode_;
    o.tag = Tag();
    return std::make_unique<pg::PostgresConnector>(o);
  }
  std::vector<std::pair<std::string, ColumnKind>> CreateKinds() override {
    // By pg_type.typcategory and oid (ColumnKindOf): a domain as its base type.
    EXPECT_OK(cluster_->Exec(
        "SET search_path TO " + schema_ +
            ";"
            "CREATE TYPE tier AS ENUM ('gold', 'silver');"
            "CREATE DOMAIN email AS text CHECK (VALUE LIKE '%@%');"
            "CREATE DOMAIN amount AS bigint;"
            "CREATE TABLE kinds(id bigint PRIMARY KEY, k_int2 smallint, k_int4 int, "
            "k_amount amount, k_real real, k_float8 double precision, k_numeric numeric(10,2), "
            "k_money money, k_text text, k_varchar varchar(20), k_enum tier, k_email email, "
            "k_uuid uuid, k_inet inet, k_binary bytea, k_boolean boolean, k_date date, "
            "k_time time, k_timestamp timestamp, k_timestamptz timestamptz, "
            "k_interval interval, k_json json, k_jsonb jsonb, k_array int[], k_range int4range, "
            "k_point point)",
        db_));
    return {{"id", ColumnKind::kInteger},        {"k_int2", ColumnKind::kInteger},
            {"k_int4", ColumnKind::kInteger},    {"k_amount", ColumnKind::kInteger},
            {"k_real", ColumnKind::kReal},       {"k_float8", ColumnKind::kReal},
            {"k_numeric", ColumnKind::kDecimal}, {"k_money", ColumnKind::kDecimal},
            {"k_text", ColumnKind::kText},       {"k_varchar", ColumnKind::kText},
            {"k_enum", ColumnKind::kText},       {"k_email", ColumnKind::kText},
            {"k_uuid", ColumnKind::kText},       {"k_inet", ColumnKind::kText},
            {"k_binary", ColumnKind::kBinary},   {"k_boolean", ColumnKind::kBoolean},
            {"k_date", ColumnKind::kTime},       {"k_time", ColumnKind::kTime},
            {"k_timestamp", ColumnKind::kTime},  {"k_timestamptz", ColumnKind::kTime},
            {"k_interval", ColumnKind::kTime},   {"k_json", ColumnKind::kJson},
            {"k_jsonb", ColumnKind::kJson},      {"k_array", ColumnKind::kAny},
            {"k_range", ColumnKind::kAny},       {"k_point", ColumnKind::kAny}};
  }
  void Write(const std::vector<AppWrite>& writes) override {
    std::string sql = "SET search_path TO " + schema_ + "; BEGIN;";
    for (const AppWrite& w : writes) {
      if (w.op == Op::kInsert) {
        std::string cols, vals;
        for (const auto& item : w.row.items()) {
          cols += (cols.empty() ? "" : ", ") + item.key();
          vals += (vals.empty() ? "" : ", ") + PgLiteral(item.value());
        }
        sql += "INSERT INTO " + w.table + "(" + cols + ") VALUES (" + vals + ");";
        continue;
      }
      std::string set, where;
      for (const auto& item : w.row.items()) {
        set += (set.empty() ? "" : ", ") + item.key() + " = " + PgLiteral(item.value());
      }
      for (const auto& item : w.key.items()) {
        where +=
            (where.empty() ? " WHERE " : " AND ") + item.key() + " = " + PgLiteral(item.value());
      }
      sql +=
          (w.op == Op::kUpdate ? "UPDATE " + w.table + " SET " + set : "DELETE FROM " + w.table) +
          where + ";";
    }
    sql += "COMMIT;";
    Status st = cluster_->Exec(sql, db_);
    EXPECT_TRUE(st.ok()) << st.ToString() << "\n" << sql;
  }
  std::vector<Row> Rows(const std::string& table) override {
    std::vector<Row> out;
    Result<std::string> text =
        cluster_->Query("SELECT coalesce(json_agg(to_jsonb(t) ORDER BY id), '[]')::text FROM " +
                            schema_ + "." + table + " t",
                        db_);
    EXPECT_TRUE(text.ok()) << text.status().ToString();
    if (!text.ok()) return out;
    Value rows = Value::parse(*text);
    for (Row& r : rows) {
      // bytea comes as "\x<hex>" text.
      auto data = r.find("data");
      if (data != r.end() && data->is_string() && data->get<std::string>().rfind("\\x", 0) == 0) {
        std::string hex = data->get<std::string>().substr(2);
        for (char& c : hex) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        *data = Value{{"$blob", hex}};
      }
      out.push_back(std::move(r));
    }
    return out;
  }
  // A copy of the whole database (the other cases' schemas in it are done with).
  bool Backup(std::string* why) override {
    if (mode_ == pg::PostgresConnector::CaptureMode::kLogical) {
      *why =
          "logical capture: a copy of the database leaves the replication slot behind "
          "(restore_test covers pg_dump/pg_restore; the removed-objects case covers the slot)";
      return false;
    }
    // The connector's sessions may still be ending: CREATE DATABASE ... TEMPLATE needs none.
    Status st;
    for (int attempt = 0; attempt < 50; ++attempt) {
      st = cluster_->Exec("CREATE DATABASE " + Copy() + " TEMPLATE " + db_);
      if (st.ok()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    *why = st.ToString();
    return false;
  }
  std::string Fixme(const std::string& check) const override {
    if (check != "final-ack" || mode_ != pg::PostgresConnector::CaptureMode::kLogical) return "";
    return "FIXME(conformance): logical capture: Ack only notes the position; it reaches the slot "
           "with the next status message (at most one a second, while the stream is pumped), so "
           "an Ack followed by closing the connector (`duplex run` exiting) is lost and a restart "
           "streams the acked changes again";
  }
  void Restore() override {
    ASSERT_OK(cluster_->Exec("DROP DATABASE " + db_ + " WITH (FORCE)"));
    ASSERT_OK(cluster_->Exec("CREATE DATABASE " + db_ + " TEMPLATE " + Copy()));
  }

 private:
  std::string Tag() const { return db_ + "_" + schema_; }
  std::string Copy() const { return db_ + "_" + schema_ + "_bak"; }

  testing::PgCluster* cluster_;
  pg::PostgresConnector::CaptureMode mode_;
  std::string db_;
  std::string schema_;
};

}  // namespace

std::unique_ptr<Harness> MakeMemoryHarness(testing::PgCluster* /*cluster*/) {
  return std::make_unique<MemoryHarness>();
}
std::unique_ptr<Harness> MakeSqliteHarness(testing::PgCluster* /*cluster*/) {
  return std::make_unique<SqliteHarness>();
}
std::unique_ptr<Harness> MakePgLogicalHarness(testing::PgCluster* cluster) {
  return std::make_unique<PgHarness>(cluster, pg::PostgresConnector::CaptureMode::kLogical);
}
std::unique_ptr<Harness> MakePgTriggerHarness(testing::PgCluster* cluster) {
  return std::make_unique<PgHarness>(cluster, pg::PostgresConnector::CaptureMode::kTrigger);
}

}  // namespace duplex::conformance
