#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "connectors/postgres/endpoint.h"

namespace duplex::pg {

// How one capture mode does the parts of the connector that depend on it (README "Positions",
// "Echo, marker, exactly once", "Causal compare-and-set"; docs/DESIGN.md §3 "PostgreSQL").
// Two implementations: LogicalCapture (replication slot, pgoutput, replication origin) and
// TriggerCapture (changelog table filled by triggers). PostgresConnector picks one by
// PgOptions::capture; the installer and the applier call it where the modes differ. One engine
// thread at a time.
class PgCapture {
 public:
  virtual ~PgCapture() = default;

  // --- Install (Installer) -------------------------------------------------------------------
  // Appends what the server or the role lacks for this mode (`super`: the role is a superuser;
  // `repl`: it has REPLICATION).
  virtual Status Preflight(bool super, bool repl, const std::string& user,
                           const std::string& dbname, std::vector<std::string>* problems) = 0;
  // Whether a table with REPLICA IDENTITY NOTHING is a problem (publishing it breaks the
  // application's updates).
  virtual bool NeedsReplicaIdentity() const = 0;
  // What owning a bound table is needed for, in the preflight message.
  virtual const char* OwnershipNeededFor() const = 0;
  // Whether the mode's server objects exist (before the tables are checked).
  virtual Result<bool> ObjectsInstalled() = 0;
  // The changelog whose `txn` column tells a current install ("" if none).
  virtual std::string LogTable() const = 0;
  // Whether every bound table is captured (after the registry was checked).
  virtual Result<bool> TablesInstalled() = 0;
  // Creates or refreshes the mode's server objects.
  virtual Status InstallObjects() = 0;
  // Captures `t` and registers it in the `tables` registry; with `snapshot`, also records every
  // existing row as a snapshot change (the initial load).
  virtual Status InstallTable(const BoundTable& t, bool snapshot) = 0;
  // Stops capturing a table no longer bound.
  virtual Status ForgetTable(const std::string& table) = 0;
  // Forgets what the connector held about the server (Uninstall).
  virtual void Reset() = 0;
  virtual Result<std::vector<std::string>> Warnings() = 0;

  // --- Capture (Connector's calls) -----------------------------------------------------------
  virtual Result<bool> Poll() = 0;
  virtual Result<ChangeBatch> Capture(const Position& from, size_t max_changes) = 0;
  virtual Result<int64_t> Backlog(const Position& from) = 0;
  virtual Status Ack(const Position& upto) = 0;
  // The mode's part of CheckRestored, once duplex's tables were found on the server.
  virtual Result<RestoreCheck> CheckRestored(const Position& captured, const Position& acked) = 0;
  // After db is connected.
  virtual Result<int64_t> AppliedId() = 0;
  // Whether a connection of the capture's own is dead (Reconnecting retries then).
  virtual bool Dead() const = 0;

  // --- Apply (Applier) -----------------------------------------------------------------------
  // Prepares a newly opened apply session (logical: the replication origin). Closes it on error.
  virtual Status SetUpApplySession(Conn& apply) = 0;
  // Inside the apply transaction, first: marks it as duplex's (echo) for the batches up to `top`.
  virtual Status BeginApply(Conn& apply, int64_t top) = 0;
  // Compare-and-set on `RowOp::seen` in each write statement (trigger) or against the stream
  // (logical).
  virtual bool SeenInStatement() const = 0;
  // The statement's condition that no change of the row with key `key_sql` (the key's text as
  // the log stores it) is unstamped or later than `seen_ph`. Only if SeenInStatement().
  virtual std::string UnseenSql(const BoundTable& t, const std::string& key_sql,
                                const std::string& seen_ph) const = 0;
  // Logical: makes the stream reach everything committed before the apply's row locks (on
  // `apply`), so that ChangedAfter() knows every change that could conflict.
  virtual Status CatchUp(Conn& apply) = 0;
  // Whether the stream showed an application change to the row with native key `key_text` of
  // `table` after position `seen` (always false if SeenInStatement()).
  virtual bool ChangedAfter(const std::string& table, const std::string& key_text,
                            const Position& seen) const = 0;
  // Records a rejected write of batch `batch_id` (`image`: the row as it is now, null if none),
  // inside the apply transaction.
  virtual Status Reject(Conn& apply, const BoundTable& t, const RowOp& op, const Value& image,
                        int64_t batch_id) = 0;
  // Last, inside the apply transaction: the marker and the applied id `top` (`writes`: some
  // batch had row writes).
  virtual Status Mark(Conn& apply, int64_t top, bool writes) = 0;
};

}  // namespace duplex::pg
