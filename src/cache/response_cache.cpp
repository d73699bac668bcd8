// LRU response cache with TTL, stale-while-revalidate, stale-if-error, per-key refresh guard and ETag helpers.
#include "cache/response_cache.h"

#include <utility>

#include "common/crypto.h"

namespace bff {
namespace {

// Hex characters of SHA-256 kept in an ETag: 128 bits is ample to tell representations apart.
constexpr size_t kEtagHexChars = 32;

size_t EntryBytes(const std::string& key, const CachedResponse& value) {
  return key.size() + value.body.size() + value.etag.size();
}

bool IsOws(char c) { return c == ' ' || c == '\t'; }

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && IsOws(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsOws(s.back())) s.remove_suffix(1);
  return s;
}

// The opaque part of an entity tag (between the quotes), ignoring a weak prefix: what the weak
// comparison of RFC 9110 8.8.3.2 compares. A value that is not a quoted tag is compared as given.
std::string_view OpaqueTag(std::string_view tag) {
  tag = TrimOws(tag);
  if (tag.size() >= 2 && tag[0] == 'W' && tag[1] == '/') tag.remove_prefix(2);
  if (tag.size() >= 2 && tag.front() == '"' && tag.back() == '"') return tag.substr(1, tag.size() - 2);
  return tag;
}

}  // namespace

ResponseCache::ResponseCache(ResponseCacheOptions options, Scheduler& scheduler)
    : options_(options), scheduler_(scheduler) {}

CacheLookup ResponseCache::Get(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  return LookupLocked(key, true);
}

CacheLookup ResponseCache::Peek(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  return LookupLocked(key, false);
}

CacheLookup ResponseCache::LookupLocked(const std::string& key, bool count) {
  CacheLookup result;
  auto it = index_.find(key);
  if (it == index_.end()) {
    if (count) ++stats_.misses;
    return result;
  }
  auto node = it->second;
  const Duration age = scheduler_.Now() - node->value->stored_at;
  const Duration stale_until = options_.ttl + options_.stale_while_revalidate;
  const Duration keep_until = options_.ttl + options_.stale_if_error;
  if (age < options_.ttl) {
    result.freshness = Freshness::kFresh;
  } else if (age < stale_until) {
    result.freshness = Freshness::kStale;
  } else if (age < keep_until) {
    result.freshness = Freshness::kExpired;
  } else {
    // Too old even for an origin failure: free the memory now rather than wait for the LRU.
    stats_.bytes -= node->bytes;
    index_.erase(it);
    lru_.erase(node);
    stats_.entries = index_.size();
    if (count) ++stats_.misses;
    return result;
  }
  if (count) {
    if (result.freshness == Freshness::kFresh) {
      ++stats_.hits;
    } else if (result.freshness == Freshness::kStale) {
      ++stats_.stale_hits;
    } else {
      ++stats_.misses;
    }
  }
  lru_.splice(lru_.begin(), lru_, node);
  result.entry = node->value;
  result.age = age;
  return result;
}

void ResponseCache::Put(const std::string& key, std::string body, std::string content_type) {
  // Hashing and allocation happen before the lock so readers are not held up by them.
  auto value = std::make_shared<CachedResponse>();
  value->etag = StrongEtag(body);
  value->body = std::move(body);
  value->content_type = std::move(content_type);
  value->stored_at = scheduler_.Now();
  const size_t bytes = EntryBytes(key, *value);

  // Declared before the lock so a replaced body is freed after the lock is released.
  std::shared_ptr<const CachedResponse> replaced;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(key);
  if (bytes > options_.max_bytes || options_.max_entries == 0) {
    // Cannot be stored; an older copy of the same key must not outlive the newer answer either.
    if (it != index_.end()) {
      stats_.bytes -= it->second->bytes;
      replaced = std::move(it->second->value);
      lru_.erase(it->second);
      index_.erase(it);
      stats_.entries = index_.size();
    }
    return;
  }
  if (it != index_.end()) {
    auto node = it->second;
    stats_.bytes = stats_.bytes - node->bytes + bytes;
    replaced = std::exchange(node->value, std::move(value));
    node->bytes = bytes;
    lru_.splice(lru_.begin(), lru_, node);
  } else {
    lru_.push_front(Node{key, std::move(value), bytes});
    index_.emplace(key, lru_.begin());
    stats_.bytes += bytes;
  }
  EvictLocked();
  stats_.entries = index_.size();
}

