// Per-connector harnesses for the connector conformance suite (conformance_test.cc). A harness
// makes an empty endpoint holding the suite's two tables, makes connector objects on it (a new
// object is a restarted process), writes as an application would, and reads rows back without
// going through the connector. Adding a connector to the suite = adding one harness here and one
// line in kHarnesses (conformance_test.cc).
//
// The tables, in the endpoint's own types:
//   items(id integer PRIMARY KEY, name text, qty integer, price real, data binary)
//   parts(id integer PRIMARY KEY, item_id integer REFERENCES items(id))
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "duplex/change.h"
#include "duplex/connector.h"
#include "support/pg_cluster.h"

namespace duplex::conformance {

// One row write by the application: insert `row`, update the row with key `key` to `row`'s
// values, or delete the row with key `key`. Rows and keys are column -> Value.
struct AppWrite {
  Op op = Op::kInsert;
  std::string table;
  Row key;
  Row row;
};

AppWrite AppInsert(const std::string& table, Row row);
AppWrite AppUpdate(const std::string& table, Row key, Row values);
AppWrite AppDelete(const std::string& table, Row key);

class Harness {
 public:
  virtual ~Harness() = default;

  // Makes the endpoint: empty tables items and parts. Failures are test failures.
  virtual void Create() = 0;
  // A new connector object on the endpoint, not opened (as a restarted process makes it).
  virtual std::unique_ptr<Connector> Connect() = 0;
  // Commits `writes` as one application transaction (test failure if the endpoint refuses).
  virtual void Write(const std::vector<AppWrite>& writes) = 0;
  // The rows of `table` in id order, column -> Value (blobs as {"$blob": HEX}).
  virtual std::vector<Row> Rows(const std::string& table) = 0;
  // Makes a table `kinds` (id integer PRIMARY KEY) with a column of each ColumnKind the
  // endpoint has a type for, in the endpoint's own types (more than one per kind where the
  // system spells one kind several ways: an enum and a domain over text are text); returns
  // column -> the kind Describe must report.
  virtual std::vector<std::pair<std::string, ColumnKind>> CreateKinds() = 0;

  // Takes a copy of the endpoint as a backup would (every connector object closed), to be put
  // back by Restore. False if this endpoint cannot do it here, with the reason in *why.
  virtual bool Backup(std::string* why) = 0;
  // Puts the copy Backup took back in place of the endpoint (every connector object closed).
  virtual void Restore() = 0;

  // The connector keeps Connector's default Scan / CheckRestored, which the README accepts for
  // this kind of endpoint: the cases that need them are skipped, with this as the reason.
  virtual std::string DefaultScan() const { return ""; }
  virtual std::string DefaultCheckRestored() const { return ""; }

  // How the endpoint names the suite's table (`items`, `parts`, `kinds`) and column: the same
  // unless the system has naming rules of its own (a Salesforce object, its Id).
  virtual std::string Table(const std::string& table) const { return table; }
  virtual std::string Column(const std::string& column) const { return column; }
  // The key value of the suite's record `n` as it travels (Change::key, RowOp::key, the rows
  // Rows returns): n itself, or a string where the endpoint keys records by text. Ordered as n.
  virtual Value Id(int64_t n) const { return n; }
  // The endpoint generates its own keys: the suite binds with key_mode = "mapped" (the key a
  // record id, references translated; CollectionBinding::mapped_key).
  virtual bool MappedKeys() const { return false; }
  // Whether the endpoint can hold `v` exactly in the suite's columns (TypesRoundTrip leaves the
  // others out, giving the reason here).
  virtual std::string CannotHold(const Value& v) const {
    (void)v;
    return "";
  }
  // Makes the endpoint's next write reply get lost after it committed (a lost reply, P6); false
  // if the harness cannot (the case then checks a plain replay only).
  virtual bool LoseNextReply() { return false; }

  // The connector creates nothing on the endpoint, which the README accepts: IsInstalled is
  // always true and Install/Uninstall do nothing. The reason, or "".
  virtual std::string NothingToInstall() const { return ""; }
  // The endpoint keeps no change log of its own for duplex: capturing from the start is the
  // initial load of every live row, acked or not, and Ack releases nothing. The reason, or "".
  virtual std::string NoLogToRelease() const { return ""; }

  // A known contract violation of this connector for `check` (a name the suite's cases use),
  // as a FIXME naming it; "" if none. The case still runs, and skips with this reason only if
  // the violation shows: once the connector is fixed, the case passes and the entry can go.
  virtual std::string Fixme(const std::string& check) const {
    (void)check;
    return "";
  }
};

// How the suite makes a harness: name for the test instance, and a factory (`cluster` is the
// suite's shared PostgreSQL cluster, started once).
struct HarnessKind {
  std::string name;
  std::unique_ptr<Harness> (*make)(testing::PgCluster* cluster);
};

std::unique_ptr<Harness> MakeMemoryHarness(testing::PgCluster* cluster);
std::unique_ptr<Harness> MakeSqliteHarness(testing::PgCluster* cluster);
std::unique_ptr<Harness> MakePgLogicalHarness(testing::PgCluster* cluster);
std::unique_ptr<Harness> MakePgTriggerHarness(testing::PgCluster* cluster);
// Salesforce: one emulator for the binary (started at the first case), fresh objects per case.
std::unique_ptr<Harness> MakeSalesforceHarness(testing::PgCluster* cluster);

}  // namespace duplex::conformance
