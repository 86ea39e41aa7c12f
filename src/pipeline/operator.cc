#include "pipeline/operator.h"

#include <fmt/format.h>

#include "util/json_value.h"

namespace duplex {

Result<ConflictRow> ResolveConflict(StateStore& store, int64_t id, const Resolution& r,
                                    double now_ms) {
  DUPLEX_ASSIGN_OR_RETURN(ConflictRow c, store.GetConflict(id));
  if (c.status != "open") {
    return Status::Conflict(fmt::format("conflict {} is not open (status {})", id, c.status));
  }
  Value value;
  std::string how;
  if (!r.has_value) {
    if (!c.values.contains(r.take) || c.values[r.take].value("deleted", false)) {
      std::string known;
      for (const auto& [ep, side] : c.values.items()) known += (known.empty() ? "" : ", ") + ep;
      return Status::InvalidArgument(fmt::format(
          "conflict {} has no value from endpoint '{}'; its sides are: {}", id, r.take, known));
    }
    value = c.values[r.take]["value"];
    how = "resolved:take:" + r.take;
  } else {
    value = r.value;
    how = "resolved:value";
  }
  Status st = store.ResolveConflict(id, how, value, now_ms);
  // Someone else resolved it between the two statements.
  if (st.IsInvalidArgument()) return Status::Conflict(st.message());
  DUPLEX_RETURN_IF_ERROR(st);
  return store.GetConflict(id);
}

Result<DeadLetterRow> RetryDeadLetter(StateStore& store, int64_t id) {
  DUPLEX_RETURN_IF_ERROR(store.RequestRetry(id));
  return store.GetDeadLetter(id);
}

Result<int64_t> RetryAllDeadLetters(StateStore& store) { return store.RequestRetryAll(); }

Result<DeadLetterRow> DropDeadLetter(StateStore& store, int64_t id) {
  // One transaction: what is returned is what was deleted, even next to a running engine.
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Txn txn, store.Begin());
  DUPLEX_ASSIGN_OR_RETURN(DeadLetterRow d, store.GetDeadLetter(id));
  DUPLEX_RETURN_IF_ERROR(store.DeleteDeadLetter(id));
  DUPLEX_RETURN_IF_ERROR(txn.Commit());
  return d;
}

bool ParseId(const std::string& text, int64_t* id) {
  if (text.empty() || text.size() > 18) return false;
  int64_t n = 0;
  for (char ch : text) {
    if (ch < '0' || ch > '9') return false;
    n = n * 10 + (ch - '0');
  }
  *id = n;
  return n > 0;
}

}  // namespace duplex
