// Tests for the in-memory web session store: lifecycle, idle and absolute expiry, id hygiene, capacity.
#include "security/session_store.h"

#include <atomic>
#include <set>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "common/crypto.h"

namespace bff {
namespace {

constexpr size_t kTokenChars = 43;  // 32 random bytes in unpadded base64url

bool IsBase64Url(const std::string& s) {
  return s.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == std::string::npos;
}

SessionOptions Options() {
  SessionOptions o;
  o.idle_timeout = std::chrono::seconds(100);
  o.absolute_timeout = std::chrono::seconds(1000);
  o.max_sessions = 1000;
  return o;
}

class SessionStoreTest : public ::testing::Test {
 protected:
  int64_t now_ = 1'700'000'000;
  InMemorySessionStore store_{Options(), [this] { return now_; }};
};

TEST_F(SessionStoreTest, CreateTouchDelete) {
  auto created = store_.Create("u-1", "alice");
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_EQ(created->user_id, "u-1");
  EXPECT_EQ(created->username, "alice");
  EXPECT_EQ(created->created_at, now_);
  EXPECT_EQ(created->last_seen, now_);
  EXPECT_EQ(store_.size(), 1u);

  now_ += 5;
  auto touched = store_.Touch(created->id);
  ASSERT_TRUE(touched.has_value());
  EXPECT_EQ(touched->id, created->id);
  EXPECT_EQ(touched->user_id, "u-1");
  EXPECT_EQ(touched->username, "alice");
  EXPECT_EQ(touched->csrf_token, created->csrf_token);
  EXPECT_EQ(touched->created_at, created->created_at);
  EXPECT_EQ(touched->last_seen, now_);

  store_.Delete(created->id);
  EXPECT_FALSE(store_.Touch(created->id).has_value());
  EXPECT_EQ(store_.size(), 0u);
  store_.Delete(created->id);  // deleting twice is harmless
}

TEST_F(SessionStoreTest, CreateNeedsAUserId) {
  auto created = store_.Create("", "nobody");
  ASSERT_FALSE(created.ok());
  EXPECT_EQ(created.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(SessionStoreTest, UnknownAndMalformedIdsAreNotSessions) {
  ASSERT_TRUE(store_.Create("u-1", "alice").ok());
  EXPECT_FALSE(store_.Touch("").has_value());
  EXPECT_FALSE(store_.Touch(Base64UrlEncode(RandomBytes(32))).has_value());
  EXPECT_FALSE(store_.Touch(std::string(100000, 'a')).has_value());
  store_.Delete("not-a-session");
  EXPECT_EQ(store_.size(), 1u);
}

TEST_F(SessionStoreTest, IdleSessionExpiresAtIdleTimeout) {
  auto s = store_.Create("u-1", "alice");
  ASSERT_TRUE(s.ok());
  now_ += 99;
  ASSERT_TRUE(store_.Touch(s->id).has_value());  // activity restarts the idle clock
  now_ += 99;
  ASSERT_TRUE(store_.Touch(s->id).has_value());
  now_ += 100;
  EXPECT_FALSE(store_.Touch(s->id).has_value());
  // Once expired it stays gone, even if the clock were read differently later.
  now_ -= 50;
  EXPECT_FALSE(store_.Touch(s->id).has_value());
}

TEST_F(SessionStoreTest, AbsoluteTimeoutEndsAnActiveSession) {
  auto s = store_.Create("u-1", "alice");
  ASSERT_TRUE(s.ok());
  for (int i = 0; i < 19; ++i) {
    now_ += 50;
    ASSERT_TRUE(store_.Touch(s->id).has_value()) << "at +" << (i + 1) * 50 << "s";
  }
  now_ += 49;  // +999 s
  ASSERT_TRUE(store_.Touch(s->id).has_value());
  now_ += 1;  // +1000 s
  EXPECT_FALSE(store_.Touch(s->id).has_value());
}

TEST_F(SessionStoreTest, IdsAndCsrfTokensAre256BitBase64UrlAndUnique) {
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    auto s = store_.Create("u-" + std::to_string(i), "user");
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(s->id.size(), kTokenChars);
    EXPECT_EQ(s->csrf_token.size(), kTokenChars);
    EXPECT_TRUE(IsBase64Url(s->id)) << s->id;
    EXPECT_TRUE(IsBase64Url(s->csrf_token)) << s->csrf_token;
    EXPECT_NE(s->id, s->csrf_token);
    EXPECT_TRUE(seen.insert(s->id).second);
    EXPECT_TRUE(seen.insert(s->csrf_token).second);
  }
  EXPECT_EQ(store_.size(), 200u);
}

TEST_F(SessionStoreTest, StoreIsKeyedByHashNotByTheRawId) {
  auto s = store_.Create("u-1", "alice");
  ASSERT_TRUE(s.ok());
  // The hash the store uses as its key does not open the session: only the cookie value does.
  EXPECT_FALSE(store_.Touch(HexEncode(Sha256(s->id))).has_value());
  store_.Delete(HexEncode(Sha256(s->id)));
  EXPECT_EQ(store_.size(), 1u);
  // Near misses of the id do not either.
  std::string altered = s->id;
  altered[0] = altered[0] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(store_.Touch(altered).has_value());
  EXPECT_FALSE(store_.Touch(s->id.substr(0, kTokenChars - 1)).has_value());
  ASSERT_TRUE(store_.Touch(s->id).has_value());
  store_.Delete(s->id);
  EXPECT_EQ(store_.size(), 0u);
}

TEST(SessionStoreCapacityTest, OldestSessionsAreDroppedBeyondMaxSessions) {
  int64_t now = 1'700'000'000;
  SessionOptions o = Options();
  o.max_sessions = 3;
  InMemorySessionStore store(o, [&now] { return now; });
  std::vector<Session> sessions;
  for (int i = 0; i < 5; ++i) {
    auto s = store.Create("u-" + std::to_string(i), "user");
    ASSERT_TRUE(s.ok());
    sessions.push_back(*s);
    ++now;
  }
  EXPECT_EQ(store.size(), 3u);
  EXPECT_FALSE(store.Touch(sessions[0].id).has_value());
  EXPECT_FALSE(store.Touch(sessions[1].id).has_value());
  for (int i = 2; i < 5; ++i) {
    auto t = store.Touch(sessions[i].id);
    ASSERT_TRUE(t.has_value()) << i;
    EXPECT_EQ(t->user_id, "u-" + std::to_string(i));
  }
  // A deleted session frees its slot: nothing else is dropped for the next one.
  store.Delete(sessions[2].id);
  ASSERT_TRUE(store.Create("u-5", "user").ok());
  EXPECT_TRUE(store.Touch(sessions[3].id).has_value());
  EXPECT_TRUE(store.Touch(sessions[4].id).has_value());
  EXPECT_EQ(store.size(), 3u);
}

TEST(SessionStoreSweepTest, ExpiredSessionsAreSweptWithoutBeingTouched) {
  int64_t now = 1'700'000'000;
  InMemorySessionStore store(Options(), [&now] { return now; });
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(store.Create("u-" + std::to_string(i), "user").ok());
  auto keep = store.Create("keeper", "user");
  ASSERT_TRUE(keep.ok());
  EXPECT_EQ(store.size(), 11u);
  now += 90;
  ASSERT_TRUE(store.Touch(keep->id).has_value());  // sweeps, but nothing has expired yet
  now += 20;
  // The others have been idle past the timeout, but sweeps run at most once a minute.
  EXPECT_EQ(store.size(), 11u);
  now += 50;  // the other ten idle for 160 s, the keeper for 70 s
  EXPECT_EQ(store.size(), 1u);
  EXPECT_TRUE(store.Touch(keep->id).has_value());
}

TEST(SessionStoreConcurrencyTest, ParallelUseIsSafe) {
  InMemorySessionStore store(Options());
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        auto s = store.Create("u-" + std::to_string(t), "user");
        if (!s.ok()) {
          ++failures;
          continue;
        }
        auto touched = store.Touch(s->id);
        if (!touched || touched->user_id != "u-" + std::to_string(t)) ++failures;
        if (i % 2 == 0) store.Delete(s->id);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(store.size(), 400u);
}

}  // namespace
}  // namespace bff
