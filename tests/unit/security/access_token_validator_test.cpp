// Tests for bearer access token validation: claims, key rotation, refetch throttling, single flight, refresh.
#include "security/access_token_validator.h"

#include <atomic>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "common/crypto.h"
#include "security/internal_credential.h"
#include "security/jwt.h"

namespace bff {
namespace {

using nlohmann::json;
using std::chrono::seconds;

EcSigningKey NewKey() {
  auto key = EcSigningKey::Generate();
  EXPECT_TRUE(key.ok()) << key.status().ToString();
  return std::move(key).value();
}

json Jwks(std::initializer_list<json> keys) { return {{"keys", json::array_t(keys)}}; }

json Claims(int64_t now) {
  return {{"iss", "bff-identity"}, {"aud", "bffd"}, {"sub", "u-1"}, {"name", "Alice"}, {"iat", now}, {"exp", now + 300}};
}

// A JWKS endpoint under the test's control: answers at once, or holds callbacks until told.
class FakeJwks {
 public:
  AccessTokenValidator::JwksFetcher Fetcher() {
    return [this](AccessTokenValidator::JwksCallback cb) {
      std::unique_lock<std::mutex> lock(mu_);
      ++calls_;
      if (hold_) {
        pending_.push_back(std::move(cb));
        return;
      }
      StatusOr<json> answer = answer_;
      lock.unlock();
      cb(std::move(answer));
    };
  }
  void Answer(StatusOr<json> answer) {
    std::lock_guard<std::mutex> lock(mu_);
    answer_ = std::move(answer);
  }
  void Hold(bool hold) {
    std::lock_guard<std::mutex> lock(mu_);
    hold_ = hold;
  }
  // Completes every held fetch with the current answer.
  void Release() {
    std::vector<AccessTokenValidator::JwksCallback> pending;
    StatusOr<json> answer = Unavailable("unset");
    {
      std::lock_guard<std::mutex> lock(mu_);
      pending.swap(pending_);
      answer = answer_;
    }
    for (auto& cb : pending) cb(answer);
  }
  int calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }

 private:
  mutable std::mutex mu_;
  int calls_ = 0;
  bool hold_ = false;
  StatusOr<json> answer_ = Unavailable("identity service down");
  std::vector<AccessTokenValidator::JwksCallback> pending_;
};

class AccessTokenValidatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    jwks_.Answer(Jwks({key_.PublicJwk()}));
    validator_ = AccessTokenValidator::Create(AccessTokenOptions{}, jwks_.Fetcher(), clock_);
  }
  void TearDown() override { validator_->Stop(); }

  // Validates and returns the answer, which must have been given before Validate returned.
  StatusOr<AuthenticatedUser> ValidateNow(std::string_view header) {
    std::optional<StatusOr<AuthenticatedUser>> result;
    validator_->Validate(header, [&](StatusOr<AuthenticatedUser> r) { result.emplace(std::move(r)); });
    if (!result) return Internal("no inline answer");
    return std::move(*result);
  }

  std::string Bearer(const EcSigningKey& key, const json& claims) { return "Bearer " + key.Sign(claims); }

  int64_t now_ = UnixNow();
  ManualScheduler clock_;
  FakeJwks jwks_;
  EcSigningKey key_ = NewKey();
  std::shared_ptr<AccessTokenValidator> validator_;
};

TEST_F(AccessTokenValidatorTest, ValidTokenGivesTheUser) {
  validator_->Start();
  auto user = ValidateNow(Bearer(key_, Claims(now_)));
  ASSERT_TRUE(user.ok()) << user.status().ToString();
  EXPECT_EQ(user->user_id, "u-1");
  EXPECT_EQ(user->name, "Alice");
  EXPECT_EQ(user->expires_at, now_ + 300);
  EXPECT_EQ(validator_->fetches(), 1u);
  // The scheme is case-insensitive.
  EXPECT_TRUE(ValidateNow("bearer " + key_.Sign(Claims(now_))).ok());
  EXPECT_TRUE(ValidateNow("BEARER " + key_.Sign(Claims(now_))).ok());
  EXPECT_EQ(validator_->fetches(), 1u);
}

