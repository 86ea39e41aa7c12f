#pragma once

#include <cassert>
#include <optional>
#include <utility>

#include "duplex/status.h"

namespace duplex {

// A value or a non-OK Status, shaped like C++23 std::expected so the switch is easy later.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}         // NOLINT(google-explicit-constructor)
  Result(Status status) : status_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    assert(!status_.ok());  // A Result holding no value must carry an error.
  }

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & {
    assert(ok());
    return *value_;
  }
  const T& value() const& {
    assert(ok());
    return *value_;
  }
  T&& value() && {
    assert(ok());
    return std::move(*value_);
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace duplex

#define DUPLEX_CONCAT_INNER(a, b) a##b
#define DUPLEX_CONCAT(a, b) DUPLEX_CONCAT_INNER(a, b)
// `DUPLEX_ASSIGN_OR_RETURN(auto x, Foo());` declares x from Foo()'s value or returns its status.
#define DUPLEX_ASSIGN_OR_RETURN(decl, expr)                                                 \
  auto DUPLEX_CONCAT(_res_, __LINE__) = (expr);                                             \
  if (!DUPLEX_CONCAT(_res_, __LINE__).ok()) return DUPLEX_CONCAT(_res_, __LINE__).status(); \
  decl = std::move(DUPLEX_CONCAT(_res_, __LINE__)).value()
