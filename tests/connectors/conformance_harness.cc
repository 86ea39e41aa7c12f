#include "connectors/conformance_harness.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <set>
#include <thread>
#include <tuple>
#include <utility>

#include "connectors/memory/memory_connector.h"
#include "connectors/postgres/postgres_connector.h"
#include "connectors/salesforce/salesforce_connector.h"
#include "connectors/sqlite/sqlite_connector.h"
#include "support/sf_emulator.h"
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

// ---------------------------------------------------------------------------------------------
// Salesforce: the local emulator (tools/sf-emulator/), one for the binary, started with a
// schema of kSfCases sets of objects so that each case gets fresh ones (Item<n>__c,
// Part<n>__c, Kinds<n>__c). The org makes its own Ids, so the suite binds with mapped keys:
// the suite's record n is the record id "ops:<n as 7 digits>" (a record first seen on another
// endpoint), held in the external id field External_Id__c. The application's inserts set it too,
// so that capture names their records the same way. Capture is by polling (no events): each
// row a unit of its own.

constexpr int kSfCases = 40;
const char* const kSfExternalId = "External_Id__c";

// The object set of case n in the emulator's schema (a key prefix of its own each).
nlohmann::ordered_json SfSchema() {
  static const char* kBase62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  int prefixes = 0;
  auto prefix = [&] {
    const int k = prefixes++;
    return std::string("x") + kBase62[k / 62] + kBase62[k % 62];
  };
  const nlohmann::ordered_json ext = {
      {"type", "string"}, {"length", 255}, {"externalId", true}, {"unique", true}};
  nlohmann::ordered_json objects = nlohmann::ordered_json::object();
  for (int n = 1; n <= kSfCases; ++n) {
    const std::string i = std::to_string(n);
    objects["Item" + i + "__c"] = {{"keyPrefix", prefix()},
                                   {"fields",
                                    {{"name", {{"type", "string"}, {"length", 255}}},
                                     {"qty", {{"type", "int"}, {"digits", 18}}},
                                     {"price", {{"type", "double"}}},
                                     {"data", {{"type", "base64"}}},
                                     {kSfExternalId, ext}}}};
    objects["Part" + i + "__c"] = {{"keyPrefix", prefix()},
                                   {"fields",
                                    {{"item_id",
                                      {{"type", "reference"},
                                       {"length", 18},
                                       {"referenceTo", {"Item" + i + "__c"}},
                                       {"relationshipName", "Item"}}},
                                     {kSfExternalId, ext}}}};
    objects["Kinds" + i + "__c"] = {
        {"keyPrefix", prefix()},
        {"fields",
         {{"k_integer", {{"type", "int"}, {"digits", 9}}},
          {"k_real", {{"type", "double"}}},
          {"k_currency", {{"type", "currency"}}},
          {"k_percent", {{"type", "percent"}}},
          {"k_text", {{"type", "string"}, {"length", 40}}},
          {"k_textarea", {{"type", "textarea"}, {"length", 4000}}},
          {"k_picklist", {{"type", "picklist"}, {"picklistValues", {"gold", "silver"}}}},
          {"k_email", {{"type", "email"}, {"length", 80}}},
          {"k_binary", {{"type", "base64"}}},
          {"k_boolean", {{"type", "boolean"}}},
          {"k_date", {{"type", "date"}}},
          {"k_datetime", {{"type", "datetime"}}},
          {"k_ref", {{"type", "reference"}, {"referenceTo", {"Item" + i + "__c"}}}}}}};
  }
  return nlohmann::ordered_json{{"objects", objects}};
}

// The binary's emulator, started at the first use (nullptr if it did not start).
testing::SfEmulator* SharedSfEmulator() {
  static testing::TempDir dir;
  static std::unique_ptr<testing::SfEmulator> emu = [] {
    const std::string schema = dir.File("schema.json");
    std::ofstream(schema) << SfSchema().dump();
    return std::make_unique<testing::SfEmulator>(std::vector<std::string>{"--schema", schema});
  }();
  return emu->running() ? emu.get() : nullptr;
}

