// End to end through the `duplex` binary: the merging policies (sum, union, ...) on real data
// written by real clients. pgbench's TPC-B workload runs on two PostgreSQL databases at once
// while duplex syncs them; with `sum` on the balances no deposit may be lost. Tags added and
// removed on both sides of SQLite (delimited text) and PostgreSQL (text[], int[]) all stand
// with `union`. JSON documents (SQLite TEXT, PostgreSQL jsonb and json) edited at different
// paths on both sides keep both edits with `merge`; a path edited on both goes by lww.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support/pg_cluster.h"
#include "support/process.h"
#include "support/test_util.h"

namespace duplex {
namespace {

using std::chrono::milliseconds;
using testing::Outcome;
using testing::Process;
using testing::RunCommand;
using testing::SharedPgCluster;
using testing::SqlExec;
using testing::SqlQuery;
using testing::TempDir;
using testing::WriteFile;

// pgbench ships with PostgreSQL (Debian: /usr/lib/postgresql/<version>/bin); the newest wins.
std::string PgbenchBin() {
  std::string found;
  std::error_code ec;
  for (const auto& dir : std::filesystem::directory_iterator("/usr/lib/postgresql", ec)) {
    std::string bin = dir.path().string() + "/bin/pgbench";
    if (std::filesystem::exists(bin) && bin > found) found = bin;
  }
  return found;
}

class PoliciesPgTest : public SharedPgCluster<::testing::Test> {
 protected:
  void SetUp() override {
    ASSERT_NE(cluster_, nullptr);
    prefix_ = "p" + std::to_string(++databases_);
  }

  std::string NewDb(const std::string& name) {
    const std::string db = prefix_ + "_" + name;
    NewDatabase(db, "");
    return db;
  }
  std::string Pgbench(const std::string& args, const std::string& db) const {
    return PgbenchBin() + " -h 127.0.0.1 -p " + std::to_string(cluster_->port()) + " -U postgres " +
           args + " " + db;
  }
  std::string ConfigPath() const { return dir_.File("duplex.toml"); }
  Outcome Duplex(std::vector<std::string> args, milliseconds timeout = milliseconds(600000)) {
    args.push_back("--config");
    args.push_back(ConfigPath());
    Process p(args, dir_.File("cmd" + std::to_string(++commands_)));
    Outcome o;
    o.code = p.Wait(timeout);
    o.out = p.Out();
    o.err = p.Err();
    return o;
  }
  std::unique_ptr<Process> Background(std::vector<std::string> args) {
    args.push_back("--config");
    args.push_back(ConfigPath());
    return std::make_unique<Process>(args, dir_.File("cmd" + std::to_string(++commands_)));
  }
  // One number (the first column of the first row) of `sql` on `db`.
  long long Number(const std::string& db, const std::string& sql) {
    return std::stoll(PgQuery(db, sql));
  }

