// Tests for the response cache: freshness boundaries, counters, LRU bounds, refresh guard, ETags, If-None-Match.
#include "cache/response_cache.h"

#include <atomic>
#include <set>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace bff {
namespace {

using std::chrono::nanoseconds;
using std::chrono::seconds;

constexpr nanoseconds kTick{1};

ResponseCacheOptions SmallOptions() {
  ResponseCacheOptions o;
  o.max_entries = 100;
  o.max_bytes = 1 << 20;
  o.ttl = seconds(10);
  o.stale_while_revalidate = seconds(5);
  o.stale_if_error = seconds(20);
  return o;
}

size_t EntryBytes(const std::string& key, const std::string& body) { return key.size() + body.size() + 34; }

class ResponseCacheTest : public ::testing::Test {
 protected:
  ManualScheduler clock_;
  ResponseCache cache_{SmallOptions(), clock_};
};

TEST_F(ResponseCacheTest, AbsentKeyIsAMiss) {
  CacheLookup got = cache_.Get("nope");
  EXPECT_EQ(got.freshness, Freshness::kMiss);
  EXPECT_EQ(got.entry, nullptr);
  EXPECT_EQ(cache_.stats().misses, 1u);
}

TEST_F(ResponseCacheTest, FreshnessChangesAtExactBoundaries) {
  cache_.Put("p", R"({"id":"p"})");
  const TimePoint stored = clock_.Now();

  CacheLookup got = cache_.Get("p");
  ASSERT_EQ(got.freshness, Freshness::kFresh);
  EXPECT_EQ(got.entry->body, R"({"id":"p"})");
  EXPECT_EQ(got.entry->content_type, "application/json");
  EXPECT_EQ(got.entry->stored_at, stored);
  EXPECT_EQ(got.age, Duration::zero());

  clock_.Advance(seconds(10) - kTick);
  EXPECT_EQ(cache_.Get("p").freshness, Freshness::kFresh);
  clock_.Advance(kTick);  // age == ttl
  got = cache_.Get("p");
  EXPECT_EQ(got.freshness, Freshness::kStale);
  EXPECT_EQ(got.age, seconds(10));

  clock_.Advance(seconds(5) - kTick);
  EXPECT_EQ(cache_.Get("p").freshness, Freshness::kStale);
  clock_.Advance(kTick);  // age == ttl + stale_while_revalidate
  got = cache_.Get("p");
  EXPECT_EQ(got.freshness, Freshness::kExpired);
  ASSERT_NE(got.entry, nullptr) << "an expired entry is still there for the error path";

  clock_.Advance(seconds(15) - kTick);
  EXPECT_EQ(cache_.Peek("p").freshness, Freshness::kExpired);
  clock_.Advance(kTick);  // age == ttl + stale_if_error
  got = cache_.Get("p");
  EXPECT_EQ(got.freshness, Freshness::kMiss);
  EXPECT_EQ(got.entry, nullptr);
  EXPECT_EQ(cache_.stats().entries, 0u);
  EXPECT_EQ(cache_.stats().bytes, 0u);
}

TEST_F(ResponseCacheTest, GetCountsOutcomesAndPeekDoesNot) {
  cache_.Get("p");  // miss
  cache_.Put("p", "body");
  cache_.Get("p");  // hit
  cache_.Get("p");  // hit
  clock_.Advance(seconds(11));
  cache_.Get("p");  // stale hit
  cache_.Peek("p");
  clock_.Advance(seconds(5));
  cache_.Get("p");  // expired: a miss for the caller
  cache_.Peek("p");
  cache_.CountStaleOnError();

  CacheStats s = cache_.stats();
  EXPECT_EQ(s.hits, 2u);
  EXPECT_EQ(s.stale_hits, 1u);
  EXPECT_EQ(s.misses, 2u);
  EXPECT_EQ(s.stale_on_error, 1u);
  EXPECT_EQ(s.evictions, 0u);
  EXPECT_EQ(s.entries, 1u);
  EXPECT_EQ(s.bytes, EntryBytes("p", "body"));
}

TEST_F(ResponseCacheTest, PutReplacesBodyEtagAndAge) {
  cache_.Put("p", "old");
  clock_.Advance(seconds(12));
  ASSERT_EQ(cache_.Get("p").freshness, Freshness::kStale);
  std::shared_ptr<const CachedResponse> held = cache_.Get("p").entry;

  cache_.Put("p", "new body", "text/plain");
  CacheLookup got = cache_.Get("p");
  ASSERT_EQ(got.freshness, Freshness::kFresh);
  EXPECT_EQ(got.entry->body, "new body");
  EXPECT_EQ(got.entry->etag, StrongEtag("new body"));
  EXPECT_EQ(got.entry->content_type, "text/plain");
  EXPECT_EQ(got.age, Duration::zero());
  // A reader holding the previous copy keeps a consistent, unchanged entry.
  EXPECT_EQ(held->body, "old");
  EXPECT_EQ(held->etag, StrongEtag("old"));

  CacheStats s = cache_.stats();
  EXPECT_EQ(s.entries, 1u);
  EXPECT_EQ(s.bytes, EntryBytes("p", "new body"));
}

TEST_F(ResponseCacheTest, InvalidateRemovesTheEntry) {
  cache_.Put("p", "body");
  cache_.Invalidate("p");
  cache_.Invalidate("never there");
  EXPECT_EQ(cache_.Get("p").freshness, Freshness::kMiss);
  EXPECT_EQ(cache_.stats().entries, 0u);
  EXPECT_EQ(cache_.stats().bytes, 0u);
}

TEST(ResponseCacheLruTest, EvictsLeastRecentlyUsedBeyondMaxEntries) {
  ManualScheduler clock;
  ResponseCacheOptions o = SmallOptions();
  o.max_entries = 3;
  ResponseCache cache(o, clock);
  cache.Put("a", "1");
  cache.Put("b", "2");
  cache.Put("c", "3");
  ASSERT_EQ(cache.Get("a").freshness, Freshness::kFresh);  // a is now the most recently used
  cache.Put("d", "4");

  EXPECT_EQ(cache.Peek("b").freshness, Freshness::kMiss);
  EXPECT_NE(cache.Peek("a").entry, nullptr);
  EXPECT_NE(cache.Peek("c").entry, nullptr);
  EXPECT_NE(cache.Peek("d").entry, nullptr);
  CacheStats s = cache.stats();
  EXPECT_EQ(s.entries, 3u);
  EXPECT_EQ(s.evictions, 1u);
}

TEST(ResponseCacheLruTest, EvictsBeyondMaxBytesCountingKeyBodyAndEtag) {
  ManualScheduler clock;
  ResponseCacheOptions o = SmallOptions();
  const std::string body(10, 'x');
  o.max_bytes = 3 * EntryBytes("k1", body);
  ResponseCache cache(o, clock);
  cache.Put("k1", body);
  cache.Put("k2", body);
  cache.Put("k3", body);
  EXPECT_EQ(cache.stats().bytes, o.max_bytes);
  EXPECT_EQ(cache.stats().evictions, 0u);

  cache.Put("k4", body);
  EXPECT_EQ(cache.Peek("k1").freshness, Freshness::kMiss);
  EXPECT_EQ(cache.stats().entries, 3u);
  EXPECT_EQ(cache.stats().bytes, o.max_bytes);

  // One large body pushes out as many older entries as it needs.
  cache.Put("k5", std::string(body.size() * 2 + 5, 'y'));
  EXPECT_EQ(cache.Peek("k2").freshness, Freshness::kMiss);
  EXPECT_EQ(cache.Peek("k3").freshness, Freshness::kMiss);
  EXPECT_NE(cache.Peek("k4").entry, nullptr);
  EXPECT_NE(cache.Peek("k5").entry, nullptr);
  EXPECT_LE(cache.stats().bytes, o.max_bytes);
  EXPECT_EQ(cache.stats().evictions, 3u);
}

TEST(ResponseCacheLruTest, EntryLargerThanTheCacheIsNotStoredAndDropsTheOldCopy) {
  ManualScheduler clock;
  ResponseCacheOptions o = SmallOptions();
  o.max_bytes = 100;
  ResponseCache cache(o, clock);
  cache.Put("k", "small");
  cache.Put("k", std::string(200, 'z'));
  EXPECT_EQ(cache.Get("k").freshness, Freshness::kMiss);
  EXPECT_EQ(cache.stats().entries, 0u);
  EXPECT_EQ(cache.stats().bytes, 0u);
}

TEST_F(ResponseCacheTest, OneRefreshPerKeyAtATime) {
  EXPECT_TRUE(cache_.BeginRefresh("p"));
  EXPECT_FALSE(cache_.BeginRefresh("p"));
  EXPECT_TRUE(cache_.BeginRefresh("q")) << "keys are independent";
  cache_.EndRefresh("p");
  EXPECT_TRUE(cache_.BeginRefresh("p"));
  EXPECT_EQ(cache_.stats().refreshes, 3u);
}

TEST(ResponseCacheConcurrencyTest, ParallelGetsAndPutsStayConsistent) {
  ManualScheduler clock;
  ResponseCacheOptions o = SmallOptions();
  o.max_entries = 20;
  ResponseCache cache(o, clock);
  constexpr int kThreads = 4;
  constexpr int kOps = 3000;
  std::atomic<int> bad{0};
  std::atomic<int> served{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kOps; ++i) {
        std::string key = "k" + std::to_string((i * 7 + t) % 50);
        if (i % 3 == 0) {
          cache.Put(key, key + ":" + std::to_string(i));
        } else {
          CacheLookup got = cache.Get(key);
          if (got.entry) {
            ++served;
            // The body, its ETag and its key always belong together.
            if (got.entry->etag != StrongEtag(got.entry->body) || got.entry->body.rfind(key + ":", 0) != 0) ++bad;
          }
        }
        if (i % 100 == 0) cache.Invalidate(key);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_GT(served.load(), 0);
  CacheStats s = cache.stats();
  EXPECT_LE(s.entries, 20u);
  EXPECT_EQ(s.hits + s.misses, static_cast<uint64_t>(kThreads * (kOps - (kOps + 2) / 3)));
  size_t bytes = 0;
  for (int k = 0; k < 50; ++k) {
    std::string key = "k" + std::to_string(k);
    if (auto e = cache.Peek(key).entry) bytes += key.size() + e->body.size() + e->etag.size();
  }
  EXPECT_EQ(s.bytes, bytes);
}

TEST(StrongEtagTest, QuotedStableAndDistinct) {
  std::string a = StrongEtag(R"({"id":"a"})");
  EXPECT_EQ(a, StrongEtag(R"({"id":"a"})"));
  EXPECT_NE(a, StrongEtag(R"({"id":"b"})"));
  ASSERT_EQ(a.size(), 34u);
  EXPECT_EQ(a.front(), '"');
  EXPECT_EQ(a.back(), '"');
  EXPECT_EQ(a.substr(1, 32).find_first_not_of("0123456789abcdef"), std::string::npos);
  // SHA-256("") begins e3b0c442 98fc1c14 9afbf4c8 996fb924.
  EXPECT_EQ(StrongEtag(""), "\"e3b0c44298fc1c149afbf4c8996fb924\"");
}

TEST(IfNoneMatchTest, MatchesSingleListStarAndWeakForms) {
  const std::string etag = "\"abc\"";
  EXPECT_TRUE(IfNoneMatchMatches("\"abc\"", etag));
  EXPECT_TRUE(IfNoneMatchMatches("*", etag));
  EXPECT_TRUE(IfNoneMatchMatches("  *  ", etag));
  EXPECT_TRUE(IfNoneMatchMatches("\"x\", \"abc\"", etag));
  EXPECT_TRUE(IfNoneMatchMatches("\"x\",\"abc\",\"y\"", etag));
  EXPECT_TRUE(IfNoneMatchMatches("W/\"abc\"", etag)) << "If-None-Match uses the weak comparison";
  EXPECT_TRUE(IfNoneMatchMatches("\"x\" , W/\"abc\"", etag));
  EXPECT_TRUE(IfNoneMatchMatches("\"abc\"", "W/\"abc\""));
  EXPECT_TRUE(IfNoneMatchMatches("\"a,b\", \"abc\"", etag)) << "commas inside a tag do not split it";
  EXPECT_TRUE(IfNoneMatchMatches("\"a,b\"", "\"a,b\""));

  EXPECT_FALSE(IfNoneMatchMatches("\"abd\"", etag));
  EXPECT_FALSE(IfNoneMatchMatches("abc", etag)) << "an unquoted value is not an entity tag";
  EXPECT_FALSE(IfNoneMatchMatches("\"ab\"", etag));
  EXPECT_FALSE(IfNoneMatchMatches("\"abcd\"", etag));
  EXPECT_FALSE(IfNoneMatchMatches("", etag));
  EXPECT_FALSE(IfNoneMatchMatches("\"\"", etag));
  EXPECT_FALSE(IfNoneMatchMatches("w/\"abc\"", etag)) << "the weak indicator is case-sensitive";
}

TEST(IfNoneMatchTest, JunkNeverMatchesOrCrashes) {
  const std::string etag = "\"abc\"";
  for (std::string_view junk :
       {",", ",,,", "W/", "W/\"", "\"", "\"abc", "\"ab\"c\"", "**", "*, \"x\"", "W/W/\"abc\"", "\t", "\"x\" junk"}) {
    EXPECT_FALSE(IfNoneMatchMatches(junk, etag)) << junk;
  }
  // A bad member does not hide a good one after it.
  EXPECT_TRUE(IfNoneMatchMatches("junk, \"abc\"", etag));
  EXPECT_TRUE(IfNoneMatchMatches("\"x\" junk, \"abc\"", etag));
  EXPECT_FALSE(IfNoneMatchMatches("\"abc\"", ""));
  std::string binary("\"\0\xff\"", 4);
  EXPECT_FALSE(IfNoneMatchMatches(binary, etag));
}

TEST_F(ResponseCacheTest, MetricsExposeTheCacheCountersAtScrapeTime) {
  MetricsRegistry metrics;
  ExportCacheMetrics(cache_, "mobile", metrics);
  cache_.Get("a");  // miss
  cache_.Put("a", "body-a");
  cache_.Get("a");  // hit
  cache_.Get("a");  // hit
  clock_.Advance(seconds(11));
  cache_.Get("a");  // stale
  cache_.CountStaleOnError();
  std::string text = metrics.Render();
  auto sample = [&](const std::string& series) {
    size_t at = text.find("\n" + series + " ");
    if (at == std::string::npos) return std::string();
    size_t v = at + series.size() + 2;
    return text.substr(v, text.find('\n', v) - v);
  };
  EXPECT_EQ(sample(R"(bffd_cache_requests_total{client="mobile",result="hit"})"), "2");
  EXPECT_EQ(sample(R"(bffd_cache_requests_total{client="mobile",result="miss"})"), "1");
  EXPECT_EQ(sample(R"(bffd_cache_requests_total{client="mobile",result="stale"})"), "1");
  EXPECT_EQ(sample(R"(bffd_cache_stale_on_error_total{client="mobile"})"), "1");
  EXPECT_EQ(sample(R"(bffd_cache_entries{client="mobile"})"), "1");
  EXPECT_EQ(sample(R"(bffd_cache_bytes{client="mobile"})"), std::to_string(EntryBytes("a", "body-a")));
  EXPECT_NE(text.find("# TYPE bffd_cache_requests_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE bffd_cache_entries gauge\n"), std::string::npos);
}

}  // namespace
}  // namespace bff
