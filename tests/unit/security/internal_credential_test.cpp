// Tests for the token-exchange credential: minting, caching, verification and the shared secret file.
#include "security/internal_credential.h"

#include <sys/stat.h>

#include <fstream>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/crypto.h"
#include "security/jwt.h"
#include "support/test_support.h"

namespace bff {
namespace {

constexpr char kSecret[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

std::string Segment(const nlohmann::json& j) { return Base64UrlEncode(j.dump()); }

// A correctly signed HS256 token with arbitrary header and claims, to probe the verifier's checks.
std::string SignHs256(const std::string& secret, const nlohmann::json& header, const nlohmann::json& claims) {
  std::string input = Segment(header) + "." + Segment(claims);
  return input + "." + Base64UrlEncode(HmacSha256(secret, input));
}

nlohmann::json ValidClaims(int64_t now) {
  return {{"iss", "bffd"},   {"aud", "bff-domain"}, {"sub", "user-1"}, {"act", {{"sub", "web"}}},
          {"client", "web"}, {"iat", now},          {"exp", now + 60}, {"jti", "j1"}};
}

nlohmann::json ClaimsOf(const std::string& token) {
  auto decoded = DecodeJwtUnverified(token);
  EXPECT_TRUE(decoded.ok()) << decoded.status().ToString();
  return decoded.ok() ? decoded->second : nlohmann::json();
}

TEST(InternalCredentialTest, RoundTripCarriesSubjectClientAndLifetime) {
  CredentialMinter minter(kSecret, std::chrono::seconds(60));
  CredentialVerifier verifier(kSecret);
  std::string token = minter.Mint("user-42", "mobile");

  auto identity = verifier.Verify(token, UnixNow());
  ASSERT_TRUE(identity.ok()) << identity.status().ToString();
  EXPECT_EQ(identity->subject, "user-42");
  EXPECT_EQ(identity->client, "mobile");
  EXPECT_EQ(identity->expires_at - identity->issued_at, 60);

  nlohmann::json claims = ClaimsOf(token);
  EXPECT_EQ(claims["iss"], "bffd");
  EXPECT_EQ(claims["aud"], "bff-domain");
  EXPECT_EQ(claims["act"]["sub"], "mobile");
  EXPECT_TRUE(claims["jti"].is_string());
}

TEST(InternalCredentialTest, EmptySubjectForTheDaemonsOwnCalls) {
  CredentialMinter minter(kSecret);
  auto identity = CredentialVerifier(kSecret).Verify(minter.Mint("", "bffd"), UnixNow());
  ASSERT_TRUE(identity.ok()) << identity.status().ToString();
  EXPECT_EQ(identity->subject, "");
  EXPECT_EQ(identity->client, "bffd");
}

TEST(InternalCredentialTest, ExpiredCredentialIsRefusedOutsideTheLeeway) {
  CredentialMinter minter(kSecret, std::chrono::seconds(60));
  CredentialVerifier verifier(kSecret);
  std::string token = minter.Mint("user-1", "web");
  int64_t exp = ClaimsOf(token)["exp"].get<int64_t>();

  EXPECT_TRUE(verifier.Verify(token, exp + 5, /*leeway_s=*/5).ok());
  auto late = verifier.Verify(token, exp + 6, /*leeway_s=*/5);
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.status().code(), StatusCode::kUnauthenticated);
  EXPECT_FALSE(verifier.Verify(token, exp + 1, /*leeway_s=*/0).ok());
}

TEST(InternalCredentialTest, CredentialFromTheFutureIsRefused) {
  int64_t now = UnixNow();
  std::string token = SignHs256(kSecret, {{"alg", "HS256"}, {"typ", "JWT"}}, ValidClaims(now + 3600));
  EXPECT_FALSE(CredentialVerifier(kSecret).Verify(token, now).ok());
}

TEST(InternalCredentialTest, WrongSecretIsRefused) {
  std::string token = CredentialMinter(kSecret).Mint("user-1", "web");
  auto result = CredentialVerifier(std::string(kSecret) + "x").Verify(token, UnixNow());
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kUnauthenticated);
  EXPECT_FALSE(CredentialVerifier("").Verify(token, UnixNow()).ok());
}

TEST(InternalCredentialTest, TamperedPayloadIsRefused) {
  std::string token = CredentialMinter(kSecret).Mint("user-1", "web");
  size_t dot1 = token.find('.'), dot2 = token.rfind('.');
  nlohmann::json claims = ClaimsOf(token);
  claims["sub"] = "admin";
  std::string forged = token.substr(0, dot1 + 1) + Segment(claims) + token.substr(dot2);
  EXPECT_FALSE(CredentialVerifier(kSecret).Verify(forged, UnixNow()).ok());

  claims = ClaimsOf(token);
  claims["exp"] = claims["exp"].get<int64_t>() + 86400;
  forged = token.substr(0, dot1 + 1) + Segment(claims) + token.substr(dot2);
  EXPECT_FALSE(CredentialVerifier(kSecret).Verify(forged, UnixNow()).ok());
}

TEST(InternalCredentialTest, TamperedSignatureIsRefused) {
  std::string token = CredentialMinter(kSecret).Mint("user-1", "web");
  std::string flipped = token;
  flipped[flipped.size() - 3] = flipped[flipped.size() - 3] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(CredentialVerifier(kSecret).Verify(flipped, UnixNow()).ok());
  std::string stripped = token.substr(0, token.rfind('.') + 1);
  EXPECT_FALSE(CredentialVerifier(kSecret).Verify(stripped, UnixNow()).ok());
}

TEST(InternalCredentialTest, AlgNoneIsRefusedEvenWithAValidMac) {
  int64_t now = UnixNow();
  nlohmann::json none = {{"alg", "none"}, {"typ", "JWT"}};
  std::string unsigned_token = Segment(none) + "." + Segment(ValidClaims(now)) + ".";
  EXPECT_FALSE(CredentialVerifier(kSecret).Verify(unsigned_token, now).ok());
  // Even a correct MAC does not make a token that names another algorithm acceptable.
  EXPECT_FALSE(CredentialVerifier(kSecret).Verify(SignHs256(kSecret, none, ValidClaims(now)), now).ok());
  EXPECT_FALSE(CredentialVerifier(kSecret).Verify(SignHs256(kSecret, {{"alg", "HS512"}}, ValidClaims(now)), now).ok());
  // The control: the same claims under HS256 are accepted, so the refusals above are about alg alone.
  EXPECT_TRUE(CredentialVerifier(kSecret).Verify(SignHs256(kSecret, {{"alg", "HS256"}}, ValidClaims(now)), now).ok());
}

TEST(InternalCredentialTest, WrongIssuerAudienceOrMissingClaimsAreRefused) {
  int64_t now = UnixNow();
  nlohmann::json header = {{"alg", "HS256"}, {"typ", "JWT"}};
  CredentialVerifier verifier(kSecret);

  auto with = [&](const char* key, nlohmann::json value) {
    nlohmann::json c = ValidClaims(now);
    c[key] = std::move(value);
    return SignHs256(kSecret, header, c);
  };
  auto without = [&](const char* key) {
    nlohmann::json c = ValidClaims(now);
    c.erase(key);
    return SignHs256(kSecret, header, c);
  };
  EXPECT_FALSE(verifier.Verify(with("iss", "someone-else"), now).ok());
  EXPECT_FALSE(verifier.Verify(with("aud", "other-service"), now).ok());
  EXPECT_TRUE(verifier.Verify(with("aud", {"other-service", "bff-domain"}), now).ok());
  EXPECT_FALSE(verifier.Verify(with("exp", "tomorrow"), now).ok());
  EXPECT_FALSE(verifier.Verify(with("sub", 42), now).ok());
  EXPECT_FALSE(verifier.Verify(without("exp"), now).ok());
  EXPECT_FALSE(verifier.Verify(without("client"), now).ok());
  EXPECT_FALSE(verifier.Verify(without("iss"), now).ok());
  EXPECT_FALSE(verifier.Verify(with("nbf", now + 600), now).ok());
}

TEST(InternalCredentialTest, MalformedTokensAreRefusedWithoutThrowing) {
  CredentialVerifier verifier(kSecret);
  int64_t now = UnixNow();
  std::string valid = CredentialMinter(kSecret).Mint("u", "web");
  const std::vector<std::string> bad = {
      "",
      ".",
      "..",
      "a.b",
      "a.b.c.d",
      "not a token",
      valid + ".extra",
      valid + "=",
      Base64UrlEncode("[1,2]") + "." + Base64UrlEncode("{}") + ".",
      Base64UrlEncode("{") + "." + Base64UrlEncode("{}") + ".",
      Base64UrlEncode("{\"alg\":\"HS256\"}") + "." + Base64UrlEncode("null") + ".",
      Base64UrlEncode("{\"alg\":\"HS256\"}") + "." + Base64UrlEncode(std::string("\xff\xfe", 2)) + ".",
      std::string(100000, 'A') + "..",
      std::string("\0.\0.\0", 5),
  };
  for (const auto& token : bad) {
    auto result = verifier.Verify(token, now);
    ASSERT_FALSE(result.ok()) << token.substr(0, 80);
    EXPECT_EQ(result.status().code(), StatusCode::kUnauthenticated);
  }
}

TEST(InternalCredentialTest, MinterReusesACredentialWithinHalfItsLifetime) {
  CredentialMinter minter(kSecret, std::chrono::seconds(3600));
  std::string first = minter.Mint("user-1", "web");
  EXPECT_EQ(minter.Mint("user-1", "web"), first);
  EXPECT_NE(minter.Mint("user-2", "web"), first);
  EXPECT_NE(minter.Mint("user-1", "mobile"), first);
  EXPECT_EQ(minter.Mint("user-1", "web"), first);
}

TEST(InternalCredentialTest, MinterDoesNotReuseWhenHalfTheLifetimeIsGone) {
  // With no lifetime at all, "half the lifetime" is already over at minting time.
  CredentialMinter minter(kSecret, std::chrono::seconds(0));
  std::string first = minter.Mint("user-1", "web");
  std::string second = minter.Mint("user-1", "web");
  EXPECT_NE(first, second);
  EXPECT_NE(ClaimsOf(first)["jti"], ClaimsOf(second)["jti"]);
}

TEST(InternalCredentialTest, ConcurrentMintingYieldsValidCredentials) {
  CredentialMinter minter(kSecret);
  CredentialVerifier verifier(kSecret);
  std::vector<std::thread> threads;
  std::vector<std::vector<std::string>> tokens(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) tokens[t].push_back(minter.Mint("user-" + std::to_string(i % 7), "iot"));
    });
  }
  for (auto& th : threads) th.join();
  int64_t now = UnixNow();
  for (const auto& list : tokens) {
    for (const auto& token : list) ASSERT_TRUE(verifier.Verify(token, now).ok());
  }
}

