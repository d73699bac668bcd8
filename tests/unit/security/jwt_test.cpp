// Tests for ES256 JWTs: signing, JWK export, JWKS verification, claim checks and key persistence.
#include "security/jwt.h"

#include <sys/stat.h>

#include <fstream>
#include <vector>

#include <gtest/gtest.h>

#include "common/crypto.h"
#include "security/internal_credential.h"
#include "support/test_support.h"

namespace bff {
namespace {

using nlohmann::json;

EcSigningKey NewKey() {
  auto key = EcSigningKey::Generate();
  EXPECT_TRUE(key.ok()) << key.status().ToString();
  return std::move(key).value();
}

json Jwks(std::initializer_list<json> keys) { return {{"keys", json::array_t(keys)}}; }

json Claims(int64_t now) {
  return {{"iss", "identity"}, {"aud", "bff"}, {"sub", "user-7"}, {"iat", now}, {"exp", now + 300}};
}

JwtExpectations Expect(int64_t now) {
  JwtExpectations e;
  e.issuer = "identity";
  e.audience = "bff";
  e.now_unix = now;
  e.leeway_s = 30;
  return e;
}

std::string Segment(const json& j) { return Base64UrlEncode(j.dump()); }

std::string ReplaceClaims(const std::string& token, const json& claims) {
  size_t dot1 = token.find('.'), dot2 = token.rfind('.');
  return token.substr(0, dot1 + 1) + Segment(claims) + token.substr(dot2);
}

std::string ReplaceHeader(const std::string& token, const json& header) {
  return Segment(header) + token.substr(token.find('.'));
}

class JwtTest : public ::testing::Test {
 protected:
  int64_t now_ = UnixNow();
  EcSigningKey key_ = NewKey();
};

TEST_F(JwtTest, SignedTokenVerifiesAgainstTheKeySet) {
  std::string token = key_.Sign(Claims(now_));
  auto claims = VerifyJwtEs256(token, Jwks({key_.PublicJwk()}), Expect(now_));
  ASSERT_TRUE(claims.ok()) << claims.status().ToString();
  EXPECT_EQ((*claims)["sub"], "user-7");

  auto decoded = DecodeJwtUnverified(token);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->first["alg"], "ES256");
  EXPECT_EQ(decoded->first["typ"], "JWT");
  EXPECT_EQ(decoded->first["kid"], key_.kid());
  // JWS ES256 signatures are raw r||s, 64 bytes, not DER.
  std::string sig;
  ASSERT_TRUE(Base64UrlDecode(token.substr(token.rfind('.') + 1), &sig));
  EXPECT_EQ(sig.size(), 64u);
}

TEST_F(JwtTest, KeyIsFoundByKidAmongSeveral) {
  EcSigningKey other = NewKey();
  std::string token = key_.Sign(Claims(now_));
  EXPECT_TRUE(VerifyJwtEs256(token, Jwks({other.PublicJwk(), key_.PublicJwk()}), Expect(now_)).ok());
}

TEST_F(JwtTest, DifferentKeyIsRefused) {
  EcSigningKey other = NewKey();
  std::string token = key_.Sign(Claims(now_));
  // Unknown kid.
  auto result = VerifyJwtEs256(token, Jwks({other.PublicJwk()}), Expect(now_));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kUnauthenticated);
  // Right kid, wrong key material: the signature itself must fail.
  json impostor = other.PublicJwk();
  impostor["kid"] = key_.kid();
  EXPECT_FALSE(VerifyJwtEs256(token, Jwks({impostor}), Expect(now_)).ok());
}

TEST_F(JwtTest, ModifiedClaimIsRefused) {
  std::string token = key_.Sign(Claims(now_));
  json claims = Claims(now_);
  claims["sub"] = "admin";
  EXPECT_FALSE(VerifyJwtEs256(ReplaceClaims(token, claims), Jwks({key_.PublicJwk()}), Expect(now_)).ok());
  std::string flipped = token;
  char& c = flipped[flipped.size() - 5];
  c = c == 'A' ? 'B' : 'A';
  EXPECT_FALSE(VerifyJwtEs256(flipped, Jwks({key_.PublicJwk()}), Expect(now_)).ok());
}

