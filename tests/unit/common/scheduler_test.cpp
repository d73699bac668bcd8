// Scheduler seam: virtual time fires timers in order and honours cancellation; Asio timers too.
#include "common/scheduler.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <future>
#include <thread>

namespace bff {
namespace {

using std::chrono::milliseconds;

TEST(ManualSchedulerTest, TimersFireInTimeOrderAtTheirInstant) {
  ManualScheduler s;
  TimePoint t0 = s.Now();
  std::vector<std::pair<int, Duration>> fired;
  s.RunAfter(milliseconds(30), [&] { fired.push_back({3, s.Now() - t0}); });
  s.RunAfter(milliseconds(10), [&] { fired.push_back({1, s.Now() - t0}); });
  s.RunAfter(milliseconds(20), [&] { fired.push_back({2, s.Now() - t0}); });
  s.Advance(milliseconds(25));
  ASSERT_EQ(fired.size(), 2u);
  EXPECT_EQ(fired[0], std::make_pair(1, Duration(milliseconds(10))));
  EXPECT_EQ(fired[1], std::make_pair(2, Duration(milliseconds(20))));
  s.Advance(milliseconds(10));
  ASSERT_EQ(fired.size(), 3u);
  EXPECT_EQ(s.Now() - t0, milliseconds(35));
}

TEST(ManualSchedulerTest, CancelledTimerNeverRuns) {
  ManualScheduler s;
  bool ran = false;
  auto h = s.RunAfter(milliseconds(5), [&] { ran = true; });
  h->Cancel();
  s.Advance(milliseconds(10));
  EXPECT_FALSE(ran);
  EXPECT_EQ(s.pending_timers(), 0u);
}

TEST(AsioSchedulerTest, TimerFiresAndCancelPreventsIt) {
  boost::asio::io_context io;
  auto work = boost::asio::make_work_guard(io);
  std::thread t([&] { io.run(); });
  AsioScheduler s(io);
  std::promise<void> fired;
  std::atomic<bool> cancelled_ran{false};
  auto h = s.RunAfter(milliseconds(50), [&] { cancelled_ran = true; });
  h->Cancel();
  s.RunAfter(milliseconds(1), [&] { fired.set_value(); });
  EXPECT_EQ(fired.get_future().wait_for(std::chrono::seconds(10)), std::future_status::ready);
  // Give the cancelled timer's original instant a chance to pass, observed through a later timer.
  std::promise<void> later;
  s.RunAfter(milliseconds(100), [&] { later.set_value(); });
  EXPECT_EQ(later.get_future().wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_FALSE(cancelled_ran.load());
  work.reset();
  io.stop();
  t.join();
}

}  // namespace
}  // namespace bff