// exp 1e308 is a valid JSON number and a far-future expiry; converting it to int64 unclamped was
// undefined behaviour (on x86 a negative expiry).
TEST_F(AccessTokenValidatorTest, FarFutureExpiryIsClamped) {
  validator_->Start();
  json claims = Claims(now_);
  claims["exp"] = 1e308;
  auto user = ValidateNow(Bearer(key_, claims));
  ASSERT_TRUE(user.ok()) << user.status().ToString();
  EXPECT_GT(user->expires_at, now_);
}

TEST_F(AccessTokenValidatorTest, FirstValidationFetchesWhenNotStarted) {
  auto user = ValidateNow(Bearer(key_, Claims(now_)));
  ASSERT_TRUE(user.ok()) << user.status().ToString();
  EXPECT_EQ(validator_->fetches(), 1u);
}

TEST_F(AccessTokenValidatorTest, RejectsExpiredWrongAudienceWrongIssuerAndMissingSubject) {
  validator_->Start();
  json expired = Claims(now_);
  expired["exp"] = now_ - 3600;
  json audience = Claims(now_);
  audience["aud"] = "someone-else";
  json issuer = Claims(now_);
  issuer["iss"] = "evil-identity";
  json no_sub = Claims(now_);
  no_sub.erase("sub");
  for (const json& claims : {expired, audience, issuer, no_sub}) {
    auto r = ValidateNow(Bearer(key_, claims));
    ASSERT_FALSE(r.ok()) << claims.dump();
    EXPECT_EQ(r.status().code(), StatusCode::kUnauthenticated) << claims.dump();
  }
  EXPECT_EQ(validator_->fetches(), 1u);
}

TEST_F(AccessTokenValidatorTest, TamperedSignatureIsRejected) {
  validator_->Start();
  std::string token = key_.Sign(Claims(now_));
  token.back() = token.back() == 'A' ? 'B' : 'A';
  auto r = ValidateNow("Bearer " + token);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnauthenticated);
}

TEST_F(AccessTokenValidatorTest, RotatedKeyIsAcceptedAfterOneRefetch) {
  validator_->Start();
  ASSERT_EQ(validator_->fetches(), 1u);
  EcSigningKey rotated = NewKey();
  jwks_.Answer(Jwks({key_.PublicJwk(), rotated.PublicJwk()}));
  clock_.Advance(seconds(10));  // min_refetch_interval since the first fetch

  auto user = ValidateNow(Bearer(rotated, Claims(now_)));
  ASSERT_TRUE(user.ok()) << user.status().ToString();
  EXPECT_EQ(user->user_id, "u-1");
  EXPECT_EQ(validator_->fetches(), 2u);
  // Both keys are now known: no further fetches.
  EXPECT_TRUE(ValidateNow(Bearer(rotated, Claims(now_))).ok());
  EXPECT_TRUE(ValidateNow(Bearer(key_, Claims(now_))).ok());
  EXPECT_EQ(validator_->fetches(), 2u);
  EXPECT_EQ(jwks_.calls(), 2);
}

