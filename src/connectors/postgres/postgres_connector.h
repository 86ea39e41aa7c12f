#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "connectors/postgres/applier.h"
#include "connectors/postgres/capture.h"
#include "connectors/postgres/endpoint.h"
#include "connectors/postgres/installer.h"
#include "connectors/postgres/key_map.h"
#include "duplex/connector.h"

namespace duplex::pg {

// One PostgreSQL database (one schema) as a duplex endpoint (docs/DESIGN.md §3, README
// "PostgreSQL").
//
// A thin coordinator over its parts, which share one PgEndpoint (options, connections, bound
// tables): the capture mode chosen by `Options::capture` (LogicalCapture: a replication slot
// streaming pgoutput, duplex's writes marked by a replication origin; TriggerCapture: a changelog
// table filled by triggers), the Installer (preflight, objects, initial load), the Applier
// (prepared statements, compare-and-set, marker, savepoints) and the KeyMap (mapped keys). It
// reopens dead connections within a call (Reconnecting).
//
// Every server object is named from `tag` (from `[engine] name` and the endpoint's name), so two
// duplex configs on one server never clash. Not thread-safe: one engine thread at a time.
class PostgresConnector final : public Connector {
 public:
  using CaptureMode = pg::CaptureMode;
  using Options = PgOptions;

  explicit PostgresConnector(Options options);
  ~PostgresConnector() override;
  PostgresConnector(const PostgresConnector&) = delete;
  PostgresConnector& operator=(const PostgresConnector&) = delete;

  const std::string& name() const override { return ep_.opt.name; }
  // Every capability, except before-images in logical mode: with the default replica identity
  // an UPDATE carries no old row.
  Capabilities capabilities() const override {
    Capabilities caps;
    caps.before_images = ep_.opt.capture != CaptureMode::kLogical;
    return caps;
  }
  Status Open() override;
  Result<TableInfo> Describe(const std::string& table) override;
  Status Bind(std::vector<CollectionBinding> bindings) override;
  Result<bool> IsInstalled() override;
  Status Install() override;
  Status Uninstall() override;
  Result<bool> Poll() override;
  Result<ChangeBatch> Capture(const Position& from, size_t max_changes) override;
  Result<int64_t> Backlog(const Position& from) override;
  Status Ack(const Position& upto) override;
  // Trigger capture: restored if the `acked` table is behind `acked` or the stamped positions
  // behind `captured`. Logical: if the slot is gone or the server's WAL ends before
  // `captured`; capture then resumes from the slot's confirmed position.
  Result<RestoreCheck> CheckRestored(const Position& captured, const Position& acked) override;
  // In key order, a query per chunk.
  Status Scan(const std::string& collection, size_t max_rows,
              const std::function<Status(std::vector<Change>&&)>& visit) override;
  // Reconcile's key-range digests as one aggregate query, where every bound column's text
  // is what duplex hashes (integers, booleans, text, varchar, uuid, date; keys not mapped):
  // range_digest.cc. Otherwise the generic scan.
  Result<std::vector<RangeDigest>> DigestRanges(const KeyRanges& within, int split_bits) override;
  Status ScanRanges(const KeyRanges& within, size_t max_rows,
                    const std::function<Status(std::vector<Change>&&)>& visit) override;
  Result<int64_t> AppliedId() override;
  Result<ApplyResult> Apply(const std::vector<ApplyBatch>& batches,
                            bool isolate_txns = false) override;
  Result<std::vector<std::string>> Preflight() override;
  Result<std::vector<std::string>> Warnings() override;
  // Logical capture: an LSN ("0/16B3748"); trigger capture: the changelog's position.
  std::string DescribePosition(const Position& p) const override;

  // Names of the server objects (for tests and `duplex check`).
  std::string SlotName() const { return ep_.SlotName(); }
  std::string OriginName() const { return ep_.OriginName(); }
  std::string PublicationName() const { return ep_.PublicationName(); }
  std::string TableName(const std::string& what) const { return ep_.TableName(what); }

  static constexpr int kSnapshotChunkRows = pg::kSnapshotChunkRows;
  static constexpr size_t kMaxBufferedChanges = pg::kMaxBufferedChanges;

 private:
  // A connection the server dropped is reopened and the call made again (a few rounds).
  template <typename F>
  auto Reconnecting(F&& call) -> decltype(call());

  // The SQL of a row's key text and its hashed values (KeyHash, RowHash) for `within`, if every
  // column of the collection renders in SQL as duplex renders it; nullopt otherwise.
  struct HashSql {
    const BoundTable* table = nullptr;
    std::string key_hash, row_hash;
  };
  Result<std::optional<HashSql>> HashSqlFor(const KeyRanges& within);

  PgEndpoint ep_;
  KeyMap keys_;
  std::unique_ptr<PgCapture> capture_;
  Applier applier_;
  Installer installer_;
};

}  // namespace duplex::pg