  std::string prefix_;
  TempDir dir_;
  int commands_ = 0;
};

// pgbench's TPC-B on both endpoints at once: every transaction adds a random delta to one
// account, its teller and its branch, and records the delta in pgbench_history (not synced: it
// has no primary key; each side keeps its own). With `sum` on the three balances, after sync
// the balances on each side add up to every delta written on either side, and both sides are
// identical. With lww (or max, min, prefer) concurrent updates of the one branch row drop
// deltas and the totals are wrong.
// Logical capture has no before-images (default replica identity): the deltas rest on what
// the resolver knows each side held. Trigger capture has them.
class PgbenchSumTest : public PoliciesPgTest, public ::testing::WithParamInterface<std::string> {};

INSTANTIATE_TEST_SUITE_P(Capture, PgbenchSumTest, ::testing::Values("logical", "trigger"),
                         [](const auto& info) { return info.param; });

TEST_P(PgbenchSumTest, SumKeepsEveryPgbenchDeltaWrittenOnBothSides) {
  ASSERT_FALSE(PgbenchBin().empty()) << "pgbench not found under /usr/lib/postgresql/*/bin";
  const std::string a = NewDb("a"), b = NewDb("b");
  // Scale 1 has 100,000 accounts; an initial load that size takes minutes in a sanitizer
  // build, so both sides keep the first 1,000 (the same on each). pgbench still picks an
  // account among all 100,000: an update of a missing one changes no row, and its delta counts
  // towards the tellers and the branch only.
  constexpr int kAccounts = 1000;
  for (const std::string& db : {a, b}) {
    std::string out;
    ASSERT_EQ(RunCommand(Pgbench("-i -s 1 -q", db), &out), 0) << out;
    PgExec(db, "DELETE FROM pgbench_accounts WHERE aid > " + std::to_string(kAccounts));
  }
  const std::string policy = "sum";
  std::string toml = "[engine]\nstate = \"state.db\"\n\n";
  for (const auto& [ep, db] : {std::pair{"a", a}, std::pair{"b", b}}) {
    toml += std::string("[endpoints.") + ep + "]\ntype = \"postgres\"\ndsn = \"" +
            cluster_->dsn(db) + "\"\ncapture = \"" + GetParam() + "\"\n\n";
  }
  const std::vector<std::vector<std::string>> tables = {{"pgbench_accounts", "aid", "abalance"},
                                                        {"pgbench_tellers", "tid", "tbalance"},
                                                        {"pgbench_branches", "bid", "bbalance"}};
  for (const auto& t : tables) {
    toml += "[collections." + t[0] + "]\nkey = [\"" + t[1] + "\"]\nfields." + t[2] +
            " = { policy = \"" + policy + "\" }\nendpoints.a = { table = \"" + t[0] +
            "\" }\nendpoints.b = { table = \"" + t[0] + "\" }\n\n";
  }
  WriteFile(ConfigPath(), toml);
  // The initial load: both sides hold the same rows, nothing to write.
  Outcome load = Duplex({"run", "--until-idle"});
  ASSERT_EQ(load.code, 0) << load;

  std::unique_ptr<Process> run = Background({"run"});
  // Both at once, 2 clients each, 300 transactions per client.
  std::string out;
  const std::string bench = "-n -c 2 -j 2 -t 300";
  const int rc = RunCommand(
      Pgbench(bench, a) + " > " + dir_.File("bench_a.log") + " 2>&1 & pa=$!; " + Pgbench(bench, b) +
          " > " + dir_.File("bench_b.log") + " 2>&1; rb=$?; wait $pa; ra=$?; exit $((ra | rb))",
      &out);
  ASSERT_EQ(rc, 0) << out << testing::ReadFile(dir_.File("bench_a.log"))
                   << testing::ReadFile(dir_.File("bench_b.log"));
  run->Signal(SIGTERM);
  ASSERT_EQ(run->Wait(milliseconds(60000)), 0) << run->Err();
  Outcome rest = Duplex({"run", "--until-idle"});
  ASSERT_EQ(rest.code, 0) << rest;

  const long long deltas_a = Number(a, "SELECT count(*) FROM pgbench_history");
  const long long deltas_b = Number(b, "SELECT count(*) FROM pgbench_history");
  ASSERT_GT(deltas_a, 0);
  ASSERT_GT(deltas_b, 0);
  auto deltas = [&](const std::string& where) {
    const std::string sql = "SELECT coalesce(sum(delta), 0) FROM pgbench_history" + where;
    return Number(a, sql) + Number(b, sql);
  };
  const long long total = deltas("");
  const long long to_accounts = deltas(" WHERE aid <= " + std::to_string(kAccounts));
  for (const std::string& db : {a, b}) {
    for (const auto& t : tables) {
      EXPECT_EQ(Number(db, "SELECT sum(" + t[2] + ") FROM " + t[0]),
                t[0] == "pgbench_accounts" ? to_accounts : total)
          << db << "." << t[0] << ": " << deltas_a << " + " << deltas_b << " transactions";
    }
  }
  for (const auto& t : tables) {
    const std::string digest = "SELECT md5(string_agg(" + t[1] + " || ':' || " + t[2] +
                               ", ',' ORDER BY " + t[1] + ")) FROM " + t[0];
    EXPECT_EQ(PgQuery(a, digest), PgQuery(b, digest)) << t[0] << " differs between a and b";
  }
  // The one branch row was updated on both sides all along: the run did merge concurrent
  // deltas (else it proved nothing), logged as merged, not as conflicts one side lost.
  Outcome log = Duplex({"conflicts", "list", "--all", "--json"});
  ASSERT_EQ(log.code, 0) << log;
  nlohmann::json entries = nlohmann::json::parse(log.out);
  size_t merged = 0;
  for (const auto& e : entries) {
    if (e["status"] == "merged") ++merged;
    EXPECT_EQ(e["policy"], policy);
  }
  EXPECT_GT(merged, 0u);
  std::printf("%lld + %lld transactions, %zu merges, total %lld\n", deltas_a, deltas_b, merged,
              total);
}

// Sets edited on both sides while duplex is stopped: a multipicklist-like TEXT column with
// separator ";" on two SQLite files, and a text[] and an int[] column on two PostgreSQL
// databases. What either side added is kept, what either side removed goes, on both sides, in
// one order (the base's, then the additions sorted).
TEST_F(PoliciesPgTest, UnionKeepsTagsAddedAndRemovedOnBothSides) {
  const std::string pa = NewDb("a"), pb = NewDb("b");
  PgExec(pa, "CREATE TABLE doc(id int PRIMARY KEY, labels text[], ids int[])");
  PgExec(pb, "CREATE TABLE doc(id int PRIMARY KEY, labels text[], ids int[])");
  PgExec(pa, "INSERT INTO doc VALUES (1, '{x,y,z}', '{1,2,3}')");
  const std::string sa = dir_.File("a.db"), sb = dir_.File("b.db");
  SqlExec(sa, "CREATE TABLE item(id INTEGER PRIMARY KEY, tags TEXT)");
  SqlExec(sb, "CREATE TABLE item(id INTEGER PRIMARY KEY, tags TEXT)");
  SqlExec(sa, "INSERT INTO item VALUES (1, 'red;green;blue')");
  WriteFile(ConfigPath(),
            "[engine]\nstate = \"state.db\"\n\n"
            "[endpoints.sa]\ntype = \"sqlite\"\npath = \"a.db\"\n"
            "[endpoints.sb]\ntype = \"sqlite\"\npath = \"b.db\"\n"
            "[endpoints.pa]\ntype = \"postgres\"\ndsn = \"" +
                cluster_->dsn(pa) +
                "\"\n"
                "[endpoints.pb]\ntype = \"postgres\"\ndsn = \"" +
                cluster_->dsn(pb) +
                "\"\n\n"
                "[collections.item]\nkey = [\"id\"]\n"
                "fields.tags = { policy = \"union\", separator = \";\" }\n"
                "endpoints.sa = { table = \"item\" }\n"
                "endpoints.sb = { table = \"item\" }\n\n"
                "[collections.doc]\nkey = [\"id\"]\n"
                "fields.labels = { policy = \"union\" }\n"
                "fields.ids = { policy = \"union\" }\n"
                "endpoints.pa = { table = \"doc\" }\n"
                "endpoints.pb = { table = \"doc\" }\n");
  Outcome load = Duplex({"run", "--until-idle"});
  ASSERT_EQ(load.code, 0) << load;
  ASSERT_EQ(SqlQuery(sb, "SELECT tags FROM item WHERE id = 1"), "red;green;blue\n");
  ASSERT_EQ(PgQuery(pb, "SELECT labels::text FROM doc WHERE id = 1"), "{x,y,z}\n");

  // Duplex is stopped: neither side sees the other's edit.
  SqlExec(sa, "UPDATE item SET tags = 'red;green;blue;yellow' WHERE id = 1");  // + yellow
  SqlExec(sb, "UPDATE item SET tags = 'green;blue;black' WHERE id = 1");       // - red + black
  PgExec(pa, "UPDATE doc SET labels = '{x,y,z,\"new one\"}', ids = '{1,2,3,4}' WHERE id = 1");
  PgExec(pb, "UPDATE doc SET labels = '{y,z,w}', ids = '{2,3}' WHERE id = 1");
  Outcome sync = Duplex({"run", "--until-idle"});
  ASSERT_EQ(sync.code, 0) << sync;

  for (const std::string& db : {sa, sb}) {
    EXPECT_EQ(SqlQuery(db, "SELECT tags FROM item WHERE id = 1"), "green;blue;black;yellow\n")
        << db;
  }
  for (const std::string& db : {pa, pb}) {
    EXPECT_EQ(PgQuery(db, "SELECT labels::text || ' ' || ids::text FROM doc WHERE id = 1"),
              "{y,z,\"new one\",w} {2,3,4}\n")
        << db;
  }
  // Logged as merges, not as conflicts one side lost.
  Outcome log = Duplex({"conflicts", "list", "--all", "--json"});
  ASSERT_EQ(log.code, 0) << log;
  std::set<std::string> merged;
  for (const auto& e : nlohmann::json::parse(log.out)) {
    EXPECT_EQ(e["policy"], "union") << e.dump();
    EXPECT_EQ(e["status"], "merged") << e.dump();
    merged.insert(e["field"].get<std::string>());
  }
  EXPECT_EQ(merged, (std::set<std::string>{"tags", "labels", "ids"}));
}

// JSON documents edited on both sides while duplex is stopped: a TEXT column on two SQLite
// files, a jsonb and a json column on two PostgreSQL databases. Edits at different paths both
// stand, on both sides; a path edited on both sides goes to the nested policy (lww: the later
// edit), logged with its path.
TEST_F(PoliciesPgTest, MergeKeepsJsonEditsAtDifferentPathsOnBothSides) {
  const std::string pa = NewDb("a"), pb = NewDb("b");
  const std::string doc =
      R"({"name": "Ann", "phone": "1", "address": {"city": "Oslo", "zip": "0150"}})";
  for (const std::string& db : {pa, pb}) {
    PgExec(db, "CREATE TABLE person(id int PRIMARY KEY, doc jsonb, raw json)");
  }
  PgExec(pa, "INSERT INTO person VALUES (1, '" + doc + "', '" + doc + "')");
  const std::string sa = dir_.File("a.db"), sb = dir_.File("b.db");
  SqlExec(sa, "CREATE TABLE person(id INTEGER PRIMARY KEY, doc TEXT)");
  SqlExec(sb, "CREATE TABLE person(id INTEGER PRIMARY KEY, doc TEXT)");
  SqlExec(sa, "INSERT INTO person VALUES (1, '" + doc + "')");
  WriteFile(ConfigPath(),
            "[engine]\nstate = \"state.db\"\n\n"
            "[endpoints.sa]\ntype = \"sqlite\"\npath = \"a.db\"\n"
            "[endpoints.sb]\ntype = \"sqlite\"\npath = \"b.db\"\n"
            "[endpoints.pa]\ntype = \"postgres\"\ndsn = \"" +
                cluster_->dsn(pa) +
                "\"\n"
                "[endpoints.pb]\ntype = \"postgres\"\ndsn = \"" +
                cluster_->dsn(pb) +
                "\"\n\n"
                "[collections.person]\nkey = [\"id\"]\n"
                "fields.doc = { policy = \"merge\" }\n"
                "endpoints.sa = { table = \"person\" }\n"
                "endpoints.sb = { table = \"person\" }\n\n"
                "[collections.pperson]\nkey = [\"id\"]\n"
                "fields.doc = { policy = \"merge\", merge_policy = \"lww\" }\n"
                "fields.raw = { policy = \"merge\" }\n"
                "endpoints.pa = { table = \"person\" }\n"
                "endpoints.pb = { table = \"person\" }\n");
  Outcome load = Duplex({"run", "--until-idle"});
  ASSERT_EQ(load.code, 0) << load;
  ASSERT_EQ(SqlQuery(sb, "SELECT json_extract(doc, '$.address.zip') FROM person"), "0150\n");
  ASSERT_EQ(PgQuery(pb, "SELECT doc->'address'->>'zip' FROM person"), "0150\n");

  // Duplex is stopped: neither side sees the other's edit. One side changes the phone, the
  // other the zip code, inside the address.
  SqlExec(sa, "UPDATE person SET doc = json_set(doc, '$.phone', '2')");
  SqlExec(sb, "UPDATE person SET doc = json_set(doc, '$.address.zip', '5003')");
  PgExec(pa,
         "UPDATE person SET doc = jsonb_set(doc, '{phone}', '\"2\"'), "
         "raw = jsonb_set(raw::jsonb, '{phone}', '\"2\"')::json");
  PgExec(pb,
         "UPDATE person SET doc = jsonb_set(doc, '{address,zip}', '\"5003\"'), "
         "raw = jsonb_set(raw::jsonb, '{address,zip}', '\"5003\"')::json");
  Outcome sync = Duplex({"run", "--until-idle"});
  ASSERT_EQ(sync.code, 0) << sync;
  const std::string both =
      R"({"name": "Ann", "phone": "2", "address": {"zip": "5003", "city": "Oslo"}})";
  // SQLite hands over a document just written by a JSON function (json_set) as a JSON value,
  // so the merge of two such edits is a value, written back as compact JSON text.
  const std::string sqlite_fields =
      "SELECT json_extract(doc, '$.name') || ' ' || json_extract(doc, '$.phone') || ' ' || "
      "json_extract(doc, '$.address.zip') || ' ' || json_extract(doc, '$.address.city') FROM "
      "person";
  for (const std::string& db : {sa, sb}) {
    EXPECT_EQ(SqlQuery(db, sqlite_fields), "Ann 2 5003 Oslo\n") << db;
  }
  EXPECT_EQ(SqlQuery(sa, "SELECT doc FROM person"), SqlQuery(sb, "SELECT doc FROM person"));
  for (const std::string& db : {pa, pb}) {
    EXPECT_EQ(PgQuery(db, "SELECT doc::text FROM person"), both + "\n") << db;
    EXPECT_EQ(PgQuery(db, "SELECT raw::text FROM person"), both + "\n") << db;
  }

  // The same path on both sides (the later edit wins under lww), and another path on one.
  SqlExec(sa, "UPDATE person SET doc = json_set(doc, '$.phone', '3')");
  PgExec(pa, "UPDATE person SET doc = jsonb_set(doc, '{phone}', '\"3\"')");
  std::this_thread::sleep_for(milliseconds(50));
  SqlExec(sb, "UPDATE person SET doc = json_set(doc, '$.phone', '4', '$.name', 'Bo')");
  PgExec(pb,
         "UPDATE person SET doc = jsonb_set(jsonb_set(doc, '{phone}', '\"4\"'), '{name}', "
         "'\"Bo\"')");
  sync = Duplex({"run", "--until-idle"});
  ASSERT_EQ(sync.code, 0) << sync;
  const std::string later =
      R"({"name": "Bo", "phone": "4", "address": {"zip": "5003", "city": "Oslo"}})";
  for (const std::string& db : {sa, sb}) {
    EXPECT_EQ(SqlQuery(db, sqlite_fields), "Bo 4 5003 Oslo\n") << db;
  }
  EXPECT_EQ(SqlQuery(sa, "SELECT doc FROM person"), SqlQuery(sb, "SELECT doc FROM person"));
  for (const std::string& db : {pa, pb}) {
    EXPECT_EQ(PgQuery(db, "SELECT doc::text FROM person"), later + "\n") << db;
  }

  // Logged: each document merged; the phone, edited on both sides, with its path and winner.
  Outcome log = Duplex({"conflicts", "list", "--all", "--json"});
  ASSERT_EQ(log.code, 0) << log;
  std::multiset<std::string> merged, decided;
  for (const auto& e : nlohmann::json::parse(log.out)) {
    EXPECT_EQ(e["policy"], "merge") << e.dump();
    const std::string where =
        e["collection"].get<std::string>() + "." + e["field"].get<std::string>();
    if (e["status"] == "merged") {
      merged.insert(where);
    } else {
      EXPECT_EQ(e["status"], "resolved:merge") << e.dump();
      EXPECT_EQ(e["winner"], where == "person.doc/phone" ? "sb" : "pb") << e.dump();
      EXPECT_EQ(e["values"][e["winner"].get<std::string>()]["value"], "4") << e.dump();
      decided.insert(where);
    }
  }
  EXPECT_EQ(merged, (std::multiset<std::string>{"person.doc", "person.doc", "pperson.doc",
                                                "pperson.doc", "pperson.raw"}));
  EXPECT_EQ(decided, (std::multiset<std::string>{"person.doc/phone", "pperson.doc/phone"}));
  // `duplex conflicts` shows the path.
  Outcome list = Duplex({"conflicts", "list", "--all"});
  ASSERT_EQ(list.code, 0) << list;
  EXPECT_NE(list.out.find("doc/phone"), std::string::npos) << list.out;
}

}  // namespace
}  // namespace duplex
