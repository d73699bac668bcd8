// Bounded in-memory response cache with TTL, stale-while-revalidate and one refresh per key at a time.
//
// Entries are client-shaped bodies with their strong ETag. A lookup says how fresh the entry is:
// fresh (age < ttl), stale (within stale_while_revalidate after ttl: serve it and refresh in the
// background), or expired-but-present (kept up to stale_if_error past ttl, served only when the origin
// fails). Bounded by entry count and by bytes; least recently used entries are evicted first.
// Thread-safe. Counters are kept for metrics.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "common/scheduler.h"
#include "observability/metrics.h"

namespace bff {

struct CachedResponse {
  std::string body;
  std::string etag;       // strong ETag, quoted: "\"...\""
  std::string content_type = "application/json";
  TimePoint stored_at{};
};

enum class Freshness { kMiss, kFresh, kStale, kExpired };

struct CacheLookup {
  Freshness freshness = Freshness::kMiss;
  std::shared_ptr<const CachedResponse> entry;  // null on kMiss
  Duration age{};                               // now - stored_at
};

struct CacheStats {
  uint64_t hits = 0;          // fresh
  uint64_t stale_hits = 0;    // served stale while revalidating
  uint64_t misses = 0;        // absent or expired
  uint64_t stale_on_error = 0;
  uint64_t evictions = 0;
  uint64_t refreshes = 0;     // background refreshes started
  size_t entries = 0;
  size_t bytes = 0;
};

struct ResponseCacheOptions {
  size_t max_entries = 10000;
  size_t max_bytes = 64 << 20;
  Duration ttl = std::chrono::seconds(3600);
  Duration stale_while_revalidate = std::chrono::seconds(600);
  Duration stale_if_error = std::chrono::seconds(86400);
};

class ResponseCache {
 public:
  ResponseCache(ResponseCacheOptions options, Scheduler& scheduler);

  // Looks `key` up and counts the outcome (kFresh → hit, kStale → stale hit, else miss).
  CacheLookup Get(const std::string& key);
  // Looks up without counting (used on the error path to find a copy to serve).
  CacheLookup Peek(const std::string& key);
  void Put(const std::string& key, std::string body, std::string content_type = "application/json");
  void Invalidate(const std::string& key);
  // Counts a stale copy served because the origin failed.
  void CountStaleOnError();

  // Returns true (and marks the key) when no refresh for `key` is running; the caller must call
  // EndRefresh(key) when done. Guarantees one background refresh per key at a time.
  bool BeginRefresh(const std::string& key);
  void EndRefresh(const std::string& key);

  CacheStats stats() const;
  const ResponseCacheOptions& options() const { return options_; }

 private:
  struct Node {
    std::string key;
    std::shared_ptr<const CachedResponse> value;
    size_t bytes = 0;
  };
  CacheLookup LookupLocked(const std::string& key, bool count);
  void EvictLocked();

  ResponseCacheOptions options_;
  Scheduler& scheduler_;
  mutable std::mutex mu_;
  std::list<Node> lru_;  // front = most recently used
  std::unordered_map<std::string, std::list<Node>::iterator> index_;
  std::unordered_set<std::string> refreshing_;
  CacheStats stats_;
};

// Exposes `cache`'s counters and size in `metrics` with label client=`client`: bffd_cache_requests_total
// {client, result=hit|stale|miss}, bffd_cache_stale_on_error_total, bffd_cache_evictions_total,
// bffd_cache_refreshes_total, bffd_cache_entries, bffd_cache_bytes. Read at scrape time, so the cache's
// own lookups stay as they are; `cache` must outlive every scrape of `metrics`.
void ExportCacheMetrics(const ResponseCache& cache, const std::string& client, MetricsRegistry& metrics);

// Strong ETag of a body: "\"<first 32 hex chars of SHA-256>\"".
std::string StrongEtag(std::string_view body);
// True when an If-None-Match header value matches `etag` ("*", a list, or W/ forms compared weakly).
bool IfNoneMatchMatches(std::string_view if_none_match, std::string_view etag);

}  // namespace bff
