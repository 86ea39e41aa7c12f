#include "support/sync_fixture.h"

#include <libpq-fe.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <thread>

#include "util/sqlite.h"

namespace duplex::testing {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::string TomlString(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        out += c;
    }
  }
  return out + "\"";
}

// ---- ConfigBuilder ----------------------------------------------------------------------------

using CollectionSpec = ConfigBuilder::CollectionSpec;

CollectionSpec& CollectionSpec::Key(std::vector<std::string> fields) {
  key_ = std::move(fields);
  return *this;
}
CollectionSpec& CollectionSpec::KeyMode(std::string mode) {
  key_mode_ = std::move(mode);
  return *this;
}
CollectionSpec& CollectionSpec::DefaultPolicy(std::string policy) {
  policy_ = std::move(policy);
  return *this;
}
CollectionSpec& CollectionSpec::OnDeleteConflict(std::string what) {
  on_delete_ = std::move(what);
  return *this;
}
CollectionSpec& CollectionSpec::Policy(std::string field, std::string policy,
                                       std::string endpoint) {
  std::string t = "{ policy = " + TomlString(policy);
  if (!endpoint.empty()) t += ", endpoint = " + TomlString(endpoint);
  policies_.emplace_back(std::move(field), t + " }");
  return *this;
}
CollectionSpec& CollectionSpec::On(std::string endpoint, std::string table,
                                   std::vector<std::pair<std::string, std::string>> fields) {
  members_.push_back({std::move(endpoint), std::move(table), std::move(fields)});
  return *this;
}

std::string CollectionSpec::Toml() const {
  std::string t = "[collections." + name_ + "]\nkey = [";
  for (size_t i = 0; i < key_.size(); ++i) t += (i ? ", " : "") + TomlString(key_[i]);
  t += "]\n";
  if (!key_mode_.empty()) t += "key_mode = " + TomlString(key_mode_) + "\n";
  if (!policy_.empty()) t += "policy = " + TomlString(policy_) + "\n";
  if (!on_delete_.empty()) t += "on_delete_conflict = " + TomlString(on_delete_) + "\n";
  for (const auto& [field, policy] : policies_) t += "fields." + field + " = " + policy + "\n";
  for (const Member& m : members_) {
    t += "endpoints." + m.endpoint + " = { table = " + TomlString(m.table);
    if (!m.fields.empty()) {
      t += ", fields = { ";
      for (size_t i = 0; i < m.fields.size(); ++i) {
        t += (i ? ", " : "") + m.fields[i].first + " = " + TomlString(m.fields[i].second);
      }
      t += " }";
    }
    t += " }\n";
  }
  return t;
}

ConfigBuilder& ConfigBuilder::State(std::string path) {
  state_ = std::move(path);
  return *this;
}
ConfigBuilder& ConfigBuilder::Engine(const std::string& key, const std::string& value) {
  engine_.emplace_back(key, TomlString(value));
  return *this;
}
ConfigBuilder& ConfigBuilder::Engine(const std::string& key, const char* value) {
  return Engine(key, std::string(value));
}
ConfigBuilder& ConfigBuilder::Engine(const std::string& key, int64_t value) {
  engine_.emplace_back(key, std::to_string(value));
  return *this;
}
ConfigBuilder& ConfigBuilder::Sqlite(std::string name, std::string path) {
  endpoints_.push_back({std::move(name), "sqlite", std::move(path), "", "", ""});
  return *this;
}
ConfigBuilder& ConfigBuilder::Postgres(std::string name, std::string dsn, std::string capture) {
  endpoints_.push_back({std::move(name), "postgres", "", std::move(dsn), "", std::move(capture)});
  return *this;
}
ConfigBuilder& ConfigBuilder::PostgresEnv(std::string name, std::string env, std::string capture) {
  endpoints_.push_back({std::move(name), "postgres", "", "", std::move(env), std::move(capture)});
  return *this;
}
CollectionSpec& ConfigBuilder::Collection(const std::string& name) {
  for (CollectionSpec& c : collections_) {
    if (c.name() == name) return c;
  }
  return collections_.emplace_back(name);
}

