// The engine honours what a sink declares (Capabilities, include/duplex/connector.h): applies in
// calls of at most max_apply_rows row writes, cut where the sink allows (ApplyCalls), and polls
// no more often than min_poll_interval or the request quota allow (PollInterval). End to end on
// memory endpoints (src/connectors/memory/) under a clock the test advances (no real time).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "connectors/memory/memory_connector.h"
#include "connectors/wrapper.h"
#include "pipeline/apply.h"
#include "pipeline/capture.h"
#include "pipeline/engine.h"
#include "support/test_util.h"

namespace duplex {
namespace {

using std::chrono::milliseconds;

RowOp W(int64_t id, TxnId txn) {
  RowOp w;
  w.op = WriteOp::kInsert;
  w.collection = "t";
  w.key = Row{{"id", id}};
  w.values = Row{{"id", id}};
  w.txn = txn;
  return w;
}

// A batch with one op per entry of `txns` (ids from `first`).
ApplyBatch Batch(ApplyId id, const std::vector<TxnId>& txns, int64_t first = 1) {
  ApplyBatch b{id, {}};
  for (TxnId t : txns) b.ops.push_back(W(first++, t));
  return b;
}

// Each call as "batch id:its ops' txns" per batch, calls separated by " | ".
std::string Shape(const std::vector<std::vector<ApplyBatch>>& calls) {
  std::string out;
  for (const auto& call : calls) {
    if (!out.empty()) out += " | ";
    std::string c;
    for (const ApplyBatch& b : call) {
      if (!c.empty()) c += " ";
      c += std::to_string(b.id) + ":";
      for (const RowOp& op : b.ops) c += std::to_string(op.txn);
    }
    out += c;
  }
  return out;
}

Capabilities Sink(size_t max_apply_rows, bool atomic_applied_id) {
  Capabilities caps;
  caps.max_apply_rows = max_apply_rows;
  caps.atomic_applied_id = atomic_applied_id;
  caps.transactional_apply = atomic_applied_id;
  return caps;
}

TEST(ApplyCallsTest, NoLimitIsOneCall) {
  EXPECT_EQ(Shape(ApplyCalls(Sink(0, true), {Batch(1, {1, 1, 2}), Batch(2, {3, 3, 3, 3})})),
            "1:112 2:3333");
  EXPECT_EQ(Shape(ApplyCalls(Sink(7, true), {Batch(1, {1, 1, 2}), Batch(2, {3, 3, 3, 3})})),
            "1:112 2:3333");
}

// A sink that skips batches by id takes each batch whole in one call: whole batches while they
// fit, one over the limit alone.
TEST(ApplyCallsTest, ASinkWithAnAppliedIdGetsWholeBatches) {
  EXPECT_EQ(Shape(ApplyCalls(Sink(4, true), {Batch(1, {1, 1}), Batch(2, {2, 2}), Batch(3, {3}),
                                             Batch(4, {4, 4, 4, 4, 4, 4}), Batch(5, {5})})),
            "1:11 2:22 | 3:3 | 4:444444 | 5:5");
}

// Without an applied id the writes are idempotent: a batch over the limit is cut, at source
// transaction boundaries (P7), and inside a transaction only when it alone is over the limit.
TEST(ApplyCallsTest, IdempotentWritesAreCutAtTransactionBoundaries) {
  EXPECT_EQ(Shape(ApplyCalls(Sink(4, false), {Batch(1, {1, 1, 2, 2, 2, 3, 3})})),
            "1:11 | 1:222 | 1:33");
  EXPECT_EQ(Shape(ApplyCalls(Sink(4, false), {Batch(1, {1, 1, 1, 1, 1, 1, 2}), Batch(2, {5})})),
            "1:1111 | 1:112 2:5");
  // txn 0 next to each other is one unit: cut only at the limit.
  EXPECT_EQ(Shape(ApplyCalls(Sink(3, false), {Batch(7, {0, 0, 0, 0, 0})})), "7:000 | 7:00");
  // Every op kept, in order.
  std::vector<std::vector<ApplyBatch>> calls = ApplyCalls(Sink(2, false), {Batch(1, {1, 2, 2, 3})});
  std::vector<int64_t> ids;
  for (const auto& call : calls) {
    for (const ApplyBatch& b : call) {
      EXPECT_LE(b.ops.size(), 2u);
      for (const RowOp& op : b.ops) ids.push_back(op.key.at("id").get<int64_t>());
    }
  }
  EXPECT_EQ(ids, (std::vector<int64_t>{1, 2, 3, 4}));
}

TEST(PollIntervalTest, TheLongerOfTheMinimumAndTheQuotasShare) {
  Capabilities caps;
  EXPECT_EQ(PollInterval(caps), milliseconds(0));
  caps.min_poll_interval = milliseconds(2000);
  EXPECT_EQ(PollInterval(caps), milliseconds(2000));
  caps.quota_calls = 86400;  // one a second
  caps.quota_period = std::chrono::hours(24);
  EXPECT_EQ(PollInterval(caps), milliseconds(2000));
  caps.quota_calls = 8640;  // one per 10 s
  EXPECT_EQ(PollInterval(caps), milliseconds(10000));
  caps.min_poll_interval = milliseconds(0);
  EXPECT_EQ(PollInterval(caps), milliseconds(10000));
}

// A clock that moves only when the engine sleeps.
class StepClock final : public Env {
 public:
  std::chrono::steady_clock::time_point Now() override {
    return std::chrono::steady_clock::time_point(milliseconds(now_ms_));
  }
  double WallMs() override { return static_cast<double>(now_ms_); }
  void Sleep(milliseconds d) override { now_ms_ += d.count(); }

