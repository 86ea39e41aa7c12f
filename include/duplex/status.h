#pragma once

#include <string>
#include <string_view>
#include <utility>

namespace duplex {

// Outcome of an operation (leveldb's Status, plus [[nodiscard]]). Messages name the thing at
// fault: "endpoint 'crm', table 'orders': column 'total' does not exist".
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

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  bool IsNotFound() const { return code_ == Code::kNotFound; }
  bool IsInvalidArgument() const { return code_ == Code::kInvalidArgument; }
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
