// In-process web session store: random cookie ids kept only as SHA-256 hashes, idle and absolute expiry.
#include "security/session_store.h"

#include <utility>

#include "common/crypto.h"

namespace bff {
namespace {

constexpr size_t kSessionIdBytes = 32;  // 256 bits: unguessable, 43 base64url characters
constexpr size_t kCsrfTokenBytes = 32;
// Every id we issue is 43 characters; a longer cookie cannot be ours and is not worth hashing.
constexpr size_t kMaxIdBytes = 256;
constexpr int64_t kSweepIntervalS = 60;

int64_t WallClockUnix() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string HashId(std::string_view id) { return HexEncode(Sha256(id)); }

}  // namespace

InMemorySessionStore::InMemorySessionStore(SessionOptions options, std::function<int64_t()> now_unix)
    : options_(options), now_(now_unix ? std::move(now_unix) : WallClockUnix) {}

StatusOr<Session> InMemorySessionStore::Create(const std::string& user_id, const std::string& username) {
  if (user_id.empty()) return InvalidArgument("a session needs a user id");
  Session session;
  session.id = Base64UrlEncode(RandomBytes(kSessionIdBytes));
  session.csrf_token = Base64UrlEncode(RandomBytes(kCsrfTokenBytes));
  session.user_id = user_id;
  session.username = username;
  const std::string hash = HashId(session.id);
  const int64_t now = now_();
  session.created_at = now;
  session.last_seen = now;

  Session stored = session;
  stored.id.clear();  // the raw cookie value never rests in the store
  std::lock_guard<std::mutex> lock(mu_);
  SweepLocked(now);
  const size_t limit = options_.max_sessions > 0 ? options_.max_sessions : 1;
  while (by_hash_.size() >= limit && !by_age_.empty()) {
    auto oldest = by_age_.begin();
    by_hash_.erase(oldest->second);
    by_age_.erase(oldest);
  }
  by_age_.emplace(now, hash);
  by_hash_.emplace(hash, std::move(stored));
  return session;
}

std::optional<Session> InMemorySessionStore::Touch(const std::string& id) {
  if (id.empty() || id.size() > kMaxIdBytes) return std::nullopt;
  const std::string hash = HashId(id);
  const int64_t now = now_();
  std::lock_guard<std::mutex> lock(mu_);
  SweepLocked(now);
  auto it = by_hash_.find(hash);
  if (it == by_hash_.end()) return std::nullopt;
  Session& session = it->second;
  if (now - session.last_seen >= options_.idle_timeout.count() ||
      now - session.created_at >= options_.absolute_timeout.count()) {
    by_age_.erase({session.created_at, hash});
    by_hash_.erase(it);
    return std::nullopt;
  }
  session.last_seen = now;
  Session out = session;
  out.id = id;
  return out;
}

void InMemorySessionStore::Delete(const std::string& id) {
  if (id.empty() || id.size() > kMaxIdBytes) return;
  const std::string hash = HashId(id);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_hash_.find(hash);
  if (it == by_hash_.end()) return;
  by_age_.erase({it->second.created_at, hash});
  by_hash_.erase(it);
}

size_t InMemorySessionStore::size() {
  const int64_t now = now_();
  std::lock_guard<std::mutex> lock(mu_);
  SweepLocked(now);
  return by_hash_.size();
}

void InMemorySessionStore::SweepLocked(int64_t now) {
  // Expired sessions are also dropped lazily by Touch; the sweep bounds the memory held by abandoned ones.
  if (now - last_sweep_ < kSweepIntervalS) return;
  last_sweep_ = now;
  for (auto it = by_hash_.begin(); it != by_hash_.end();) {
    const Session& s = it->second;
    if (now - s.last_seen >= options_.idle_timeout.count() || now - s.created_at >= options_.absolute_timeout.count()) {
      by_age_.erase({s.created_at, it->first});
      it = by_hash_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace bff
