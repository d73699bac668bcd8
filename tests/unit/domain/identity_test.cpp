// Identity: password and refresh grants, JWKS verification, rotation and reuse, password checks.
#include "common/http_message.h"
#include "domain/seed.h"
#include "domain_harness.h"
#include "security/jwt.h"

namespace bff::testing {
namespace {

constexpr char kForm[] = "application/x-www-form-urlencoded";

HttpResponse TokenCall(DomainHarness& h, const std::string& form) {
  return h.Send(MakeRequest("POST", "/identity/v1/token", form, kForm));
}

std::string PasswordForm(const std::string& user, const std::string& password) {
  return "grant_type=password&username=" + PercentEncode(user) + "&password=" + PercentEncode(password);
}

class IdentityTest : public ::testing::Test {
 protected:
  DomainHarness h;
};

TEST_F(IdentityTest, PasswordGrantGivesAVerifiableAccessToken) {
  auto r = TokenCall(h, PasswordForm("alice", "demo-alice"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.headers.Get("Cache-Control"), "no-store");
  auto tok = BodyJson(r);
  EXPECT_EQ(tok["token_type"], "Bearer");
  EXPECT_EQ(tok["expires_in"], 900);
  ASSERT_TRUE(tok["access_token"].is_string());
  ASSERT_TRUE(tok["refresh_token"].is_string());
  EXPECT_EQ(tok["refresh_token"].get<std::string>().size(), 43u);  // 32 bytes, base64url without padding

  auto jwks_resp = h.Get("/identity/v1/jwks");
  ASSERT_EQ(jwks_resp.status, 200);
  auto jwks = BodyJson(jwks_resp);
  ASSERT_EQ(jwks["keys"].size(), 1u);
  EXPECT_EQ(jwks["keys"][0]["kty"], "EC");

  JwtExpectations expect;
  expect.issuer = "bff-identity";
  expect.audience = "bffd";
  expect.now_unix = UnixNow();
  auto claims = VerifyJwtEs256(tok["access_token"].get<std::string>(), jwks, expect);
  ASSERT_TRUE(claims.ok()) << claims.status().ToString();
  EXPECT_EQ((*claims)["sub"], "u-1001");
  EXPECT_EQ((*claims)["aud"], "bffd");
  EXPECT_EQ((*claims)["name"], "Alice Martin");
  EXPECT_EQ((*claims)["exp"].get<int64_t>() - (*claims)["iat"].get<int64_t>(), 900);
  EXPECT_TRUE((*claims)["jti"].is_string());

  expect.audience = "someone-else";
  EXPECT_FALSE(VerifyJwtEs256(tok["access_token"].get<std::string>(), jwks, expect).ok());
}

TEST_F(IdentityTest, SigningKeySurvivesRestart) {
  auto jwks1 = h.Get("/identity/v1/jwks").body;
  auto token = BodyJson(TokenCall(h, PasswordForm("bob", "demo-bob")));
  h.Open();
  EXPECT_EQ(h.Get("/identity/v1/jwks").body, jwks1);
  // Refresh tokens survive too.
  auto r = TokenCall(h, "grant_type=refresh_token&refresh_token=" + token["refresh_token"].get<std::string>());
  EXPECT_EQ(r.status, 200) << r.body;
}

TEST_F(IdentityTest, RefreshRotatesAndReuseIsRefused) {
  auto first = BodyJson(TokenCall(h, PasswordForm("carol", "demo-carol")));
  const std::string r1 = first["refresh_token"];
  auto second_resp = TokenCall(h, "grant_type=refresh_token&refresh_token=" + r1);
  ASSERT_EQ(second_resp.status, 200) << second_resp.body;
  auto second = BodyJson(second_resp);
  const std::string r2 = second["refresh_token"];
  EXPECT_NE(r1, r2);
  auto claims = DecodeJwtUnverified(second["access_token"].get<std::string>());
  ASSERT_TRUE(claims.ok());
  EXPECT_EQ(claims->second["sub"], "u-1003");

  // The old token is spent.
  auto reuse = TokenCall(h, "grant_type=refresh_token&refresh_token=" + r1);
  EXPECT_EQ(reuse.status, 400);
  EXPECT_EQ(BodyJson(reuse)["error"], "invalid_grant");
  // Reuse revoked the whole family, so the newest token is gone as well.
  auto after = TokenCall(h, "grant_type=refresh_token&refresh_token=" + r2);
  EXPECT_EQ(after.status, 400);
  EXPECT_EQ(BodyJson(after)["error"], "invalid_grant");
  // A fresh login still works.
  EXPECT_EQ(TokenCall(h, PasswordForm("carol", "demo-carol")).status, 200);
}

TEST_F(IdentityTest, OAuthErrors) {
  auto r = TokenCall(h, PasswordForm("alice", "wrong"));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(BodyJson(r)["error"], "invalid_grant");
  EXPECT_TRUE(BodyJson(r)["error_description"].is_string());
  EXPECT_EQ(BodyJson(TokenCall(h, PasswordForm("mallory", "demo-mallory")))["error"], "invalid_grant");
  EXPECT_EQ(BodyJson(TokenCall(h, "grant_type=client_credentials"))["error"], "unsupported_grant_type");
  EXPECT_EQ(BodyJson(TokenCall(h, "username=alice&password=demo-alice"))["error"], "invalid_request");
  EXPECT_EQ(BodyJson(TokenCall(h, "grant_type=password&username=alice"))["error"], "invalid_request");
  EXPECT_EQ(BodyJson(TokenCall(h, "grant_type=refresh_token"))["error"], "invalid_request");
  EXPECT_EQ(BodyJson(TokenCall(h, "grant_type=refresh_token&refresh_token=made-up"))["error"], "invalid_grant");
  auto json_body = h.Send(MakeRequest("POST", "/identity/v1/token",
                                      R"({"grant_type":"password","username":"alice","password":"demo-alice"})"));
  EXPECT_EQ(json_body.status, 415);
  EXPECT_EQ(BodyJson(json_body)["error"], "invalid_request");
  EXPECT_EQ(h.Get("/identity/v1/token").status, 405);
}

TEST_F(IdentityTest, VerifyPassword) {
  for (const auto& u : SeedDemoUsers()) {
    auto r = h.Post("/identity/v1/verify-password", {{"username", u.username}, {"password", u.password}});
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(BodyJson(r), nlohmann::json({{"user_id", u.user_id}}));
  }
  auto r = h.Post("/identity/v1/verify-password", {{"username", "alice"}, {"password", "demo-bob"}});
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(ErrorCode(r), "unauthenticated");
  EXPECT_EQ(h.Post("/identity/v1/verify-password", {{"username", "nobody"}, {"password", "x"}}).status, 401);
  EXPECT_EQ(h.Post("/identity/v1/verify-password", {{"username", "alice"}}).status, 400);
  EXPECT_EQ(h.Post("/identity/v1/verify-password", {{"username", 1}, {"password", "x"}}).status, 400);
}

}  // namespace
}  // namespace bff::testing
