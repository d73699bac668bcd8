// Server-side web sessions behind a small interface (in-process now; a shared store can replace it).
//
// Session ids are 256-bit random values (base64url) handed to the browser in an HttpOnly cookie; the
// store keys sessions by SHA-256 of the id, so a memory dump of the store does not yield usable cookies.
// Each session carries its own CSRF token. Sessions end after `idle_timeout` without use or
// `absolute_timeout` after creation, whichever comes first.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "common/status.h"

namespace bff {

struct Session {
  std::string id;          // the cookie value (only returned by Create)
  std::string user_id;
  std::string username;
  std::string csrf_token;  // 256-bit random, base64url
  int64_t created_at = 0;  // unix seconds
  int64_t last_seen = 0;
};

struct SessionOptions {
  std::chrono::seconds idle_timeout{1800};
  std::chrono::seconds absolute_timeout{12 * 3600};
  size_t max_sessions = 100000;  // oldest sessions are dropped beyond this
};

class SessionStore {
 public:
  virtual ~SessionStore() = default;
  virtual StatusOr<Session> Create(const std::string& user_id, const std::string& username) = 0;
  // Returns the live session for a cookie value and refreshes its idle timer; nullopt when unknown or expired.
  virtual std::optional<Session> Touch(const std::string& id) = 0;
  virtual void Delete(const std::string& id) = 0;
  virtual size_t size() = 0;
};

class InMemorySessionStore : public SessionStore {
 public:
  // `now_unix` is injectable for tests; defaults to the wall clock.
  explicit InMemorySessionStore(SessionOptions options, std::function<int64_t()> now_unix = nullptr);
  StatusOr<Session> Create(const std::string& user_id, const std::string& username) override;
  std::optional<Session> Touch(const std::string& id) override;
  void Delete(const std::string& id) override;
  size_t size() override;

 private:
  void SweepLocked(int64_t now);
  SessionOptions options_;
  std::function<int64_t()> now_;
  std::mutex mu_;
  std::map<std::string, Session> by_hash_;  // key: SHA-256(id) hex; Session.id is left empty
  std::set<std::pair<int64_t, std::string>> by_age_;  // (created_at, hash): finds the oldest without a scan
  int64_t last_sweep_ = 0;
};

}  // namespace bff
