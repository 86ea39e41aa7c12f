// End to end: `duplex run --until-idle` on a large backlog shows its progress (changes done,
// rate, what is left, ETA) when stderr is a terminal, and log lines when it is not.
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "support/process.h"
#include "support/sync_fixture.h"
#include "support/test_util.h"

namespace duplex {
namespace {

using testing::ConfigBuilder;
using testing::DuplexBin;
using testing::Process;
using testing::SqlExec;
using testing::SqlQuery;
using testing::SyncFixture;

constexpr int kRows = 40000;

class ProgressTest : public ::testing::Test, protected SyncFixture {
 protected:
  void SetUp() override {
    ConfigBuilder config;
    config.Sqlite("crm", "crm.db").Sqlite("billing", "billing.db");
    config.Collection("customer").On("crm", "customers").On("billing", "clients");
    WriteConfig(config);
    SqlExec(File("crm.db"),
            "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT);"
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < " +
                std::to_string(kRows) + ") INSERT INTO customers SELECT i, 'n' || i FROM n;");
    SqlExec(File("billing.db"), "CREATE TABLE clients(id INTEGER PRIMARY KEY, name TEXT);");
  }
};

TEST_F(ProgressTest, TerminalShowsChangesRateLeftAndEta) {
  int master = -1;
  pid_t pid = forkpty(&master, nullptr, nullptr, nullptr);
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::string bin = DuplexBin(), config = ConfigPath();
    execl(bin.c_str(), bin.c_str(), "run", "--until-idle", "--config", config.c_str(),
          "--log-level", "warn", static_cast<char*>(nullptr));
    _exit(127);
  }
  std::string out;
  char buf[4096];
  while (true) {
    pollfd p{master, POLLIN, 0};
    if (poll(&p, 1, 120000) <= 0) break;
    ssize_t n = read(master, buf, sizeof buf);
    if (n <= 0) break;  // EIO once the child has exited
    out.append(buf, static_cast<size_t>(n));
  }
  close(master);
  int st = 0;
  ASSERT_EQ(waitpid(pid, &st, 0), pid);
  ASSERT_TRUE(WIFEXITED(st)) << out;
  EXPECT_EQ(WEXITSTATUS(st), 0) << out;
  EXPECT_EQ(SqlQuery(File("billing.db"), "SELECT count(*) FROM clients"),
            std::to_string(kRows) + "\n");
  // At least one redrawn line with every part, then the final count.
  EXPECT_NE(out.find("\rsynced "), std::string::npos) << out;
  EXPECT_NE(out.find(" changes ("), std::string::npos) << out;
  EXPECT_NE(out.find("/s), "), std::string::npos) << out;
  EXPECT_NE(out.find(" left, ETA "), std::string::npos) << out;
  EXPECT_NE(out.find("synced " + std::to_string(kRows) + " changes"), std::string::npos) << out;
}

// Not a terminal (a pipe, a file, journald): log lines say what happens during the initial
// load, every few seconds while it lasts, and the total; nothing redrawn in place.
TEST_F(ProgressTest, LogLinesWhenNotATerminal) {
  const auto started = std::chrono::steady_clock::now();
  Process run({"run", "--until-idle", "--config", ConfigPath()}, File("run"));
  ASSERT_EQ(run.Wait(std::chrono::milliseconds(120000)), 0) << run.Err();
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  EXPECT_EQ(SqlQuery(File("billing.db"), "SELECT count(*) FROM clients"),
            std::to_string(kRows) + "\n");
  const std::string err = run.Err();
  EXPECT_EQ(err.find('\r'), std::string::npos) << err;
  EXPECT_EQ(run.Out(), "");
  for (const std::string& e : {std::string("endpoint=crm installing change capture"),
                               std::string("endpoint=billing installing change capture"),
                               std::string("endpoint=crm change capture installed in "),
                               "endpoint=crm collection=customer initial load: table customers: " +
                                   std::to_string(kRows) + " rows read so far",
                               "synced " + std::to_string(kRows) + " changes in "}) {
    EXPECT_NE(err.find(e), std::string::npos) << "expected '" << e << "'\n" << err;
  }
  // A load longer than the interval (3 s) says how far it got on the way.
  if (secs > 6) {
    EXPECT_NE(err.find(" changes so far ("), std::string::npos) << err;
  }
  // Every line is a log line (time, level, message), none a bare progress line.
  const std::regex log_line(R"(^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \w+ .*)");
  std::istringstream lines(err);
  for (std::string line; std::getline(lines, line);) {
    EXPECT_TRUE(std::regex_match(line, log_line)) << line;
  }
}

// --log-level warn silences the progress log lines too.
TEST_F(ProgressTest, QuietWhenNotATerminalAtLogLevelWarn) {
  Process run({"run", "--until-idle", "--config", ConfigPath(), "--log-level", "warn"},
              File("run"));
  ASSERT_EQ(run.Wait(std::chrono::milliseconds(120000)), 0) << run.Err();
  EXPECT_EQ(SqlQuery(File("billing.db"), "SELECT count(*) FROM clients"),
            std::to_string(kRows) + "\n");
  // Log lines (a lag alert, say) may come; no progress lines.
  EXPECT_EQ(run.Err().find('\r'), std::string::npos) << run.Err();
  EXPECT_EQ(run.Err().find("synced"), std::string::npos) << run.Err();
  EXPECT_EQ(run.Out(), "");
}

}  // namespace
}  // namespace duplex
