#pragma once

#include <string>
#include <string_view>
#include <utility>

namespace duplex {

// Outcome of an operation (leveldb's Status, plus [[nodiscard]]). Messages name the thing at
// fault: "endpoint 'crm', table 'orders': column 'total' does not exist".
//
// What each code makes the engine do (docs/DESIGN.md §6 "Errors"):
//
// | code            | from                       | the engine                                    |
// |-----------------|----------------------------|-----------------------------------------------|
// | Unavailable     | any endpoint call          | retries that endpoint with backoff (20 ms     |
// |                 | (unreachable, busy, locked) | doubling to 2 s); the others go on            |
// | Refused         | Connector::Apply           | parks the refused source transaction as a     |
// |                 | (constraint, type, check)  | dead letter (after a few tries); the rest of  |
// |                 |                            | the batch flows                               |
// | Conflict        | state store, operator API  | compare-and-set lost / not open any more:     |
// |                 |                            | back to the resolver; HTTP 409, exit 2        |
// | InvalidArgument | config, CLI, Open, Install | bad config or usage: `duplex` exits 2         |
// | NotFound        | operator API, CLI          | no such id or file: HTTP 404, exit 2          |
// | Corruption,     | Capture, Poll, Scan        | stops the endpoint: logged as an error,       |
// | IOError, any    | (an undecodable change, a  | shown as stopped in `duplex status`, /readyz  |
// | other but       | file that is no database)  | and the dashboard, an alert fires; capture    |
// | Unavailable     |                            | and apply of that endpoint wait 5 minutes (or |
// |                 |                            | the next `duplex run`); the others go on      |
// | any but         | Connector::Apply           | retried with backoff like Unavailable: the    |
// | Refused/Unavail.|                            | writes wait in the outbox, nothing is lost    |
// | any             | Install at start           | Unavailable: retried later; other: exit 1/2   |
//
// A connector returns Refused only for what the target says about the rows themselves (SQLite
// SQLITE_CONSTRAINT/MISMATCH, PostgreSQL SQLSTATE classes 22 and 23, a validation rule), never
// for its own bugs or configuration (InvalidArgument), nor for trouble reaching the target
// (Unavailable).
class [[nodiscard]] Status {
 public:
  enum class Code {
    kOk = 0,
    kNotFound,
    kInvalidArgument,  // bad config, bad usage: exit code 2
    kCorruption,
    kIOError,
    kConflict,     // compare-and-set lost: back to the resolver
    kUnavailable,  // endpoint unreachable, database locked: retriable
    kRefused,      // the target refuses this row or transaction: park it as a dead letter
  };

  Status() = default;
  static Status Ok() { return Status(); }
  static Status NotFound(std::string msg) { return Status(Code::kNotFound, std::move(msg)); }
  static Status InvalidArgument(std::string msg) {
    return Status(Code::kInvalidArgument, std::move(msg));
  }
  static Status Corruption(std::string msg) { return Status(Code::kCorruption, std::move(msg)); }
  static Status IOError(std::string msg) { return Status(Code::kIOError, std::move(msg)); }
  static Status Conflict(std::string msg) { return Status(Code::kConflict, std::move(msg)); }
  static Status Unavailable(std::string msg) { return Status(Code::kUnavailable, std::move(msg)); }
  // The target refuses the row or transaction (constraint, type, validation): parked as a dead
  // letter, the rest flows.
  static Status Refused(std::string msg) { return Status(Code::kRefused, std::move(msg)); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  bool IsNotFound() const { return code_ == Code::kNotFound; }
  bool IsInvalidArgument() const { return code_ == Code::kInvalidArgument; }
  bool IsRefused() const { return code_ == Code::kRefused; }
  // Only an unreachable endpoint or a busy database is worth retrying with backoff.
  bool IsRetriable() const { return code_ == Code::kUnavailable; }

  // Returns a status with the same code and `prefix + ": " + message`.
  Status WithContext(std::string_view prefix) const {
    if (ok()) return *this;
    return Status(code_, std::string(prefix) + ": " + message_);
  }
  std::string ToString() const;

 private:
  Status(Code code, std::string msg) : code_(code), message_(std::move(msg)) {}

  Code code_ = Code::kOk;
  std::string message_;
};

inline std::string Status::ToString() const {
  switch (code_) {
    case Code::kOk:
      return "OK";
    case Code::kNotFound:
      return "not found: " + message_;
    case Code::kInvalidArgument:
      return "invalid: " + message_;
    case Code::kCorruption:
      return "corruption: " + message_;
    case Code::kIOError:
      return "I/O error: " + message_;
    case Code::kConflict:
      return "conflict: " + message_;
    case Code::kUnavailable:
      return "unavailable: " + message_;
    case Code::kRefused:
      return "refused: " + message_;
  }
  return message_;
}

}  // namespace duplex

// Returns early from the enclosing function when `expr` yields a non-OK Status.
#define DUPLEX_RETURN_IF_ERROR(expr) \
  do {                               \
    ::duplex::Status _st = (expr);   \
    if (!_st.ok()) return _st;       \
  } while (0)
