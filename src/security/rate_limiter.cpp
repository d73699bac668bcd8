// Token buckets per key, refilled continuously from the scheduler's clock.
#include "security/rate_limiter.h"

#include <algorithm>
#include <cmath>

namespace bff {

TokenBucketLimiter::TokenBucketLimiter(Scheduler& scheduler, size_t max_keys) : scheduler_(scheduler), max_keys_(max_keys) {}

RateDecision TokenBucketLimiter::Acquire(const std::string& key, double rate_per_s, double burst) {
  TimePoint now = scheduler_.Now();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = buckets_.find(key);
  if (it == buckets_.end()) {
    // A bounded table: past the limit, full buckets (idle keys) are the ones worth forgetting.
    if (buckets_.size() >= max_keys_) buckets_.clear();
    it = buckets_.emplace(key, Bucket{burst, now}).first;
  }
  Bucket& b = it->second;
  double elapsed_s = std::chrono::duration<double>(now - b.updated).count();
  if (elapsed_s > 0) {
    b.tokens = std::min(burst, b.tokens + elapsed_s * rate_per_s);
    b.updated = now;
  }
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

}  // namespace bff
