#pragma once

#include <gtest/gtest.h>

#include <string>

#include "duplex/result.h"
#include "duplex/status.h"

// Fails the test (and returns) when `expr` is not OK, printing its status.
#define ASSERT_OK(expr)                                      \
  do {                                                       \
    ::duplex::Status _s = ::duplex::testing::ToStatus(expr); \
    ASSERT_TRUE(_s.ok()) << _s.ToString();                   \
  } while (0)
#define EXPECT_OK(expr)                                      \
  do {                                                       \
    ::duplex::Status _s = ::duplex::testing::ToStatus(expr); \
    EXPECT_TRUE(_s.ok()) << _s.ToString();                   \
  } while (0)

namespace duplex::testing {

inline Status ToStatus(const Status& s) { return s; }
template <typename T>
Status ToStatus(const Result<T>& r) {
  return r.status();
}

// A fresh empty directory under the system temp dir, removed when the object dies (unless
// DUPLEX_KEEP_TMP is set, to look at a failing test's files).
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Writes `text` to `path`, replacing it.
void WriteFile(const std::string& path, const std::string& text);

// Runs a shell command; returns its exit code, and its stdout+stderr in *output if given.
int RunCommand(const std::string& cmd, std::string* output = nullptr);

// Runs `sql` on the SQLite file at `path` through a separate connection (like an application
// would), failing the test on error.
void SqlExec(const std::string& path, const std::string& sql);
// The rows of `sql` as text lines, columns separated by '|' (NULL as "NULL").
std::string SqlQuery(const std::string& path, const std::string& sql);

}  // namespace duplex::testing
