#pragma once

#include <cstdint>
#include <string>

#include "duplex/result.h"
#include "store/state_store.h"

namespace duplex {

// What an operator decides for an open manual conflict: take one endpoint's value, or give one.
struct Resolution {
  std::string take;  // an endpoint name; empty when `value` is given
  Value value;       // the value to take when `take` is empty
  bool has_value = false;
};

// The operator's actions on the conflict queue and the dead letters: the one implementation
// behind `duplex conflicts ...`, `duplex dead-letters ...` and the admin server's /api/v1/.
// They only write requests into the state store (one short transaction, safe next to a running
// engine, which picks them up within a fraction of a second); the engine does the rest.
//
// Errors: NotFound for an unknown id; Conflict when the conflict is no longer open;
// InvalidArgument for a request that cannot be right (an endpoint that is not a side of the
// conflict).

// Resolves conflict `id`; returns it as it is afterwards.
Result<ConflictRow> ResolveConflict(StateStore& store, int64_t id, const Resolution& r,
                                    double now_ms);

// Asks the engine to re-plan the records of dead letter `id` from their current state and
// apply them again; returns the dead letter with its retry request set.
Result<DeadLetterRow> RetryDeadLetter(StateStore& store, int64_t id);

// The same request for every dead letter; returns how many were asked for (0 if none).
Result<int64_t> RetryAllDeadLetters(StateStore& store);

// Gives up on dead letter `id`: deletes it and returns it as it was. Its writes are never
// applied; the target's rows stay as they are (possibly diverged from the other endpoints)
// until those records change again.
Result<DeadLetterRow> DropDeadLetter(StateStore& store, int64_t id);

// Parses a positive decimal id ("12"); false for anything else.
bool ParseId(const std::string& text, int64_t* id);

}  // namespace duplex
