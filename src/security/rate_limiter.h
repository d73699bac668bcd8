// Token buckets per key: one per device key (shared by MQTT and CoAP, with a burst allowance for
// catch-up after an outage) and, in a limiter of their own, one per HTTP client address, user and
// login name. Behind an interface so a shared (Redis) limiter can replace it.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

#include "common/scheduler.h"

namespace bff {

struct RateDecision {
  bool allowed = true;
  int retry_after_s = 0;  // when refused: whole seconds until one token is available (at least 1)
};

class RateLimiter {
 public:
  virtual ~RateLimiter() = default;
  // Takes one token from `key`'s bucket (rate tokens/s, capacity `burst`), created full on first use.
  virtual RateDecision Acquire(const std::string& key, double rate_per_s, double burst) = 0;
  virtual void Forget(const std::string& key) = 0;
};

class TokenBucketLimiter : public RateLimiter {
 public:
  // At most `max_keys` buckets are kept. When the table is full, the buckets that have refilled are
  // dropped first: a full bucket is what a forgotten key gets anyway, so nobody gains from it. Only
  // when that frees nothing (every key busy: a flood of fresh keys) is the whole table forgotten.
  explicit TokenBucketLimiter(Scheduler& scheduler, size_t max_keys = 1000000);
  RateDecision Acquire(const std::string& key, double rate_per_s, double burst) override;
  void Forget(const std::string& key) override;
  uint64_t refused() const;
  size_t size() const;
  // Buckets dropped to make room, refilled or not.
  uint64_t evicted() const;

 private:
  struct Bucket {
    double tokens = 0;
    TimePoint updated{};
    double rate_per_s = 0;
    double burst = 0;
  };
  void MakeRoom(TimePoint now);

  Scheduler& scheduler_;
  size_t max_keys_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Bucket> buckets_;
  uint64_t refused_ = 0;
  uint64_t evicted_ = 0;
};

}  // namespace bff
