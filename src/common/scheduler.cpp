// Asio-backed and manual (virtual time) implementations of the Scheduler seam.
#include "common/scheduler.h"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

namespace bff {
namespace {

class AsioTimer : public TimerHandle {
 public:
  explicit AsioTimer(boost::asio::io_context& io) : timer_(io) {}
  void Cancel() override {
    cancelled_.store(true);
    // steady_timer is not thread-safe; cancel on its executor.
    boost::asio::post(timer_.get_executor(), [self = keep_.lock()] {
      if (self) self->timer_.cancel();
    });
  }
  boost::asio::steady_timer timer_;
  std::atomic<bool> cancelled_{false};
  std::weak_ptr<AsioTimer> keep_;
};

}  // namespace

void AsioScheduler::Post(std::function<void()> fn) { boost::asio::post(io_, std::move(fn)); }

std::shared_ptr<TimerHandle> AsioScheduler::RunAt(TimePoint when, std::function<void()> fn) {
  auto t = std::make_shared<AsioTimer>(io_);
  t->keep_ = t;
  t->timer_.expires_at(when);
  t->timer_.async_wait([t, fn = std::move(fn)](const boost::system::error_code& ec) {
    if (ec || t->cancelled_.load()) return;
    fn();
  });
  return t;
}

struct ManualScheduler::Entry : TimerHandle {
  std::mutex mu;
  std::function<void()> fn;
  std::atomic<bool> cancelled{false};
  // Dropping the callback at once breaks reference cycles through what it captured.
  void Cancel() override {
    cancelled.store(true);
    std::function<void()> drop;
    std::lock_guard<std::mutex> lock(mu);
    drop.swap(fn);
  }
  std::function<void()> Take() {
    std::lock_guard<std::mutex> lock(mu);
    return std::move(fn);
  }
};

TimePoint ManualScheduler::Now() const {
  std::lock_guard<std::mutex> lock(mu_);
  return now_;
}

void ManualScheduler::Post(std::function<void()> fn) {
  std::lock_guard<std::mutex> lock(mu_);
  posted_.push_back(std::move(fn));
}

std::shared_ptr<TimerHandle> ManualScheduler::RunAt(TimePoint when, std::function<void()> fn) {
  auto e = std::make_shared<Entry>();
  e->fn = std::move(fn);
  std::lock_guard<std::mutex> lock(mu_);
  timers_.emplace(std::make_pair(when, next_seq_++), e);
  return e;
}

void ManualScheduler::RunReady() {
  for (;;) {
    std::function<void()> task;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!posted_.empty()) {
        task = std::move(posted_.front());
        posted_.erase(posted_.begin());
      } else if (!timers_.empty() && timers_.begin()->first.first <= now_) {
        auto e = timers_.begin()->second;
        timers_.erase(timers_.begin());
        if (e->cancelled.load()) continue;
        task = e->Take();
        if (!task) continue;
      } else {
        return;
      }
    }
    task();
  }
}

void ManualScheduler::Advance(Duration d) {
  TimePoint target;
  {
    std::lock_guard<std::mutex> lock(mu_);
    target = now_ + d;
  }
  RunReady();
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (timers_.empty() || timers_.begin()->first.first > target) {
        now_ = target;
        break;
      }
      now_ = std::max(now_, timers_.begin()->first.first);
    }
    RunReady();
  }
  RunReady();
}

bool ManualScheduler::AdvanceToNext() {
  RunReady();
  {
    std::lock_guard<std::mutex> lock(mu_);
    while (!timers_.empty() && timers_.begin()->second->cancelled.load()) timers_.erase(timers_.begin());
    if (timers_.empty()) return false;
    now_ = std::max(now_, timers_.begin()->first.first);
  }
  RunReady();
  return true;
}

size_t ManualScheduler::pending_timers() const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (auto& [k, e] : timers_) n += e->cancelled.load() ? 0 : 1;
  return n;
}

}  // namespace bff
