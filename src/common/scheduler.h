// Time and task scheduling seam: real Asio timers in the daemon, a manual clock in unit tests.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include <boost/asio/io_context.hpp>

namespace bff {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using Duration = Clock::duration;
using std::chrono::milliseconds;

inline int64_t MillisUntil(TimePoint deadline, TimePoint now) {
  if (deadline == TimePoint::max()) return INT64_MAX;
  return std::chrono::duration_cast<milliseconds>(deadline - now).count();
}

// A scheduled callback; Cancel() guarantees the callback will not start afterwards.
class TimerHandle {
 public:
  virtual ~TimerHandle() = default;
  virtual void Cancel() = 0;
};

class Scheduler {
 public:
  virtual ~Scheduler() = default;
  virtual TimePoint Now() const = 0;
  // Runs `fn` soon, on a scheduler thread.
  virtual void Post(std::function<void()> fn) = 0;
  // Runs `fn` at `when` unless the returned handle is cancelled first.
  virtual std::shared_ptr<TimerHandle> RunAt(TimePoint when, std::function<void()> fn) = 0;
  std::shared_ptr<TimerHandle> RunAfter(Duration d, std::function<void()> fn) { return RunAt(Now() + d, std::move(fn)); }
};

// Scheduler over an io_context: Post() is asio::post, timers are steady_timers.
class AsioScheduler : public Scheduler {
 public:
  explicit AsioScheduler(boost::asio::io_context& io) : io_(io) {}
  TimePoint Now() const override { return Clock::now(); }
  void Post(std::function<void()> fn) override;
  std::shared_ptr<TimerHandle> RunAt(TimePoint when, std::function<void()> fn) override;
  boost::asio::io_context& io() { return io_; }

 private:
  boost::asio::io_context& io_;
};

// Deterministic virtual time for unit tests: nothing runs until Advance()/RunReady() is called.
class ManualScheduler : public Scheduler {
 public:
  explicit ManualScheduler(TimePoint start = TimePoint{} + std::chrono::hours(1)) : now_(start) {}
  TimePoint Now() const override;
  void Post(std::function<void()> fn) override;
  std::shared_ptr<TimerHandle> RunAt(TimePoint when, std::function<void()> fn) override;
  // Runs posted tasks and due timers (in time order) until none is ready at the current time.
  void RunReady();
  // Moves time forward step by step to now+d, firing timers at their own instants.
  void Advance(Duration d);
  // Advances to the next pending timer; returns false when nothing is pending.
  bool AdvanceToNext();
  size_t pending_timers() const;

 private:
  struct Entry;
  mutable std::mutex mu_;
  TimePoint now_;
  uint64_t next_seq_ = 0;
  std::vector<std::function<void()>> posted_;
  std::multimap<std::pair<TimePoint, uint64_t>, std::shared_ptr<Entry>> timers_;
};

}  // namespace bff