const ConfigBuilder::Endpoint* ConfigBuilder::FindEndpoint(const std::string& name) const {
  for (const Endpoint& e : endpoints_) {
    if (e.name == name) return &e;
  }
  return nullptr;
}
const CollectionSpec* ConfigBuilder::FindCollection(const std::string& name) const {
  for (const CollectionSpec& c : collections_) {
    if (c.name() == name) return &c;
  }
  return nullptr;
}

std::string ConfigBuilder::Toml() const {
  std::string t = "[engine]\nstate = " + TomlString(state_) + "\n";
  for (const auto& [key, value] : engine_) t += key + " = " + value + "\n";
  for (const Endpoint& e : endpoints_) {
    t += "\n[endpoints." + e.name + "]\ntype = " + TomlString(e.type) + "\n";
    if (!e.path.empty()) t += "path = " + TomlString(e.path) + "\n";
    if (!e.dsn.empty()) t += "dsn = " + TomlString(e.dsn) + "\n";
    if (!e.dsn_env.empty()) t += "dsn_env = " + TomlString(e.dsn_env) + "\n";
    if (!e.capture.empty()) t += "capture = " + TomlString(e.capture) + "\n";
  }
  for (const CollectionSpec& c : collections_) t += "\n" + c.Toml();
  return t;
}

// ---- Reading rows ------------------------------------------------------------------------------

namespace {

// Column -> canonical field: the renames of `columns` reversed, identity for the rest.
std::string FieldOf(const std::string& column,
                    const std::vector<std::pair<std::string, std::string>>& columns) {
  for (const auto& [field, col] : columns) {
    if (col == column) return field;
  }
  return column;
}

std::string KeyOf(const std::map<std::string, std::optional<std::string>>& row,
                  const std::vector<std::string>& key) {
  std::string k;
  for (size_t i = 0; i < key.size(); ++i) {
    auto it = row.find(key[i]);
    k += (i ? "|" : "") + (it == row.end() || !it->second ? std::string("NULL") : *it->second);
  }
  return k;
}

std::string Show(const std::optional<std::string>& v) { return v ? "'" + *v + "'" : "NULL"; }

}  // namespace

Result<CanonicalRows> ReadSqliteRows(
    const std::string& path, const std::string& table, const std::vector<std::string>& key,
    const std::vector<std::pair<std::string, std::string>>& columns) {
  auto db = sqlite::Db::Open(path, /*create=*/false);
  if (!db.ok()) return db.status();
  auto stmt = db->Prepare("SELECT * FROM \"" + table + "\"");
  if (!stmt.ok()) return stmt.status();
  CanonicalRows rows;
  while (true) {
    auto more = stmt->Step();
    if (!more.ok()) return more.status();
    if (!*more) break;
    std::map<std::string, std::optional<std::string>> row;
    int n = sqlite3_column_count(stmt->get());
    for (int i = 0; i < n; ++i) {
      std::optional<std::string> v;
      int type = sqlite3_column_type(stmt->get(), i);
      if (type == SQLITE_BLOB) {
        static const char* kHex = "0123456789abcdef";
        std::string blob = stmt->Blob(i), hex = "\\x";
        for (unsigned char c : blob) hex += {kHex[c >> 4], kHex[c & 15]};
        v = hex;
      } else if (type != SQLITE_NULL) {
        v = stmt->Text(i);
      }
      row[FieldOf(sqlite3_column_name(stmt->get(), i), columns)] = v;
    }
    rows[KeyOf(row, key)] = std::move(row);
  }
  return rows;
}