 private:
  int64_t now_ms_ = 1'000'000;
};

// What the engine asks of a memory connector: the rows of each Apply call, the time of each
// Poll.
struct Calls {
  std::vector<size_t> apply_rows;
  std::vector<size_t> apply_batches;
  std::vector<int64_t> polls_ms;
  std::vector<int64_t> news_ms;   // the polls that said news
  std::vector<int64_t> apply_ms;  // each Apply call
  bool always_news = false;       // Poll says news every time
  bool never_news = false;        // or never
};

class Recording final : public ConnectorWrapper {
 public:
  Recording(std::shared_ptr<memory::MemoryEndpoint> ep, Env* env, Calls* calls)
      : ConnectorWrapper(std::make_unique<memory::MemoryConnector>(std::move(ep))),
        env_(env),
        calls_(calls) {}
  Result<bool> Poll() override {
    calls_->polls_ms.push_back(Ms());
    Result<bool> news = ConnectorWrapper::Poll();
    // Like a connector that only knows by reading (a REST API's poll): news at every poll.
    if (calls_->always_news) news = true;
    if (calls_->never_news) news = false;
    if (news.ok() && *news) calls_->news_ms.push_back(Ms());
    return news;
  }
  Result<ApplyResult> Apply(const std::vector<ApplyBatch>& batches, bool isolate) override {
    calls_->apply_ms.push_back(Ms());
    size_t rows = 0;
    for (const ApplyBatch& b : batches) rows += b.ops.size();
    calls_->apply_rows.push_back(rows);
    calls_->apply_batches.push_back(batches.size());
    return ConnectorWrapper::Apply(batches, isolate);
  }

