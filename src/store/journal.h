#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "duplex/change.h"
#include "duplex/result.h"

namespace duplex {

// One journal entry: a batch captured from one endpoint.
struct JournalEntry {
  int64_t id = 0;
  std::string endpoint;
  ChangeBatch batch;
};

// The journal (DESIGN §2): the durable log of captured change batches not yet resolved, in
// capture order across endpoints. Capture appends; the resolver reads the oldest entries and
// deletes each once its resolution has committed.
//
// The embedded default is SqliteJournal (src/store/sqlite_journal.h), a table of the state
// file: its calls join the state store's open transaction, so appending an entry and moving
// the capture position commit together, and so do deleting it and writing what it resolved to
// (DESIGN §6, each arrow one transaction). A journal that lives elsewhere (NATS JetStream,
// ../shared/DESIGN.md §7; not built) cannot join that transaction: there an entry is durable
// when Append returns, Delete of a deleted entry is not an error, and the resolver must
// recognise an entry it already resolved (by the endpoint's resolved position).
//
// Used by one thread at a time.
class Journal {
 public:
  virtual ~Journal() = default;

  // Appends `batch` (at least one change) captured from `endpoint`. Returns the entry's id,
  // larger than the id of every entry appended before it.
  virtual Result<int64_t> Append(const std::string& endpoint, const ChangeBatch& batch) = 0;
  // Ids and endpoints of the oldest entries, oldest first, at most `max_entries`.
  virtual Result<std::vector<std::pair<int64_t, std::string>>> Heads(size_t max_entries) = 0;
  // The batch of entry `id`. NotFound if there is no such entry; Corruption if it cannot be
  // decoded.
  virtual Result<ChangeBatch> Read(int64_t id) = 0;
  // Removes entry `id` (resolved). Removing an entry that is not there changes nothing.
  virtual Status Delete(int64_t id) = 0;
  // The number of changes in all entries.
  virtual Result<int64_t> Backlog() = 0;
};

}  // namespace duplex
