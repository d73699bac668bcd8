// Token buckets in virtual time: burst, refill, per-key isolation, retry hints.
#include "security/rate_limiter.h"

#include <gtest/gtest.h>

namespace bff {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(TokenBucketLimiterTest, BurstThenRefusedWithRetryHintThenRefills) {
  ManualScheduler sched;
  TokenBucketLimiter limiter(sched);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(limiter.Acquire("dev-a", 0.5, 5).allowed) << i;
  RateDecision d = limiter.Acquire("dev-a", 0.5, 5);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after_s, 2);  // one token every 2 s
  sched.Advance(seconds(2));
  EXPECT_TRUE(limiter.Acquire("dev-a", 0.5, 5).allowed);
  EXPECT_FALSE(limiter.Acquire("dev-a", 0.5, 5).allowed);
  EXPECT_EQ(limiter.refused(), 2u);
}

TEST(TokenBucketLimiterTest, OneFloodingKeyDoesNotTouchOthers) {
  ManualScheduler sched;
  TokenBucketLimiter limiter(sched);
  int allowed = 0;
  for (int i = 0; i < 1000; ++i) allowed += limiter.Acquire("flooder", 1, 10).allowed;
  EXPECT_EQ(allowed, 10);
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(limiter.Acquire("quiet-" + std::to_string(i), 1, 10).allowed);
}

TEST(TokenBucketLimiterTest, BucketNeverExceedsBurstAfterLongIdle) {
  ManualScheduler sched;
  TokenBucketLimiter limiter(sched);
  EXPECT_TRUE(limiter.Acquire("d", 1, 3).allowed);
  sched.Advance(seconds(3600));
  int allowed = 0;
  for (int i = 0; i < 10; ++i) allowed += limiter.Acquire("d", 1, 3).allowed;
  EXPECT_EQ(allowed, 3);
  sched.Advance(milliseconds(500));
  EXPECT_FALSE(limiter.Acquire("d", 1, 3).allowed);
  sched.Advance(milliseconds(500));
  EXPECT_TRUE(limiter.Acquire("d", 1, 3).allowed);
}

TEST(TokenBucketLimiterTest, AFullTableForgetsRefilledBucketsFirst) {
  ManualScheduler sched;
  TokenBucketLimiter limiter(sched, /*max_keys=*/8);
  // Six clients drain their buckets; two come once and go.
  for (int i = 0; i < 6; ++i) {
    while (limiter.Acquire("busy-" + std::to_string(i), 1, 2).allowed) {
    }
  }
  EXPECT_TRUE(limiter.Acquire("idle-a", 1, 2).allowed);
  EXPECT_TRUE(limiter.Acquire("idle-b", 1, 2).allowed);
  sched.Advance(milliseconds(1500));  // the idle ones are full again; the busy ones are not
  EXPECT_TRUE(limiter.Acquire("new", 1, 2).allowed);
  EXPECT_EQ(limiter.evicted(), 2u);
  EXPECT_EQ(limiter.size(), 7u);
  // The busy clients kept their state: each has 1.5 tokens, so one request and then a refusal.
  for (int i = 0; i < 6; ++i) {
    EXPECT_TRUE(limiter.Acquire("busy-" + std::to_string(i), 1, 2).allowed) << i;
    EXPECT_FALSE(limiter.Acquire("busy-" + std::to_string(i), 1, 2).allowed) << i;
  }
}

TEST(TokenBucketLimiterTest, AFloodOfFreshKeysCannotGrowTheTable) {
  ManualScheduler sched;
  TokenBucketLimiter limiter(sched, /*max_keys=*/100);
  for (int i = 0; i < 10000; ++i) {
    const std::string key = "spray-" + std::to_string(i);
    limiter.Acquire(key, 1, 2);
    limiter.Acquire(key, 1, 2);  // each key busy, so nothing is refilled to forget
    ASSERT_LE(limiter.size(), 100u);
  }
  EXPECT_GT(limiter.evicted(), 9000u);
}

}  // namespace
}  // namespace bff