 private:
  int64_t Ms() const {
    return std::chrono::duration_cast<milliseconds>(env_->Now().time_since_epoch()).count();
  }
  Env* env_;
  Calls* calls_;
};

class CapabilitiesEngineTest : public ::testing::TestWithParam<bool> {
 protected:
  // Endpoint "a" holds `rows` rows; "b" declares the limits (rest-like: no applied id, when the
  // parameter says so). Syncs until idle.
  // With `trickle`, that many more rows are inserted into "a" one at a time, 100 ms apart,
  // each followed by an engine step, before the sync until idle.
  void SyncTo(int rows, int batch_rows, milliseconds apply_hold = milliseconds(0),
              size_t max_apply_rows = 3, int trickle = 0) {
    a_ = std::make_shared<memory::MemoryEndpoint>("a");
    b_ = std::make_shared<memory::MemoryEndpoint>("b");
    TableInfo t;
    t.name = "t";
    t.columns = {{"id", "INTEGER", false, false, 1, false},
                 {"v", "INTEGER", false, false, 0, false}};
    for (auto& ep : {a_, b_}) ep->DeclareTable(t);
    b_->rest_like = GetParam();
    b_->max_apply_rows = max_apply_rows;
    b_->min_poll_interval = milliseconds(1000);
    b_->apply_hold = apply_hold;
    a_->Begin();
    for (int i = 1; i <= rows; ++i) ASSERT_TRUE(a_->Insert("t", Row{{"id", i}, {"v", i * 10}}));
    a_->Commit();
    const std::string toml = "[engine]\nstate = \"state" + std::to_string(++runs_) +
                             ".db\"\nbatch_rows = " + std::to_string(batch_rows) +
                             "\npoll_interval_ms = 100\n"
                             "[endpoints.a]\ntype = \"sqlite\"\npath = \"a.db\"\n"
                             "[endpoints.b]\ntype = \"sqlite\"\npath = \"b.db\"\n"
                             "[collections.t]\nkey = [\"id\"]\nendpoints.a = { table = \"t\" }\n"
                             "endpoints.b = { table = \"t\" }\n";
    Result<Config> config = ParseConfig(toml, dir_.File("duplex.toml"));
    ASSERT_OK(config);
    std::map<std::string, std::unique_ptr<Connector>> connectors;
    connectors["a"] = std::make_unique<memory::MemoryConnector>(a_);
    connectors["b"] = std::make_unique<Recording>(b_, &clock_, &b_calls_);
    auto engine = Engine::OpenWith(*config, std::move(connectors), true, &clock_);
    ASSERT_OK(engine);
    ASSERT_OK((*engine)->Install());
    for (int i = rows + 1; i <= rows + trickle; ++i) {
      a_->Begin();
      ASSERT_TRUE(a_->Insert("t", Row{{"id", i}, {"v", i * 10}}));
      a_->Commit();
      ASSERT_OK((*engine)->Step());
      clock_.Sleep(milliseconds(100));
    }
    std::atomic<bool> stop{false};
    ASSERT_OK((*engine)->Run(stop, /*until_idle=*/true));
  }

