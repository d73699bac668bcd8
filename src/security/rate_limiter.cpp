// Token buckets per key, refilled continuously from the scheduler's clock.
#include "security/rate_limiter.h"

#include <algorithm>
#include <cmath>

namespace bff {
namespace {

double Refilled(double tokens, TimePoint updated, TimePoint now, double rate_per_s, double burst) {
  const double elapsed_s = std::chrono::duration<double>(now - updated).count();
  return elapsed_s > 0 ? std::min(burst, tokens + elapsed_s * rate_per_s) : tokens;
}

}  // namespace

TokenBucketLimiter::TokenBucketLimiter(Scheduler& scheduler, size_t max_keys)
    : scheduler_(scheduler), max_keys_(std::max<size_t>(max_keys, 1)) {}

void TokenBucketLimiter::MakeRoom(TimePoint now) {
  const size_t before = buckets_.size();
  std::erase_if(buckets_, [&](const auto& entry) {
    const Bucket& b = entry.second;
    return Refilled(b.tokens, b.updated, now, b.rate_per_s, b.burst) >= b.burst;
  });
  // Sweeping again for every new key would cost a pass over the table per request: keep a quarter free.
  if (buckets_.size() > max_keys_ - max_keys_ / 4) buckets_.clear();
  evicted_ += before - buckets_.size();
}

RateDecision TokenBucketLimiter::Acquire(const std::string& key, double rate_per_s, double burst) {
  TimePoint now = scheduler_.Now();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = buckets_.find(key);
  if (it == buckets_.end()) {
    if (buckets_.size() >= max_keys_) MakeRoom(now);
    it = buckets_.emplace(key, Bucket{burst, now, rate_per_s, burst}).first;
  }
  Bucket& b = it->second;
  b.tokens = Refilled(b.tokens, b.updated, now, rate_per_s, burst);
  b.updated = std::max(b.updated, now);
  b.rate_per_s = rate_per_s;
  b.burst = burst;
  if (b.tokens >= 1.0) {
    b.tokens -= 1.0;
    return {};
  }
  ++refused_;
  RateDecision d;
  d.allowed = false;
  double wait_s = rate_per_s > 0 ? (1.0 - b.tokens) / rate_per_s : 3600.0;
  d.retry_after_s = std::max(1, static_cast<int>(std::ceil(wait_s)));
  return d;
}

void TokenBucketLimiter::Forget(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  buckets_.erase(key);
}

uint64_t TokenBucketLimiter::refused() const {
  std::lock_guard<std::mutex> lock(mu_);
  return refused_;
}

size_t TokenBucketLimiter::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return buckets_.size();
}

uint64_t TokenBucketLimiter::evicted() const {
  std::lock_guard<std::mutex> lock(mu_);
  return evicted_;
}

}  // namespace bff
