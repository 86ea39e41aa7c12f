#pragma once

#include <string>

#include "connectors/sqlite/endpoint.h"
#include "duplex/result.h"
#include "duplex/status.h"

namespace duplex::sqlite {

// Puts change capture into the endpoint's file and takes it out again (docs/DESIGN.md §3, "SQLite";
// the tables are listed in src/connectors/sqlite/README.md):
// - the bookkeeping tables `_duplex_changelog`, `_duplex_apply`, `_duplex_applied`,
//   `_duplex_captured`, `_duplex_acked` and `_duplex_keymap`;
// - three AFTER triggers per bound table (`_duplex_<table>_ins`, `_upd`, `_del`) that log the
//   bound columns as JSON images (images.h) unless duplex's own apply is active, and keep the key
//   map of a mapped table (key_map.h);
// - on a table's first install, a snapshot of its existing rows into the changelog, in the same
//   transaction as its triggers, so that no change made meanwhile is lost or doubled.
//
// Holds no state of its own: every call reads the file and the Endpoint's bindings, and each
// install or uninstall is one Txn. One thread at a time.
class Installer {
 public:
  explicit Installer(Endpoint& ep) : ep_(ep) {}
  Installer(const Installer&) = delete;
  Installer& operator=(const Installer&) = delete;

  // Whether the bookkeeping tables, the key map and every bound table's triggers exist, and the
  // triggers capture exactly the bound columns.
  Result<bool> IsInstalled();
  // Checks every bound table and column exists and that the key columns are the primary key or
  // a unique index (InvalidArgument naming the table otherwise), then in one transaction creates
  // what is missing, drops the triggers of tables no longer bound, recreates the triggers of the
  // bound ones and snapshots the tables captured for the first time.
  Status Install();
  // Drops the triggers of every bound or captured table and the bookkeeping tables, in one
  // transaction. The caller drops its prepared statements first (they name those tables).
  Status Uninstall();

 private:
  Status CheckTable(const BoundTable& t);
  Status CreateTriggers(const BoundTable& t);
  Status DropTriggers(const std::string& table);
  // What _duplex_captured.columns holds for `t`: the columns, and for a table with record
  // columns also the endpoint name and the translated columns (the triggers depend on them).
  std::string CapturedDescriptor(const BoundTable& t) const;

  Endpoint& ep_;
};

}  // namespace duplex::sqlite
