// FanOut in virtual time: parallelism, per-call timeouts, fallbacks, critical failures, spent budgets.
#include "orchestration/fanout.h"

#include <gtest/gtest.h>

#include <optional>

namespace bff {
namespace {

using std::chrono::milliseconds;

// A fake downstream call answering `value` (or `error`) after `delay` of virtual time.
std::function<void(TimePoint, std::function<void(StatusOr<int>)>)> DelayedCall(ManualScheduler& s, milliseconds delay,
                                                                              StatusOr<int> answer, int* started = nullptr) {
  return [&s, delay, answer, started](TimePoint, std::function<void(StatusOr<int>)> complete) {
    if (started) ++*started;
    s.RunAfter(delay, [complete, answer] { complete(answer); });
  };
}

class FanOutTest : public ::testing::Test {
 protected:
  ManualScheduler sched_;
  std::optional<FanOutResult> result_;
  TimePoint finished_at_{};

  void RunToEnd(const std::shared_ptr<FanOut>& f) {
    f->Run([this](FanOutResult r) {
      result_ = std::move(r);
      finished_at_ = sched_.Now();
    });
    while (!result_ && sched_.AdvanceToNext()) {
    }
    sched_.RunReady();
  }
};

TEST_F(FanOutTest, ThreeOptionalCallsOfFiftyMsFinishTogetherInFiftyMs) {
  TimePoint t0 = sched_.Now();
  auto f = FanOut::Create(sched_, t0 + milliseconds(1000));
  int a = 0, b = 0, c = 0;
  f->Add<int>("reviews", Criticality::kOptional, milliseconds(200), DelayedCall(sched_, milliseconds(50), 1), [&](int v) { a = v; });
  f->Add<int>("promotions", Criticality::kOptional, milliseconds(200), DelayedCall(sched_, milliseconds(50), 2), [&](int v) { b = v; });
  f->Add<int>("inventory", Criticality::kOptional, milliseconds(200), DelayedCall(sched_, milliseconds(50), 3), [&](int v) { c = v; });
  RunToEnd(f);
  ASSERT_TRUE(result_.has_value());
  EXPECT_TRUE(result_->status.ok());
  EXPECT_EQ(finished_at_ - t0, milliseconds(50)) << "calls ran in sequence, not in parallel";
  EXPECT_EQ(a + b + c, 6);
  EXPECT_TRUE(result_->degraded.empty());
  ASSERT_EQ(result_->calls.size(), 3u);
  for (auto& call : result_->calls) EXPECT_EQ(call.elapsed, milliseconds(50));
}

TEST_F(FanOutTest, OptionalCallPastItsTimeoutFallsBackAndIsDegraded) {
  TimePoint t0 = sched_.Now();
  auto f = FanOut::Create(sched_, t0 + milliseconds(1000));
  int reviews = -1;
  int stock = -1;
  Status fallback_status;
  f->Add<int>("reviews", Criticality::kOptional, milliseconds(30), DelayedCall(sched_, milliseconds(500), 7),
              [&](int v) { reviews = v; }, [&](const Status& s) { reviews = 0; fallback_status = s; });
  f->Add<int>("inventory", Criticality::kOptional, milliseconds(100), DelayedCall(sched_, milliseconds(10), 42),
              [&](int v) { stock = v; });
  RunToEnd(f);
  ASSERT_TRUE(result_.has_value());
  EXPECT_TRUE(result_->status.ok());
  EXPECT_EQ(finished_at_ - t0, milliseconds(30)) << "the fan-out waited for the slow call instead of its timeout";
  EXPECT_EQ(result_->degraded, std::vector<std::string>{"reviews"});
  EXPECT_EQ(fallback_status.code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(reviews, 0);
  EXPECT_EQ(stock, 42);
  // The late answer at 500 ms must not overwrite the fallback.
  sched_.Advance(milliseconds(600));
  EXPECT_EQ(reviews, 0);
}

TEST_F(FanOutTest, FailingOptionalCallIsDegradedNotFatal) {
  auto f = FanOut::Create(sched_);
  bool fell_back = false;
  f->Add<int>("promotions", Criticality::kOptional, milliseconds(100),
              DelayedCall(sched_, milliseconds(5), Unavailable("promotions down")), [](int) {},
              [&](const Status& s) { fell_back = s.code() == StatusCode::kUnavailable; });
  f->Add<int>("catalog", Criticality::kCritical, milliseconds(100), DelayedCall(sched_, milliseconds(10), 1), [](int) {});
  RunToEnd(f);
  ASSERT_TRUE(result_.has_value());
  EXPECT_TRUE(result_->status.ok());
  EXPECT_TRUE(fell_back);
  EXPECT_EQ(result_->degraded, std::vector<std::string>{"promotions"});
}

TEST_F(FanOutTest, FailingCriticalCallFailsTheRequestWithItsStatusAtOnce) {
  TimePoint t0 = sched_.Now();
  auto f = FanOut::Create(sched_, t0 + milliseconds(1000));
  f->Add<int>("catalog", Criticality::kCritical, milliseconds(100), DelayedCall(sched_, milliseconds(5), Unavailable("catalog down")),
              [](int) {});
  f->Add<int>("reviews", Criticality::kOptional, milliseconds(300), DelayedCall(sched_, milliseconds(200), 1), [](int) {});
  RunToEnd(f);
  ASSERT_TRUE(result_.has_value());
  EXPECT_EQ(result_->status.code(), StatusCode::kUnavailable);
  EXPECT_EQ(HttpStatusFor(result_->status.code()), 503);
  EXPECT_EQ(result_->failed_call, "catalog");
  EXPECT_EQ(finished_at_ - t0, milliseconds(5)) << "a failed critical call must not wait for the others";
}

TEST_F(FanOutTest, CriticalNotFoundMapsTo404AndCriticalTimeoutTo504) {
  {
    auto f = FanOut::Create(sched_);
    f->Add<int>("catalog", Criticality::kCritical, milliseconds(100), DelayedCall(sched_, milliseconds(1), NotFound("no such sku")),
                [](int) {});
    RunToEnd(f);
    ASSERT_TRUE(result_.has_value());
    EXPECT_EQ(HttpStatusFor(result_->status.code()), 404);
  }
  result_.reset();
  {
    auto f = FanOut::Create(sched_);
    f->Add<int>("catalog", Criticality::kCritical, milliseconds(20), DelayedCall(sched_, milliseconds(100), 1), [](int) {});
    RunToEnd(f);
    ASSERT_TRUE(result_.has_value());
    EXPECT_EQ(HttpStatusFor(result_->status.code()), 504);
  }
}

TEST_F(FanOutTest, RequestDeadlineBoundsEveryCall) {
  TimePoint t0 = sched_.Now();
  auto f = FanOut::Create(sched_, t0 + milliseconds(40));
  f->Add<int>("reviews", Criticality::kOptional, milliseconds(500), DelayedCall(sched_, milliseconds(300), 1), [](int) {}, [](const Status&) {});
  RunToEnd(f);
  ASSERT_TRUE(result_.has_value());
  EXPECT_EQ(finished_at_ - t0, milliseconds(40));
  EXPECT_EQ(result_->degraded, std::vector<std::string>{"reviews"});
}

TEST_F(FanOutTest, CallWithSpentBudgetIsNotStarted) {
  TimePoint t0 = sched_.Now();
  auto f = FanOut::Create(sched_, t0);  // budget already spent
  int started = 0;
  bool fell_back = false;
  f->Add<int>("reviews", Criticality::kOptional, milliseconds(100), DelayedCall(sched_, milliseconds(1), 1, &started), [](int) {},
              [&](const Status& s) { fell_back = s.code() == StatusCode::kDeadlineExceeded; });
  RunToEnd(f);
  ASSERT_TRUE(result_.has_value());
  EXPECT_EQ(started, 0);
  EXPECT_TRUE(fell_back);
  ASSERT_EQ(result_->calls.size(), 1u);
  EXPECT_FALSE(result_->calls[0].started);
}

TEST_F(FanOutTest, EmptyFanOutCompletes) {
  auto f = FanOut::Create(sched_);
  RunToEnd(f);
  ASSERT_TRUE(result_.has_value());
  EXPECT_TRUE(result_->status.ok());
}

TEST_F(FanOutTest, DependentChainInsideOneCallKeepsTheCriticalPath) {
  // recommendations (20 ms) then a batch lookup (10 ms) inside one call; reviews (25 ms) in parallel:
  // the whole fan-out takes max(20+10, 25) = 30 ms.
  TimePoint t0 = sched_.Now();
  auto f = FanOut::Create(sched_, t0 + milliseconds(1000));
  f->Add<int>("related", Criticality::kOptional, milliseconds(200),
              [this](TimePoint, std::function<void(StatusOr<int>)> complete) {
                sched_.RunAfter(milliseconds(20), [this, complete] {
                  sched_.RunAfter(milliseconds(10), [complete] { complete(2); });
                });
              },
              [](int) {});
  f->Add<int>("reviews", Criticality::kOptional, milliseconds(200), DelayedCall(sched_, milliseconds(25), 1), [](int) {});
  RunToEnd(f);
  ASSERT_TRUE(result_.has_value());
  EXPECT_EQ(finished_at_ - t0, milliseconds(30));
}

TEST_F(FanOutTest, MetricsCountHowEachCallEnded) {
  MetricsRegistry registry;
  FanOutMetrics metrics(registry);
  TimePoint t0 = sched_.Now();
  auto page = FanOut::Create(sched_, t0 + milliseconds(1000), &metrics);
  page->Add<int>("catalog", Criticality::kCritical, milliseconds(200), DelayedCall(sched_, milliseconds(10), 1), [](int) {});
  page->Add<int>("reviews", Criticality::kOptional, milliseconds(50), DelayedCall(sched_, milliseconds(500), 2), [](int) {},
                 [](const Status&) {});
  page->Add<int>("promotions", Criticality::kOptional, milliseconds(50), DelayedCall(sched_, milliseconds(10), Unavailable("down")),
                 [](int) {}, [](const Status&) {});
  RunToEnd(page);
  ASSERT_TRUE(result_.has_value());
  EXPECT_TRUE(result_->status.ok());

  result_.reset();
  auto failing = FanOut::Create(sched_, sched_.Now() + milliseconds(1000), &metrics);
  failing->Add<int>("catalog", Criticality::kCritical, milliseconds(200), DelayedCall(sched_, milliseconds(10), NotFound("no such sku")),
                    [](int) {});
  failing->Add<int>("reviews", Criticality::kOptional, milliseconds(200), DelayedCall(sched_, milliseconds(100), 2), [](int) {});
  RunToEnd(failing);
  ASSERT_TRUE(result_.has_value());
  EXPECT_FALSE(result_->status.ok());

  std::string text = registry.Render();
  auto sample = [&](const std::string& call, const std::string& outcome) {
    std::string series = "bffd_fanout_calls_total{call=\"" + call + "\",outcome=\"" + outcome + "\"} ";
    size_t at = text.find(series);
    return at == std::string::npos ? std::string() : text.substr(at + series.size(), text.find('\n', at) - at - series.size());
  };
  EXPECT_EQ(sample("catalog", "ok"), "1");
  EXPECT_EQ(sample("catalog", "failed"), "1");
  EXPECT_EQ(sample("reviews", "fallback"), "1");  // timed out
  EXPECT_EQ(sample("promotions", "fallback"), "1");  // failed
  EXPECT_EQ(sample("reviews", "abandoned"), "1");  // still running when the catalog failed
  EXPECT_EQ(sample("reviews", "ok"), "");
}

}  // namespace
}  // namespace bff