TEST_F(JwtTest, ExpiredTokenIsRefusedBeyondTheLeeway) {
  json claims = Claims(now_);
  claims["exp"] = now_ - 31;
  EXPECT_FALSE(VerifyJwtEs256(key_.Sign(claims), Jwks({key_.PublicJwk()}), Expect(now_)).ok());
  claims["exp"] = now_ - 29;
  EXPECT_TRUE(VerifyJwtEs256(key_.Sign(claims), Jwks({key_.PublicJwk()}), Expect(now_)).ok());
  claims.erase("exp");
  EXPECT_FALSE(VerifyJwtEs256(key_.Sign(claims), Jwks({key_.PublicJwk()}), Expect(now_)).ok());
}

TEST_F(JwtTest, ZeroNowMeansTheCurrentTime) {
  json claims = Claims(now_);
  claims["exp"] = now_ - 3600;
  JwtExpectations e = Expect(0);
  EXPECT_FALSE(VerifyJwtEs256(key_.Sign(claims), Jwks({key_.PublicJwk()}), e).ok());
}

TEST_F(JwtTest, NotYetValidTokenIsRefused) {
  json claims = Claims(now_);
  claims["nbf"] = now_ + 600;
  EXPECT_FALSE(VerifyJwtEs256(key_.Sign(claims), Jwks({key_.PublicJwk()}), Expect(now_)).ok());
}

TEST_F(JwtTest, WrongAudienceOrIssuerIsRefused) {
  json jwks = Jwks({key_.PublicJwk()});
  json claims = Claims(now_);
  claims["aud"] = "another-app";
  EXPECT_FALSE(VerifyJwtEs256(key_.Sign(claims), jwks, Expect(now_)).ok());
  claims["aud"] = json::array({"another-app", "bff"});
  EXPECT_TRUE(VerifyJwtEs256(key_.Sign(claims), jwks, Expect(now_)).ok());
  claims["aud"] = json::array({"another-app"});
  EXPECT_FALSE(VerifyJwtEs256(key_.Sign(claims), jwks, Expect(now_)).ok());

  claims = Claims(now_);
  claims["iss"] = "evil";
  EXPECT_FALSE(VerifyJwtEs256(key_.Sign(claims), jwks, Expect(now_)).ok());
  claims.erase("iss");
  EXPECT_FALSE(VerifyJwtEs256(key_.Sign(claims), jwks, Expect(now_)).ok());

  // Empty expectations are not checked.
  JwtExpectations lax;
  lax.now_unix = now_;
  EXPECT_TRUE(VerifyJwtEs256(key_.Sign(claims), jwks, lax).ok());
}

TEST_F(JwtTest, OtherAlgorithmsAreRefused) {
  json jwks = Jwks({key_.PublicJwk()});
  std::string token = key_.Sign(Claims(now_));
  for (const char* alg : {"none", "HS256", "ES384", "RS256", "es256"}) {
    json header = {{"alg", alg}, {"typ", "JWT"}, {"kid", key_.kid()}};
    EXPECT_FALSE(VerifyJwtEs256(ReplaceHeader(token, header), jwks, Expect(now_)).ok()) << alg;
  }
  json none = {{"alg", "none"}, {"kid", key_.kid()}};
  std::string unsigned_token = Segment(none) + "." + Segment(Claims(now_)) + ".";
  EXPECT_FALSE(VerifyJwtEs256(unsigned_token, jwks, Expect(now_)).ok());
  // A key set entry declaring another algorithm is not used for ES256.
  json wrong_use = key_.PublicJwk();
  wrong_use["alg"] = "ES384";
  EXPECT_FALSE(VerifyJwtEs256(token, Jwks({wrong_use}), Expect(now_)).ok());
}

TEST_F(JwtTest, PublicJwkAndKidFollowRfc7638) {
  json jwk = key_.PublicJwk();
  EXPECT_EQ(jwk["kty"], "EC");
  EXPECT_EQ(jwk["crv"], "P-256");
  EXPECT_EQ(jwk["alg"], "ES256");
  EXPECT_EQ(jwk["use"], "sig");
  EXPECT_EQ(jwk["kid"], key_.kid());
  EXPECT_FALSE(jwk.contains("d"));  // never the private scalar
  std::string x, y;
  ASSERT_TRUE(Base64UrlDecode(jwk["x"].get<std::string>(), &x));
  ASSERT_TRUE(Base64UrlDecode(jwk["y"].get<std::string>(), &y));
  EXPECT_EQ(x.size(), 32u);
  EXPECT_EQ(y.size(), 32u);
  std::string canonical = "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"" + jwk["x"].get<std::string>() + "\",\"y\":\"" +
                          jwk["y"].get<std::string>() + "\"}";
  EXPECT_EQ(key_.kid(), Base64UrlEncode(Sha256(canonical)));
  EXPECT_NE(NewKey().kid(), key_.kid());
}

