// The in-memory endpoint (issue 3): the "external system" the simulation runs duplex against,
// and the Connector contract's reference implementation. `MemoryEndpoint` holds tables of rows,
// a changelog filled by (simulated) triggers, the last applied batch id and its own skewable
// clock; it survives engine crashes. `MemoryConnector` (memory_connector.h) is the handle the
// engine uses on one.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "duplex/connector.h"

namespace duplex::memory {

// One changelog row (`_duplex_changelog`): images keyed by column name.
struct LogEntry {
  int64_t seq = 0;
  std::string table;  // empty for markers
  char op = 'I';      // I U D M R
  Row old_image;      // 'R': the key (column -> value)
  Row new_image;      // 'R': the row as it really is (null: no row)
  int64_t apply_id = 0;
  bool snapshot = false;
  double at = 0;
  std::string pk;   // the row key as JSON text (I/U/D only)
  int64_t txn = 0;  // the source transaction that wrote it (a marker or 'R': duplex's)
};

// A row write of duplex's that took effect in a committed apply call (for the P7 check).
struct AppliedWrite {
  std::string table;
  std::string key;     // row key as JSON text
  std::string source;  // RowOp::source: the endpoint whose change caused it ("" if none)
  double source_commit_ms = 0;
  int64_t txn = 0;  // RowOp::txn
};

// An application transaction as the endpoint committed it (kept whole, never pruned).
struct SourceTxn {
  double at = 0;                                       // commit time
  std::set<std::pair<std::string, std::string>> rows;  // (table, key text) it wrote
};

// A foreign key: `table.column` references the primary key of `parent` (one column).
struct ForeignKey {
  std::string table;
  std::string column;
  std::string parent;
};

class MemoryEndpoint {
 public:
  explicit MemoryEndpoint(std::string name, double clock_ms = 1.7e12);

  const std::string& name() const { return name_; }

  // False: captured updates carry no before-image, like PostgreSQL's logical decoding with the
  // default replica identity (the resolver then compares with what the endpoint held).
  bool update_before_images = true;
  // True: the endpoint behaves like a REST API such as Salesforce's (docs/DESIGN.md §3.4):
  // no transactions (each of duplex's row writes commits on its own, in order), no marker
  // (its writes show in the changelog like the application's, as later changes), no
  // compare-and-set (writes are unconditional: an insert of a present row updates it, an
  // update or delete of an absent row does nothing), no applied id, no before-images.
  bool rest_like = false;
  // What its connector declares besides (Capabilities): the most row writes one Apply takes
  // (0: no limit) and the shortest interval between polls worth making. Declared only: the
  // endpoint takes any call (the engine is what honours them).
  size_t max_apply_rows = 0;
  std::chrono::milliseconds min_poll_interval{0};
  std::chrono::milliseconds apply_hold{0};  // Capabilities::apply_hold

  // Schema: declares a table (columns with their pk positions). Rows start empty.
  void DeclareTable(const TableInfo& info);
  const TableInfo* Table(const std::string& table) const;
  // Declares a foreign key, checked immediately (like SQLite's default, not deferred) on every
  // write, the application's and duplex's: a child row must reference an existing parent, a
  // parent row cannot be deleted while children reference it (RESTRICT). A write of duplex's
  // that breaks it is Refused ("FOREIGN KEY constraint failed").
  void DeclareForeignKey(const ForeignKey& fk) { fks_.push_back(fk); }
  // The first row that breaks a foreign key ("" if none): a child whose parent is absent.
  std::string Orphans() const;

  // The clock (ms since the epoch): the commit time of every change logged here.
  double now_ms() const { return clock_ms_; }
  void Advance(double ms) { clock_ms_ += ms; }
  void Skew(double ms) { clock_ms_ += ms; }  // may be negative: the clock jumps

  // --- The application's writes (each its own transaction unless inside Begin/Commit). Rows are
  // column -> value objects. Return false (writing nothing) when the row does not exist (update,
  // delete) or already exists (insert).
  bool Insert(const std::string& table, const Row& row);
  bool Update(const std::string& table, const Row& key, const Row& changes);
  bool Delete(const std::string& table, const Row& key);
  // A multi-row transaction: the writes between Begin and Commit share one commit time and are
  // logged together (nothing else can interleave in the single-threaded simulation).
  void Begin();
  void Commit();

