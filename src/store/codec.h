#pragma once

#include <string>
#include <string_view>

#include "duplex/change.h"
#include "duplex/result.h"

namespace duplex {

// The MessagePack payloads of the state store (DESIGN §6): journal entries hold change
// batches, outbox entries and dead letters hold apply batches. Record states have their own
// encoding (RecordState::Encode, src/core/record_state.h). The format is part of the state
// file (schema version 6): a change here needs a schema version and an upgrade step
// (src/store/schema.cc).

// Journal payload: {"e": end, "c": [change...]}, each change {"o": op, "p": position} plus
// {"a": apply id} for markers, or {"c", "k", "b", "n", "t"[, "s"][, "x": txn]} for row changes.
std::string EncodeChangeBatch(const ChangeBatch& batch);
// Corruption if `bytes` is not a journal payload.
Result<ChangeBatch> DecodeChangeBatch(std::string_view bytes);

// Outbox payload: {"i": id, "ops": [{"o", "s", "c", "k", "v", "x"[, "f", "t"][, "n": txn]}...]}.
std::string EncodeApplyBatch(const ApplyBatch& batch);
// Corruption if `bytes` is not an outbox payload.
Result<ApplyBatch> DecodeApplyBatch(std::string_view bytes);

}  // namespace duplex