Result<CanonicalRows> ReadPgRows(const std::string& dsn, const std::string& table,
                                 const std::vector<std::string>& key,
                                 const std::vector<std::pair<std::string, std::string>>& columns) {
  std::unique_ptr<PGconn, decltype(&PQfinish)> conn(PQconnectdb(dsn.c_str()), PQfinish);
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    return Status::Unavailable("cannot connect to " + dsn + ": " + PQerrorMessage(conn.get()));
  }
  std::unique_ptr<PGresult, decltype(&PQclear)> res(
      PQexec(conn.get(), ("SELECT * FROM \"" + table + "\"").c_str()), PQclear);
  if (PQresultStatus(res.get()) != PGRES_TUPLES_OK) {
    return Status::InvalidArgument("table '" + table + "' on " + dsn + ": " +
                                   PQresultErrorMessage(res.get()));
  }
  CanonicalRows rows;
  for (int r = 0; r < PQntuples(res.get()); ++r) {
    std::map<std::string, std::optional<std::string>> row;
    for (int c = 0; c < PQnfields(res.get()); ++c) {
      std::optional<std::string> v;
      if (!PQgetisnull(res.get(), r, c)) v = PQgetvalue(res.get(), r, c);
      row[FieldOf(PQfname(res.get(), c), columns)] = v;
    }
    rows[KeyOf(row, key)] = std::move(row);
  }
  return rows;
}

std::string FirstRowDifference(const std::string& a, const CanonicalRows& ra, const std::string& b,
                               const CanonicalRows& rb) {
  // Compared on the fields both have: an endpoint may hold columns the collection does not sync.
  std::set<std::string> fa, common;
  if (!ra.empty()) {
    for (const auto& [f, v] : ra.begin()->second) fa.insert(f);
  }
  if (!rb.empty()) {
    for (const auto& [f, v] : rb.begin()->second) {
      if (fa.count(f)) common.insert(f);
    }
  }
  for (auto ia = ra.begin(), ib = rb.begin(); ia != ra.end() || ib != rb.end();) {
    if (ib == rb.end() || (ia != ra.end() && ia->first < ib->first)) {
      return "key " + ia->first + " is on endpoint '" + a + "', not on endpoint '" + b + "'";
    }
    if (ia == ra.end() || ib->first < ia->first) {
      return "key " + ib->first + " is on endpoint '" + b + "', not on endpoint '" + a + "'";
    }
    for (const std::string& f : common) {
      const auto& va = ia->second.at(f);
      const auto& vb = ib->second.at(f);
      if (va != vb) {
        return "key " + ia->first + ", field '" + f + "': " + Show(va) + " on endpoint '" + a +
               "', " + Show(vb) + " on endpoint '" + b + "'";
      }
    }
    ++ia;
    ++ib;
  }
  return "";
}

// ---- SyncFixture -------------------------------------------------------------------------------

void SyncFixture::FreshDir() {
  dir_.reset();  // removes the old one first
  dir_.emplace();
  config_ = ConfigBuilder();
}

void SyncFixture::WriteConfig(const ConfigBuilder& config) {
  config_ = config;
  WriteFile(ConfigPath(), config.Toml());
}

Outcome SyncFixture::Duplex(std::vector<std::string> args, milliseconds timeout) {
  args.push_back("--config");
  args.push_back(ConfigPath());
  return DuplexRaw(args, timeout);
}

Outcome SyncFixture::DuplexRaw(const std::vector<std::string>& args, milliseconds timeout) {
  Process p(args, NextLog());
  Outcome o;
  o.code = p.Wait(timeout);
  o.out = p.Out();
  o.err = p.Err();
  return o;
}

std::unique_ptr<Process> SyncFixture::Background(std::vector<std::string> args) {
  args.push_back("--config");
  args.push_back(ConfigPath());
  return std::make_unique<Process>(args, NextLog());
}

std::string SyncFixture::NextLog() { return File("cmd" + std::to_string(++commands_)); }

void SyncFixture::SyncIdle() {
  Outcome o = Duplex({"run", "--until-idle"});
  ASSERT_EQ(o.code, 0) << o;
}