  testing::TempDir dir_;
  StepClock clock_;
  std::shared_ptr<memory::MemoryEndpoint> a_, b_;
  Calls b_calls_;
  int runs_ = 0;  // each SyncTo with a state file of its own
};

TEST_P(CapabilitiesEngineTest, AppliesInCallsTheSinkTakes) {
  ASSERT_NO_FATAL_FAILURE(SyncTo(10, 10000));
  ASSERT_EQ(b_->rows().count("t"), 1u);
  EXPECT_EQ(b_->rows().at("t").size(), 10u);
  for (int i = 1; i <= 10; ++i) {
    std::optional<Row> row = b_->Get("t", Row{{"id", i}});
    ASSERT_TRUE(row.has_value()) << i;
    EXPECT_EQ(row->at("v"), i * 10);
  }
  ASSERT_FALSE(b_calls_.apply_rows.empty());
  for (size_t i = 0; i < b_calls_.apply_rows.size(); ++i) {
    // Over the limit only as one whole batch, to a sink that skips batches by id.
    if (b_calls_.apply_rows[i] > 3) {
      EXPECT_FALSE(GetParam()) << "call " << i << " of " << b_calls_.apply_rows[i] << " rows";
      EXPECT_EQ(b_calls_.apply_batches[i], 1u) << "call " << i;
    }
  }
  if (GetParam()) {  // 10 rows, 3 a call
    EXPECT_GE(b_calls_.apply_rows.size(), 4u);
  }
}

// Small batches (batch_rows 2) to a sink that skips by id: whole batches, several to a call
// while they fit.
TEST_P(CapabilitiesEngineTest, SmallBatchesGoTogetherUpToTheLimit) {
  ASSERT_NO_FATAL_FAILURE(SyncTo(9, 2));
  EXPECT_EQ(b_->rows().at("t").size(), 9u);
  for (size_t rows : b_calls_.apply_rows) EXPECT_LE(rows, 3u);
}

// Applied to in several steps (batch_rows 2), the sink is polled again for duplex's writes, but
// never sooner than its min_poll_interval after the last poll.
TEST_P(CapabilitiesEngineTest, PollsNoMoreOftenThanDeclared) {
  ASSERT_NO_FATAL_FAILURE(SyncTo(5, 2));
  EXPECT_EQ(b_->rows().at("t").size(), 5u);
  ASSERT_GE(b_calls_.polls_ms.size(), 2u) << "its own writes are polled for before idle";
  for (size_t i = 1; i < b_calls_.polls_ms.size(); ++i) {
    EXPECT_GE(b_calls_.polls_ms[i] - b_calls_.polls_ms[i - 1], 1000) << "poll " << i;
  }
}

// A sink with an apply hold (Capabilities::apply_hold) gets the writes of many steps (one row
// a batch) in few calls, each right when its capture had news (a poll made), never in between;
// without the hold, a call per batch.
TEST_P(CapabilitiesEngineTest, HeldWritesGoTogetherWhenTheSinksCaptureHasNews) {
  b_calls_.always_news = true;
  ASSERT_NO_FATAL_FAILURE(SyncTo(0, 100, milliseconds(0), 100, 6));
  EXPECT_EQ(b_->rows().at("t").size(), 6u);
  const size_t unheld = b_calls_.apply_ms.size();
  EXPECT_GE(unheld, 6u);

  b_calls_ = Calls();
  b_calls_.always_news = true;
  ASSERT_NO_FATAL_FAILURE(SyncTo(0, 100, milliseconds(60000), 100, 6));
  EXPECT_EQ(b_->rows().at("t").size(), 6u);
  for (int i = 1; i <= 6; ++i) {
    std::optional<Row> row = b_->Get("t", Row{{"id", i}});
    ASSERT_TRUE(row.has_value()) << i;
    EXPECT_EQ(row->at("v"), i * 10);
  }
  EXPECT_LT(b_calls_.apply_ms.size(), unheld);
  EXPECT_LE(b_calls_.apply_ms.size(), 2u);
  for (int64_t t : b_calls_.apply_ms) {
    EXPECT_NE(std::find(b_calls_.news_ms.begin(), b_calls_.news_ms.end(), t),
              b_calls_.news_ms.end())
        << "an apply at " << t << " without news from the sink's capture then";
  }
}

// A sink whose capture never has news gets the held writes when the hold runs out.
TEST_P(CapabilitiesEngineTest, HeldWritesGoWhenTheHoldRunsOut) {
  b_calls_.never_news = true;
  ASSERT_NO_FATAL_FAILURE(SyncTo(0, 100, milliseconds(5000), 100, 3));
  EXPECT_EQ(b_->rows().at("t").size(), 3u);
  ASSERT_FALSE(b_calls_.apply_ms.empty());
  EXPECT_EQ(b_calls_.apply_ms.size(), 1u);
  const int64_t start = 1'000'000;  // StepClock's start: the first row is planned then
  EXPECT_GE(b_calls_.apply_ms.front() - start, 5000);
  EXPECT_LT(b_calls_.apply_ms.front() - start, 6000);
}

INSTANTIATE_TEST_SUITE_P(Sinks, CapabilitiesEngineTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? std::string("RestLike")
                                             : std::string("WithAppliedId");
                         });

}  // namespace
}  // namespace duplex
