// Coalescing of identical in-flight reads: the first caller issues the call, later callers wait for its answer.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace bff {

template <typename V>
class Coalescer {
 public:
  using Waiter = std::function<void(const V&)>;
  using Finish = std::function<void(V)>;

  // If no call for `key` is in flight, runs `start(finish)` and `waiter` gets its answer; otherwise `waiter`
  // joins the call in flight. Every waiter is called exactly once, in arrival order, from the thread
  // that calls `finish`. Returns true when this caller started the call.
  bool Run(const std::string& key, Waiter waiter, const std::function<void(Finish)>& start) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = in_flight_.find(key);
      if (it != in_flight_.end()) {
        it->second.push_back(std::move(waiter));
        ++joined_;
        return false;
      }
      in_flight_[key].push_back(std::move(waiter));
      ++started_;
    }
    start([this, key](V value) {
      std::vector<Waiter> waiters;
      {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = in_flight_.find(key);
        if (it == in_flight_.end()) return;
        waiters = std::move(it->second);
        in_flight_.erase(it);
      }
      for (auto& w : waiters) w(value);
    });
    return true;
  }

  size_t in_flight() const {
    std::lock_guard<std::mutex> lock(mu_);
    return in_flight_.size();
  }
  uint64_t started() const {
    std::lock_guard<std::mutex> lock(mu_);
    return started_;
  }
  uint64_t joined() const {
    std::lock_guard<std::mutex> lock(mu_);
    return joined_;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::vector<Waiter>> in_flight_;
  uint64_t started_ = 0;
  uint64_t joined_ = 0;
};

}  // namespace bff