nlohmann::json SyncFixture::StatusJson() {
  Outcome o = Duplex({"status", "--json"});
  EXPECT_EQ(o.code, 0) << o;
  nlohmann::json j = nlohmann::json::parse(o.out, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << o;
  return j.is_discarded() ? nlohmann::json::object() : j;
}

nlohmann::json SyncFixture::ConflictsJson(bool all) {
  std::vector<std::string> args = {"conflicts", "list", "--json"};
  if (all) args.push_back("--all");
  Outcome o = Duplex(args);
  EXPECT_EQ(o.code, 0) << o;
  nlohmann::json j = nlohmann::json::parse(o.out, nullptr, false);
  EXPECT_TRUE(j.is_array()) << o;
  return j.is_array() ? j : nlohmann::json::array();
}

bool SyncFixture::NoBacklog(const nlohmann::json& status) {
  if (!status.contains("endpoints") || status.value("journal_backlog", -1) != 0) return false;
  for (const nlohmann::json& ep : status["endpoints"]) {
    if (ep["capture_backlog"] != 0 || ep["apply_backlog"] != 0) return false;
  }
  return true;
}

CanonicalRows SyncFixture::Rows(const std::string& collection, const std::string& endpoint) {
  const ConfigBuilder::CollectionSpec* c = config_.FindCollection(collection);
  const ConfigBuilder::Endpoint* e = config_.FindEndpoint(endpoint);
  if (!c || !e) {
    ADD_FAILURE() << "the config has no collection '" << collection << "' or no endpoint '"
                  << endpoint << "'";
    return {};
  }
  const ConfigBuilder::Member* m = nullptr;
  for (const ConfigBuilder::Member& x : c->members()) {
    if (x.endpoint == endpoint) m = &x;
  }
  if (!m) {
    ADD_FAILURE() << "collection '" << collection << "' is not on endpoint '" << endpoint << "'";
    return {};
  }
  Result<CanonicalRows> rows = Status::InvalidArgument("unknown endpoint type " + e->type);
  if (e->type == "sqlite") {
    std::filesystem::path p(e->path);
    rows = ReadSqliteRows(p.is_absolute() ? e->path : File(e->path), m->table, c->key(), m->fields);
  } else if (e->type == "postgres") {
    const char* env = e->dsn_env.empty() ? nullptr : std::getenv(e->dsn_env.c_str());
    rows = ReadPgRows(env ? env : e->dsn, m->table, c->key(), m->fields);
  }
  if (!rows.ok()) {
    ADD_FAILURE() << "endpoint '" << endpoint << "', table '" << m->table
                  << "': " << rows.status().ToString();
    return {};
  }
  return *rows;
}

::testing::AssertionResult SyncFixture::Converged(const std::string& collection) {
  const ConfigBuilder::CollectionSpec* c = config_.FindCollection(collection);
  if (!c || c->members().empty()) {
    return ::testing::AssertionFailure() << "the config has no collection '" << collection << "'";
  }
  const std::string& first = c->members()[0].endpoint;
  CanonicalRows base = Rows(collection, first);
  for (size_t i = 1; i < c->members().size(); ++i) {
    const std::string& other = c->members()[i].endpoint;
    std::string diff = FirstRowDifference(first, base, other, Rows(collection, other));
    if (!diff.empty()) {
      return ::testing::AssertionFailure() << "collection '" << collection << "': " << diff;
    }
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult SyncFixture::WaitConverged(const std::string& collection,
                                                      milliseconds timeout, bool idle) {
  auto deadline = Clock::now() + timeout;
  std::optional<Clock::time_point> idle_since;
  auto last_status = Clock::now() - milliseconds(1000);
  nlohmann::json status;
  while (true) {
    ::testing::AssertionResult same = Converged(collection);
    auto now = Clock::now();
    if (!idle && same) return same;
    if (idle && (same || now - last_status > milliseconds(250))) {
      last_status = now;
      status = StatusJson();
      bool quiet = NoBacklog(status);
      // Re-read: the rows may have moved between the two looks.
      if (same && quiet && Converged(collection)) return ::testing::AssertionSuccess();
      if (!quiet) idle_since.reset();
      if (quiet && !same) {
        if (!idle_since) idle_since = now;
        if (now - *idle_since > milliseconds(3000)) {
          return ::testing::AssertionFailure() << "diverged: nothing left to sync for 3s, yet "
                                               << same.message() << "\nstatus: " << status.dump();
        }
      }
    }
    if (now > deadline) {
      ::testing::AssertionResult r = ::testing::AssertionFailure();
      r << "not converged in time: " << (same ? "(rows equal)" : same.message());
      if (idle) r << "\nstatus: " << status.dump();
      return r;
    }
    std::this_thread::sleep_for(milliseconds(idle ? 20 : 100));
  }
}

}  // namespace duplex::testing