TEST_F(AccessTokenValidatorTest, UnknownKidWithinRefetchIntervalFailsWithoutFetching) {
  validator_->Start();
  EcSigningKey stranger = NewKey();
  clock_.Advance(seconds(10) - std::chrono::nanoseconds(1));
  auto r = ValidateNow(Bearer(stranger, Claims(now_)));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(validator_->fetches(), 1u);

  clock_.Advance(std::chrono::nanoseconds(1));
  r = ValidateNow(Bearer(stranger, Claims(now_)));
  EXPECT_EQ(r.status().code(), StatusCode::kUnauthenticated) << "still unknown after the refetch";
  EXPECT_EQ(validator_->fetches(), 2u);
  r = ValidateNow(Bearer(stranger, Claims(now_)));
  EXPECT_EQ(r.status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(validator_->fetches(), 2u) << "throttled again";
}

TEST_F(AccessTokenValidatorTest, NoKeySetEverFetchedIsUnavailable) {
  jwks_.Answer(Unavailable("identity service down"));
  validator_->Start();
  ASSERT_EQ(validator_->fetches(), 1u);
  auto r = ValidateNow(Bearer(key_, Claims(now_)));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(validator_->fetches(), 1u) << "a failing identity service is not asked on every request";

  clock_.Advance(seconds(10));
  r = ValidateNow(Bearer(key_, Claims(now_)));
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(validator_->fetches(), 2u);

  // A document that is not a key set counts as a failure too.
  jwks_.Answer(json{{"nope", 1}});
  clock_.Advance(seconds(10));
  r = ValidateNow(Bearer(key_, Claims(now_)));
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(validator_->fetches(), 3u);

  // Recovery: the next allowed fetch succeeds and the token is accepted.
  jwks_.Answer(Jwks({key_.PublicJwk()}));
  clock_.Advance(seconds(10));
  r = ValidateNow(Bearer(key_, Claims(now_)));
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(validator_->fetches(), 4u);
}

TEST_F(AccessTokenValidatorTest, FailedRefreshKeepsTheKnownKeys) {
  validator_->Start();
  jwks_.Answer(Unavailable("identity service down"));
  clock_.Advance(seconds(600));
  ASSERT_EQ(validator_->fetches(), 2u);
  EXPECT_TRUE(ValidateNow(Bearer(key_, Claims(now_))).ok());
}

TEST_F(AccessTokenValidatorTest, ConcurrentValidationsShareThePendingFetch) {
  jwks_.Hold(true);
  validator_->Start();
  ASSERT_EQ(jwks_.calls(), 1);

  constexpr int kCallers = 20;
  std::mutex mu;
  std::vector<StatusOr<AuthenticatedUser>> results;
  std::vector<std::thread> threads;
  for (int i = 0; i < kCallers; ++i) {
    threads.emplace_back([&, i] {
      json claims = Claims(now_);
      claims["sub"] = "u-" + std::to_string(i);
      validator_->Validate(Bearer(key_, claims), [&](StatusOr<AuthenticatedUser> r) {
        std::lock_guard<std::mutex> lock(mu);
        results.push_back(std::move(r));
      });
    });
  }
  for (auto& t : threads) t.join();
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_TRUE(results.empty()) << "nobody is answered before the keys arrive";
  }
  EXPECT_EQ(jwks_.calls(), 1);

  jwks_.Release();
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_EQ(results.size(), static_cast<size_t>(kCallers));
  std::set<std::string> users;
  for (const auto& r : results) {
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    users.insert(r->user_id);
  }
  EXPECT_EQ(users.size(), static_cast<size_t>(kCallers));
  EXPECT_EQ(jwks_.calls(), 1);
  EXPECT_EQ(validator_->fetches(), 1u);
}

TEST_F(AccessTokenValidatorTest, WaitersGetUnavailableWhenThePendingFirstFetchFails) {
  jwks_.Hold(true);
  jwks_.Answer(Unavailable("identity service down"));
  validator_->Start();
  std::optional<StatusOr<AuthenticatedUser>> result;
  validator_->Validate(Bearer(key_, Claims(now_)), [&](StatusOr<AuthenticatedUser> r) { result.emplace(r); });
  EXPECT_FALSE(result.has_value());
  jwks_.Release();
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->status().code(), StatusCode::kUnavailable);
}