void ResponseCache::EvictLocked() {
  while (!lru_.empty() && (index_.size() > options_.max_entries || stats_.bytes > options_.max_bytes)) {
    Node& victim = lru_.back();
    stats_.bytes -= victim.bytes;
    index_.erase(victim.key);
    lru_.pop_back();
    ++stats_.evictions;
  }
}

void ResponseCache::Invalidate(const std::string& key) {
  std::shared_ptr<const CachedResponse> dropped;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(key);
  if (it == index_.end()) return;
  stats_.bytes -= it->second->bytes;
  dropped = std::move(it->second->value);
  lru_.erase(it->second);
  index_.erase(it);
  stats_.entries = index_.size();
}

void ResponseCache::CountStaleOnError() {
  std::lock_guard<std::mutex> lock(mu_);
  ++stats_.stale_on_error;
}

bool ResponseCache::BeginRefresh(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!refreshing_.insert(key).second) return false;
  ++stats_.refreshes;
  return true;
}

void ResponseCache::EndRefresh(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  refreshing_.erase(key);
}

CacheStats ResponseCache::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void ExportCacheMetrics(const ResponseCache& cache, const std::string& client, MetricsRegistry& metrics) {
  const ResponseCache* c = &cache;
  auto& requests = metrics.Counters("bffd_cache_requests_total",
                                    "Response cache lookups by result: hit (fresh), stale (served while refreshing), "
                                    "miss (absent or expired).",
                                    {"client", "result"});
  requests.AddCallback({client, "hit"}, [c] { return static_cast<double>(c->stats().hits); });
  requests.AddCallback({client, "stale"}, [c] { return static_cast<double>(c->stats().stale_hits); });
  requests.AddCallback({client, "miss"}, [c] { return static_cast<double>(c->stats().misses); });
  metrics.Counters("bffd_cache_stale_on_error_total", "Expired cached copies served because the origin failed.", {"client"})
      .AddCallback({client}, [c] { return static_cast<double>(c->stats().stale_on_error); });
  metrics.Counters("bffd_cache_evictions_total", "Entries evicted to stay within the cache's entry and byte limits.", {"client"})
      .AddCallback({client}, [c] { return static_cast<double>(c->stats().evictions); });
  metrics.Counters("bffd_cache_refreshes_total", "Background refreshes of stale entries started.", {"client"})
      .AddCallback({client}, [c] { return static_cast<double>(c->stats().refreshes); });
  metrics.Gauges("bffd_cache_entries", "Entries in the response cache.", {"client"})
      .AddCallback({client}, [c] { return static_cast<double>(c->stats().entries); });
  metrics.Gauges("bffd_cache_bytes", "Bytes held by the response cache (keys, bodies, ETags).", {"client"})
      .AddCallback({client}, [c] { return static_cast<double>(c->stats().bytes); });
}

std::string StrongEtag(std::string_view body) {
  static constexpr char kHex[] = "0123456789abcdef";
  const std::string digest = Sha256(body);
  std::string etag;
  etag.reserve(kEtagHexChars + 2);
  etag.push_back('"');
  for (size_t i = 0; i < kEtagHexChars / 2; ++i) {
    const auto byte = static_cast<unsigned char>(digest[i]);
    etag.push_back(kHex[byte >> 4]);
    etag.push_back(kHex[byte & 15]);
  }
  etag.push_back('"');
  return etag;
}

bool IfNoneMatchMatches(std::string_view if_none_match, std::string_view etag) {
  const std::string_view value = TrimOws(if_none_match);
  if (value == "*") return true;
  const std::string_view current = OpaqueTag(etag);
  if (current.empty()) return false;
  size_t i = 0;
  const size_t n = value.size();
  while (i < n) {
    while (i < n && (IsOws(value[i]) || value[i] == ',')) ++i;
    if (i >= n) break;
    if (value.compare(i, 2, "W/") == 0) i += 2;
    if (i < n && value[i] == '"') {
      // Commas are legal inside an entity tag, so the list is split by quotes, not by commas.
      const size_t close = value.find('"', i + 1);
      if (close == std::string_view::npos) return false;
      if (value.substr(i + 1, close - i - 1) == current) return true;
      i = close + 1;
      while (i < n && IsOws(value[i])) ++i;
      if (i >= n || value[i] == ',') continue;
    }
    // Not an entity tag: skip this member rather than reject the whole header.
    const size_t comma = value.find(',', i);
    if (comma == std::string_view::npos) break;
    i = comma + 1;
  }
  return false;
}

}  // namespace bff