// Text as a SOQL literal inside a URL.
std::string SoqlUrl(const std::string& soql) {
  std::string out;
  static const char* kHex = "0123456789ABCDEF";
  for (unsigned char c : soql) {
    if (std::isalnum(c) || c == '_' || c == '.' || c == '-') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

class SalesforceHarness final : public Harness {
 public:
  void Create() override {
    emu_ = SharedSfEmulator();
    ASSERT_NE(emu_, nullptr) << "the Salesforce emulator did not start";
    static int cases = 0;
    n_ = ++cases;
    ASSERT_LE(n_, kSfCases) << "more cases than the emulator's schema has objects for";
  }
  std::unique_ptr<Connector> Connect() override {
    sf::SfEndpoint::Options o;
    o.client = emu_->ClientOptions("duplex-sf", "endpoint 'sf'");
    o.external_id = kSfExternalId;
    o.events = false;  // polls: the capture that must find every change by itself
    o.pacing.min_poll_seconds = 0.1;
    o.overlap_seconds = 2;
    return std::make_unique<sf::SalesforceConnector>("sf", o, *Env::Default());
  }
  std::string Table(const std::string& table) const override {
    const std::string i = std::to_string(n_);
    if (table == "items") return "Item" + i + "__c";
    if (table == "parts") return "Part" + i + "__c";
    if (table == "kinds") return "Kinds" + i + "__c";
    return table;
  }
  std::string Column(const std::string& column) const override {
    return column == "id" ? "Id" : column;
  }
  Value Id(int64_t n) const override {
    char buf[32];
    std::snprintf(buf, sizeof buf, "ops:%07lld", static_cast<long long>(n));
    return std::string(buf);
  }
  bool MappedKeys() const override { return true; }
  std::string CannotHold(const Value& v) const override {
    if (!IsBlob(v)) return "";
    return "FIXME(conformance): SalesforceConnector passes a base64 field's value through as "
           "the API's base64 text, not as {\"$blob\": HEX} (src/connectors/salesforce/README.md, "
           "types)";
  }
  bool LoseNextReply() override {
    emu_->Hook("faults", {{"kind", "DROP_RESPONSE_AFTER_COMMIT"}, {"count", 1}});
    return true;
  }
  std::string NothingToInstall() const override {
    return "the Salesforce connector creates nothing in the org (capture needs only the API)";
  }
  std::string NoLogToRelease() const override {
    return "the Salesforce connector's position is its poll cursors: capturing from the start "
           "is the initial load of every live record, and the org keeps nothing for Ack to "
           "release";
  }
  std::string DefaultScan() const override {
    return "the Salesforce connector keeps Connector's default Scan, which the README accepts: "
           "an org restored from a sandbox copy is not brought back";
  }
  std::string DefaultCheckRestored() const override {
    return "the Salesforce connector keeps Connector's default CheckRestored: an org restored "
           "from a sandbox copy is not detected (salesforce/README.md)";
  }
  std::string Fixme(const std::string& check) const override {
    if (check == "txn-grouping") {
      return "FIXME(conformance): polled rows each get a made-up unit (salesforce/README.md: "
             "polls cannot tell transactions apart); the contract asks for txn 0 when the source "
             "cannot tell, so that the rows of one application transaction are not split";
    }
    if (check == "late-snapshot") {
      return "FIXME(conformance): the Salesforce connector's initial load is the first capture "
             "from the start, not Install: records written after Install and before that "
             "capture come as snapshot rows (commit time 0 under lww)";
    }
    return "";
  }

  void Write(const std::vector<AppWrite>& writes) override {
    // An org stamps a write in whole seconds and a poll orders rows by (stamp, Id): each of the
    // application's transactions starts in a second of its own, so that their order is known.
    const auto now = std::chrono::system_clock::now().time_since_epoch();
    std::this_thread::sleep_for(std::chrono::seconds(1) -
                                (now - std::chrono::duration_cast<std::chrono::seconds>(now)));
    for (const AppWrite& w : writes) {
      const std::string object = Table(w.table);
      if (w.op == Op::kInsert) {
        nlohmann::json rec = Fields(w.table, w.row);
        nlohmann::json r = emu_->Api("POST", "/sobjects/" + object, rec);
        EXPECT_TRUE(r.is_object() && r.value("success", false))
            << "the org refused an insert into " << object << " " << rec.dump() << ": " << r.dump();
        continue;
      }
      const std::string id = IdOf(object, w.key.at("id"));
      ASSERT_FALSE(id.empty()) << object << " has no record " << w.key.dump();
      if (w.op == Op::kUpdate) {
        emu_->Api("PATCH", "/sobjects/" + object + "/" + id, Fields(w.table, w.row));
      } else {
        emu_->Api("DELETE", "/sobjects/" + object + "/" + id);
      }
    }
  }
  std::vector<Row> Rows(const std::string& table) override {
    std::vector<Row> out;
    const bool items = table == "items";
    const std::string cols = items ? "name, qty, price, data" : "item_id";
    nlohmann::json q =
        emu_->Api("GET", "/query?q=" + SoqlUrl("SELECT Id, " + std::string(kSfExternalId) + ", " +
                                               cols + " FROM " + Table(table)));
    EXPECT_TRUE(q.is_object() && q.contains("records")) << q.dump();
    if (!q.is_object() || !q.contains("records")) return out;
    for (const nlohmann::json& rec : q["records"]) {
      Row r = Row::object();
      r["id"] = KeyOf(rec);
      if (items) {
        for (const char* c : {"name", "qty", "price", "data"}) r[c] = rec.value(c, Value());
      } else {
        const Value ref = rec.value("item_id", Value());
        r["item_id"] = ref.is_string() ? ExternalIdOf(Table("items"), ref.get<std::string>()) : ref;
      }
      out.push_back(std::move(r));
    }
    SortById(out);
    return out;
  }
  std::vector<std::pair<std::string, ColumnKind>> CreateKinds() override {
    // Created with the emulator's schema; describe's types as ColumnKindOf reads them (ids and
    // references carry record ids: any).
    return {{"Id", ColumnKind::kAny},
            {"IsDeleted", ColumnKind::kBoolean},
            {"CreatedDate", ColumnKind::kTime},
            {"CreatedById", ColumnKind::kAny},
            {"LastModifiedDate", ColumnKind::kTime},
            {"LastModifiedById", ColumnKind::kAny},
            {"SystemModstamp", ColumnKind::kTime},
            {"k_integer", ColumnKind::kInteger},
            {"k_real", ColumnKind::kReal},
            {"k_currency", ColumnKind::kDecimal},
            {"k_percent", ColumnKind::kDecimal},
            {"k_text", ColumnKind::kText},
            {"k_textarea", ColumnKind::kText},
            {"k_picklist", ColumnKind::kText},
            {"k_email", ColumnKind::kText},
            {"k_binary", ColumnKind::kBinary},
            {"k_boolean", ColumnKind::kBoolean},
            {"k_date", ColumnKind::kTime},
            {"k_datetime", ColumnKind::kTime},
            {"k_ref", ColumnKind::kAny}};
  }
  bool Backup(std::string* why) override {
    *why = "an org is not copied back (no Scan or CheckRestored either)";
    return false;
  }
  void Restore() override {}

 private:
  // A suite row (columns of items or parts) as the org's fields: the key in the external id
  // field, a reference as the referenced record's Id.
  nlohmann::json Fields(const std::string& table, const Row& row) {
    nlohmann::json rec = nlohmann::json::object();
    for (const auto& item : row.items()) {
      if (item.key() == "id") {
        rec[kSfExternalId] = item.value();
      } else if (item.key() == "item_id" && !item.value().is_null()) {
        rec["item_id"] = IdOf(Table("items"), item.value());
      } else {
        rec[item.key()] = item.value();
      }
    }
    (void)table;
    return rec;
  }
  // The Id of the record whose external id is `key` ("" if none).
  std::string IdOf(const std::string& object, const Value& key) {
    nlohmann::json q = emu_->Api(
        "GET", "/query?q=" + SoqlUrl("SELECT Id FROM " + object + " WHERE " + kSfExternalId +
                                     " = '" + key.get<std::string>() + "'"));
    if (!q.is_object() || q.value("totalSize", 0) != 1) return "";
    return q["records"][0].value("Id", "");
  }
  Value ExternalIdOf(const std::string& object, const std::string& id) {
    nlohmann::json rec = emu_->Api("GET", "/sobjects/" + object + "/" + id);
    return rec.is_object() ? KeyOf(rec) : Value();
  }
  // A record's key as capture presents it: its external id, else the org's record id.
  Value KeyOf(const nlohmann::json& rec) const {
    const Value ext = rec.value(kSfExternalId, Value());
    if (ext.is_string() && !ext.get<std::string>().empty()) return ext;
    return RecordId("sf", rec.value("Id", Value()));
  }

  testing::SfEmulator* emu_ = nullptr;
  int n_ = 0;
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
std::unique_ptr<Harness> MakeSalesforceHarness(testing::PgCluster* /*cluster*/) {
  return std::make_unique<SalesforceHarness>();
}

}  // namespace duplex::conformance
