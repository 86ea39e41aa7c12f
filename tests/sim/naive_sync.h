// The contrast of issue 3: "two one-way pipelines", the setup duplex replaces. Every ordered
// pair of endpoints (src -> dst) has its own pipeline per table that polls src for rows whose
// modification time (`updated_at`, MemoryEndpoint::Mtime) is above the highest one it has
// copied so far, and upserts them into dst unless dst's row is newer (last write wins by row
// timestamp; on a tie the incoming row is written). No shared state, no change log: deletes
// are invisible to polling, the tables are copied independently (no foreign-key order), and a
// copied row comes back through the opposite pipeline (an echo write).
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "connectors/memory/memory_endpoint.h"

namespace duplex::sim {

using memory::MemoryEndpoint;

class NaiveSync {
 public:
  NaiveSync(std::vector<std::string> tables, size_t batch_rows)
      : tables_(std::move(tables)), batch_rows_(batch_rows) {}

  // One polling round of every pipeline, the tables of each in an order drawn from `rng`.
  // Pipelines touching an endpoint for which `down` is true skip this round. `observe` is
  // called on dst after each table's rows are written. Returns whether anything was written.
  bool Step(std::vector<std::shared_ptr<MemoryEndpoint>>& endpoints, std::mt19937_64& rng,
            const std::function<bool(const std::string&)>& down,
            const std::function<void(MemoryEndpoint&)>& observe);

 private:
  std::vector<std::string> tables_;
  size_t batch_rows_;
  // (src, dst, table) -> highest modification time copied (the pipeline's durable cursor)
  std::map<std::tuple<std::string, std::string, std::string>, double> cursor_;
};

}  // namespace duplex::sim