TEST_F(JwtTest, MalformedTokensAndKeySetsNeverThrow) {
  json jwks = Jwks({key_.PublicJwk()});
  std::string token = key_.Sign(Claims(now_));
  std::string header = token.substr(0, token.find('.'));
  std::string sig = token.substr(token.rfind('.') + 1);
  const std::vector<std::string> bad_tokens = {
      "",
      "...",
      "a.b.c",
      token + ".x",
      header + "." + Segment(json::array()) + "." + sig,
      header + "." + Base64UrlEncode("{\"exp\":") + "." + sig,
      header + "." + Segment(Claims(now_)) + "." + Base64UrlEncode(std::string(63, '\x01')),
      header + "." + Segment(Claims(now_)) + "." + Base64UrlEncode(std::string(64, '\0')),
      header + "." + Segment(Claims(now_)) + "." + Base64UrlEncode(std::string(64, '\xff')),
      ReplaceHeader(token, {{"alg", "ES256"}}),
      ReplaceHeader(token, {{"alg", "ES256"}, {"kid", 7}}),
      ReplaceHeader(token, {{"alg", json::array()}, {"kid", key_.kid()}}),
  };
  for (const auto& t : bad_tokens) {
    StatusOr<json> result = Status(StatusCode::kInternal, "unset");
    EXPECT_NO_THROW(result = VerifyJwtEs256(t, jwks, Expect(now_))) << t;
    EXPECT_FALSE(result.ok()) << t;
  }

  json off_curve = key_.PublicJwk();
  off_curve["y"] = off_curve["x"];  // (x, x) is not on P-256
  json wrong_size = key_.PublicJwk();
  wrong_size["x"] = Base64UrlEncode(std::string(31, '\x01'));
  json not_ec = key_.PublicJwk();
  not_ec["kty"] = "RSA";
  const std::vector<json> bad_sets = {
      json(),
      json::array(),
      json::object(),
      json{{"keys", "nope"}},
      json{{"keys", json::array({1, "x", nullptr})}},
      Jwks({off_curve}),
      Jwks({wrong_size}),
      Jwks({not_ec}),
  };
  for (const auto& set : bad_sets) {
    StatusOr<json> result = Status(StatusCode::kInternal, "unset");
    EXPECT_NO_THROW(result = VerifyJwtEs256(token, set, Expect(now_))) << set.dump();
    EXPECT_FALSE(result.ok()) << set.dump();
  }
}

TEST(JwtKeyFileTest, PersistedKeyReloadsWithTheSameKid) {
  testing::TempDir dir;
  std::string path = dir.path() + "/keys/identity.pem";
  auto first = EcSigningKey::LoadOrCreate(path);
  ASSERT_TRUE(first.ok()) << first.status().ToString();

  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_NE(testing::ReadFile(path).find("PRIVATE KEY"), std::string::npos);

  auto second = EcSigningKey::LoadOrCreate(path);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(second->kid(), first->kid());
  EXPECT_EQ(second->PublicJwk(), first->PublicJwk());

  int64_t now = UnixNow();
  std::string token = first->Sign({{"sub", "u"}, {"exp", now + 60}});
  JwtExpectations e;
  e.now_unix = now;
  EXPECT_TRUE(VerifyJwtEs256(token, Jwks({second->PublicJwk()}), e).ok());
}

TEST(JwtKeyFileTest, UnreadableKeyFileIsAnErrorAndIsKept) {
  testing::TempDir dir;
  std::string path = dir.path() + "/identity.pem";
  {
    std::ofstream out(path);
    out << "not a key\n";
  }
  auto key = EcSigningKey::LoadOrCreate(path);
  ASSERT_FALSE(key.ok());
  EXPECT_NE(key.status().message().find(path), std::string::npos);
  EXPECT_EQ(testing::ReadFile(path), "not a key\n");
}

}  // namespace
}  // namespace bff