  // --- Writes by a naive one-way pipeline (the contrast, tests/sim/CONTRAST.md): the row as
  // given (every column), with the modification time copied from the source, no foreign-key
  // check (bulk loaders switch it off), no trigger. Returns whether the row changed.
  bool RawPut(const std::string& table, const Row& row, double mtime);
  // Modification time of a row: the endpoint's clock at the application's last write of it
  // (the `updated_at` column a timestamp-polling pipeline relies on), or what RawPut copied.
  double Mtime(const std::string& table, const std::string& key_text) const;
  // Replaces every row with `other`'s (an operator's full copy that re-seeds a setup).
  void CopyRowsFrom(const MemoryEndpoint& other) {
    rows_ = other.rows_;
    mtime_ = other.mtime_;
  }

  // --- Inspection.
  // table -> key text -> row (column -> value)
  const std::map<std::string, std::map<std::string, Row>>& rows() const { return rows_; }
  std::optional<Row> Get(const std::string& table, const Row& key) const;
  int64_t applied_id() const { return applied_id_; }
  int64_t last_seq() const { return next_seq_; }
  size_t changelog_size() const { return changelog_.size(); }
  bool installed() const { return installed_; }
  int64_t apply_commits() const { return apply_commits_; }
  int64_t rejected_writes() const { return rejected_writes_; }
  // Row writes by duplex (or RawPut) that changed nothing: echoes.
  int64_t noop_writes() const { return noop_writes_; }
  int64_t sync_writes() const { return sync_writes_; }
  // Application transactions logged while capture was installed: txn id -> what it wrote.
  const std::map<int64_t, SourceTxn>& source_txns() const { return source_txns_; }
  // The row writes of duplex's that took effect in the last Apply call (empty if it
  // committed nothing).
  const std::vector<AppliedWrite>& last_apply() const { return last_apply_; }
  // The row key of `row` as JSON text, as used by rows().
  std::string KeyOf(const std::string& table, const Row& row) const { return KeyText(table, row); }

 private:
  friend class MemoryConnector;

  // The row key of `row` (or of a key object) as JSON text, in pk column order.
  std::string KeyText(const std::string& table, const Row& row) const;
  std::vector<std::string> KeyColumns(const std::string& table) const;
  // Logs an application change if capture is installed for `table` (the trigger).
  void Log(const std::string& table, char op, const Row& old_row, const Row& new_row);
  Row Image(const std::string& table, const Row& row) const;  // captured columns only
  double CommitTime() const { return in_txn_ ? txn_time_ : clock_ms_; }
  // Whether writing `row` to `table` (nullopt: deleting `key_text` from it) keeps every
  // foreign key; the reason if not.
  std::string CheckForeignKeys(const std::string& table, const std::string& key_text,
                               const std::optional<Row>& row) const;
  int64_t CurrentTxn() { return in_txn_ ? txn_id_ : ++next_txn_; }

  std::string name_;
  double clock_ms_;
  bool in_txn_ = false;
  double txn_time_ = 0;
  int64_t txn_id_ = 0;
  int64_t next_txn_ = 0;
  std::vector<ForeignKey> fks_;
  std::map<std::string, std::map<std::string, double>> mtime_;  // table -> key text -> ms
  int64_t noop_writes_ = 0;
  int64_t sync_writes_ = 0;
  std::map<int64_t, SourceTxn> source_txns_;
  std::vector<AppliedWrite> last_apply_;

  std::map<std::string, TableInfo> schema_;
  std::map<std::string, std::map<std::string, Row>> rows_;

  // Bookkeeping (exists only while installed).
  bool installed_ = false;
  std::map<std::string, std::vector<std::string>> captured_;  // table -> captured columns
  std::vector<LogEntry> changelog_;                           // ascending seq
  int64_t next_seq_ = 0;                                      // last seq handed out (AUTOINCREMENT)
  int64_t applied_id_ = 0;
  int64_t apply_commits_ = 0;    // apply transactions committed
  int64_t rejected_writes_ = 0;  // duplex writes rejected (changed since / compare-and-set)
  // Grows with every changelog append and every install/uninstall, never with Ack: what Poll
  // reports (pruning is not news, and must not make the engine's calls depend on Ack timing).
  int64_t log_version_ = 0;
};

}  // namespace duplex::memory