TEST(InternalSecretTest, CreatedOnceWithMode0600AndReloaded) {
  testing::TempDir dir;
  auto first = LoadOrCreateInternalSecret(dir.path() + "/data");
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->size(), 64u);
  std::string decoded;
  EXPECT_TRUE(HexDecode(*first, &decoded));

  struct stat st {};
  ASSERT_EQ(stat((dir.path() + "/data/internal.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  auto second = LoadOrCreateInternalSecret(dir.path() + "/data");
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(*second, *first);

  // A credential minted with one load verifies with the other: what bffd and bff-domain rely on.
  std::string token = CredentialMinter(*first).Mint("u", "web");
  EXPECT_TRUE(CredentialVerifier(*second).Verify(token, UnixNow()).ok());
}

TEST(InternalSecretTest, ConcurrentFirstStartsAgreeOnOneSecret) {
  // bffd and bff-domain may start together on a fresh data dir; both must end up with the same secret.
  testing::TempDir dir;
  constexpr int kThreads = 8;
  std::vector<std::string> secrets(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      auto s = LoadOrCreateInternalSecret(dir.path());
      if (s.ok()) secrets[i] = *s;
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& s : secrets) {
    EXPECT_EQ(s.size(), 64u);
    EXPECT_EQ(s, secrets[0]);
  }
  EXPECT_EQ(testing::ReadFile(dir.path() + "/internal.key"), secrets[0] + "\n");
}

TEST(InternalSecretTest, OperatorWrittenSecretIsAcceptedAndGarbageRefused) {
  testing::TempDir dir;
  {
    std::ofstream out(dir.path() + "/internal.key");
    out << kSecret << "\n";
  }
  auto loaded = LoadOrCreateInternalSecret(dir.path());
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(*loaded, kSecret);

  {
    std::ofstream out(dir.path() + "/internal.key");
    out << "short";
  }
  auto bad = LoadOrCreateInternalSecret(dir.path());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("internal.key"), std::string::npos);
}

}  // namespace
}  // namespace bff
