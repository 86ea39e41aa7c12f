#include "support/test_util.h"

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include "util/sqlite.h"

namespace duplex::testing {

TempDir::TempDir() {
  std::random_device rd;
  std::filesystem::path base = std::filesystem::temp_directory_path();
  for (int i = 0; i < 100; ++i) {
    std::filesystem::path p = base / ("duplex-test-" + std::to_string(rd()));
    if (std::filesystem::create_directory(p)) {
      path_ = p.string();
      return;
    }
  }
  ADD_FAILURE() << "cannot create a temp dir";
}

TempDir::~TempDir() {
  if (path_.empty() || std::getenv("DUPLEX_KEEP_TMP")) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
}

int RunCommand(const std::string& cmd, std::string* output) {
  std::string full = cmd + " 2>&1";
  FILE* p = popen(full.c_str(), "r");
  if (!p) return -1;
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int rc = pclose(p);
  if (output) *output = out;
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

void SqlExec(const std::string& path, const std::string& sql) {
  auto db = sqlite::Db::Open(path, /*create=*/true);
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  Status st = db->Exec(sql);
  ASSERT_TRUE(st.ok()) << st.ToString();
}

std::string SqlQuery(const std::string& path, const std::string& sql) {
  auto db = sqlite::Db::Open(path, /*create=*/false);
  if (!db.ok()) return "ERROR: " + db.status().ToString();
  auto stmt = db->Prepare(sql);
  if (!stmt.ok()) return "ERROR: " + stmt.status().ToString();
  std::string out;
  while (true) {
    auto row = stmt->Step();
    if (!row.ok()) return "ERROR: " + row.status().ToString();
    if (!*row) break;
    int n = sqlite3_column_count(stmt->get());
    for (int i = 0; i < n; ++i) {
      if (i) out += '|';
      out += stmt->IsNull(i) ? "NULL" : stmt->Text(i);
    }
    out += '\n';
  }
  return out;
}

}  // namespace duplex::testing