TEST_F(AccessTokenValidatorTest, MalformedHeadersAreRejectedWithoutFetching) {
  const std::string token = key_.Sign(Claims(now_));
  const std::string too_big = "Bearer " + std::string(8 * 1024 + 1, 'a');
  json hs256_header = {{"alg", "HS256"}, {"typ", "JWT"}, {"kid", key_.kid()}};
  const std::string hs256 = Base64UrlEncode(hs256_header.dump()) + token.substr(token.find('.'));
  json no_kid_header = {{"alg", "ES256"}, {"typ", "JWT"}};
  const std::string no_kid = Base64UrlEncode(no_kid_header.dump()) + token.substr(token.find('.'));
  for (const std::string& header :
       {std::string(), std::string("Basic x"), std::string("Basic ") + token, std::string("Bearer"),
        std::string("Bearer "), std::string("Bearer a b"), "Bearer " + token + " extra", "Bearer" + token,
        "Token " + token, too_big, std::string("Bearer not-a-jwt"), std::string("Bearer a.b.c"), "Bearer " + hs256,
        "Bearer " + no_kid}) {
    auto r = ValidateNow(header);
    ASSERT_FALSE(r.ok()) << header.substr(0, 80);
    EXPECT_EQ(r.status().code(), StatusCode::kUnauthenticated) << header.substr(0, 80);
  }
  EXPECT_EQ(validator_->fetches(), 0u);
  EXPECT_EQ(jwks_.calls(), 0);
}

TEST_F(AccessTokenValidatorTest, RefreshesPeriodicallyUntilStopped) {
  validator_->Start();
  validator_->Start();  // a second Start changes nothing
  ASSERT_EQ(validator_->fetches(), 1u);
  clock_.Advance(seconds(600) - std::chrono::nanoseconds(1));
  EXPECT_EQ(validator_->fetches(), 1u);
  clock_.Advance(std::chrono::nanoseconds(1));
  EXPECT_EQ(validator_->fetches(), 2u);
  clock_.Advance(seconds(600));
  EXPECT_EQ(validator_->fetches(), 3u);

  // The periodic refresh picks up a rotated key without any refetch on demand.
  EcSigningKey rotated = NewKey();
  jwks_.Answer(Jwks({rotated.PublicJwk()}));
  clock_.Advance(seconds(600));
  EXPECT_EQ(validator_->fetches(), 4u);
  EXPECT_TRUE(ValidateNow(Bearer(rotated, Claims(now_))).ok());
  EXPECT_EQ(validator_->fetches(), 4u);

  validator_->Stop();
  EXPECT_EQ(clock_.pending_timers(), 0u);
  clock_.Advance(seconds(6000));
  EXPECT_EQ(validator_->fetches(), 4u);
  EXPECT_EQ(jwks_.calls(), 4);
}

TEST(AccessTokenValidatorLifetimeTest, DroppedValidatorIsFreedAndItsTimerDoesNothing) {
  ManualScheduler clock;
  FakeJwks jwks;
  EcSigningKey key = NewKey();
  jwks.Answer(Jwks({key.PublicJwk()}));
  // The fetcher holds a sentinel: it is freed only when the validator's whole state is.
  auto sentinel = std::make_shared<int>(0);
  std::weak_ptr<int> state_alive = sentinel;
  AccessTokenValidator::JwksFetcher fetcher = [inner = jwks.Fetcher(), sentinel](AccessTokenValidator::JwksCallback cb) {
    inner(std::move(cb));
  };
  sentinel.reset();
  auto validator = AccessTokenValidator::Create(AccessTokenOptions{}, fetcher, clock);
  fetcher = nullptr;
  validator->Start();
  std::weak_ptr<AccessTokenValidator> weak = validator;
  validator.reset();
  EXPECT_TRUE(weak.expired());
  EXPECT_TRUE(state_alive.expired()) << "a pending refresh timer must not keep the state alive";
  clock.Advance(seconds(3600));
  EXPECT_EQ(jwks.calls(), 1);
}

}  // namespace
}  // namespace bff
