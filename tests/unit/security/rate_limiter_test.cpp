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

}  // namespace
}  // namespace bff
