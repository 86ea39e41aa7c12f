#include "sim/naive_sync.h"

#include <algorithm>
#include <utility>

namespace duplex::sim {

bool NaiveSync::Step(std::vector<std::shared_ptr<MemoryEndpoint>>& endpoints, std::mt19937_64& rng,
                     const std::function<bool(const std::string&)>& down,
                     const std::function<void(MemoryEndpoint&)>& observe) {
  bool wrote = false;
  for (auto& src : endpoints) {
    for (auto& dst : endpoints) {
      if (src == dst || down(src->name()) || down(dst->name())) continue;
      std::vector<std::string> order = tables_;
      std::shuffle(order.begin(), order.end(), rng);
      for (const std::string& table : order) {
        double& cursor = cursor_[{src->name(), dst->name(), table}];
        // SELECT * FROM table WHERE updated_at > :cursor ORDER BY updated_at LIMIT :batch
        std::vector<std::pair<double, std::string>> due;
        for (const auto& [key, row] : src->rows().at(table)) {
          double m = src->Mtime(table, key);
          if (m > cursor) due.emplace_back(m, key);
        }
        std::sort(due.begin(), due.end());
        if (due.size() > batch_rows_) due.resize(batch_rows_);
        for (const auto& [m, key] : due) {
          const Row& row = src->rows().at(table).at(key);
          const auto& dst_rows = dst->rows().at(table);
          // Last write wins by row timestamp; the incoming row on a tie.
          if (!dst_rows.count(key) || dst->Mtime(table, key) <= m) {
            wrote |= dst->RawPut(table, row, m);
          }
          cursor = std::max(cursor, m);
        }
        if (!due.empty() && observe) observe(*dst);
      }
    }
  }
  return wrote;
}

}  // namespace duplex::sim
