// Identity service: OAuth2 token endpoint (password and refresh_token grants), JWKS, password check.
//
// Access tokens are ES256 JWTs verifiable with the published JWKS. Refresh tokens are random, stored
// only as SHA-256 hashes, and rotate on every use; presenting a rotated one again revokes its whole
// family (RFC 6819 5.2.2.3), since that means a copy is in someone else's hands.
#include "common/crypto.h"
#include "common/log.h"
#include "domain/http_util.h"
#include "domain/services.h"
#include "security/internal_credential.h"
#include "security/password.h"

namespace bff::domain {
namespace {

constexpr size_t kMaxRefreshTokenLength = 128;
constexpr size_t kFamilyIdBytes = 16;
constexpr size_t kJtiBytes = 16;
constexpr char kJwksCacheControl[] = "public, max-age=300";

HttpResponse OAuthError(int status, std::string_view error, std::string_view description) {
  HttpResponse r =
      JsonResponse(status, {{"error", std::string(error)}, {"error_description", std::string(description)}});
  r.headers.Set("Cache-Control", "no-store");
  return r;
}

std::string FormValue(const std::vector<std::pair<std::string, std::string>>& form, std::string_view key) {
  for (const auto& [k, v] : form) {
    if (k == key) return v;
  }
  return {};
}

std::string HashToken(std::string_view token) { return HexEncode(Sha256(token)); }

}  // namespace

StatusOr<std::shared_ptr<IdentityService>> IdentityService::Create(std::shared_ptr<Db> db,
                                                                   const DomainOptions& options) {
  auto key = EcSigningKey::LoadOrCreate(options.data_dir + "/identity-es256.pem");
  if (!key.ok()) return Status(key.status().code(), "identity signing key: " + key.status().message());
  return std::shared_ptr<IdentityService>(new IdentityService(std::move(db), options, std::move(*key)));
}

IdentityService::IdentityService(std::shared_ptr<Db> db, const DomainOptions& options, EcSigningKey key)
    : db_(std::move(db)),
      options_(options),
      key_(std::move(key)),
      // Checked against when a username is unknown, so both failures cost the same time.
      dummy_hash_(HashPassword(RandomHex(16), options.password_iterations)) {}

void IdentityService::Register(Router& router) {
  router.Add("POST", "/identity/v1/token", [this](Call& c) { return Token(c); });
  router.Add("GET", "/identity/v1/jwks", [this](Call& c) { return Jwks(c); });
  router.Add("POST", "/identity/v1/verify-password", [this](Call& c) { return VerifyPasswordCall(c); });
}

Reply IdentityService::Jwks(Call&) {
  nlohmann::json body = {{"keys", nlohmann::json::array({key_.PublicJwk()})}};
  HttpResponse r = JsonResponse(200, body);
  r.headers.Set("Cache-Control", kJwksCacheControl);
  return r;
}

std::optional<IdentityService::User> IdentityService::Authenticate(std::string_view username,
                                                                   std::string_view password) {
  std::optional<User> user;
  if (!username.empty() && username.size() <= kMaxUsernameLength) {
    std::lock_guard<std::mutex> lock(db_->mutex());
    Query q = db_->Prepare("SELECT user_id, display_name, password_hash FROM users WHERE username = ?1");
    q.Bind(1, username);
    if (q.Step()) user = User{q.Text(0), q.Text(1), q.Text(2)};
  }
  // Hashing runs outside the database lock: it is deliberately slow.
  bool ok = VerifyPassword(password, user ? user->password_hash : dummy_hash_);
  if (!ok || !user) return std::nullopt;
  return user;
}

Reply IdentityService::Token(Call& call) {
  if (MediaType(call.req.headers.Get("Content-Type")) != "application/x-www-form-urlencoded") {
    return OAuthError(415, "invalid_request", "Content-Type must be application/x-www-form-urlencoded");
  }
  if (call.req.body.size() > kMaxFormBytes) return OAuthError(400, "invalid_request", "request body too large");
  auto form = ParseForm(call.req.body);
  std::string grant = FormValue(form, "grant_type");
  if (grant.empty()) return OAuthError(400, "invalid_request", "grant_type is required");
  if (grant == "password") return PasswordGrant(form);
  if (grant == "refresh_token") return RefreshGrant(form);
  return OAuthError(400, "unsupported_grant_type", "supported grant types: password, refresh_token");
}

Reply IdentityService::PasswordGrant(const std::vector<std::pair<std::string, std::string>>& form) {
  std::string username = FormValue(form, "username");
  std::string password = FormValue(form, "password");
  if (username.empty() || password.empty()) {
    return OAuthError(400, "invalid_request", "username and password are required");
  }
  if (password.size() > kMaxPasswordLength) return OAuthError(400, "invalid_request", "password too long");
  auto user = Authenticate(username, password);
  if (!user) return OAuthError(400, "invalid_grant", "invalid username or password");
  auto response = IssueTokens(*user, RandomHex(kFamilyIdBytes), /*old_hash=*/"");
  if (!response.ok()) return ErrorResponse(response.status());
  return std::move(*response);
}

Reply IdentityService::RefreshGrant(const std::vector<std::pair<std::string, std::string>>& form) {
  std::string token = FormValue(form, "refresh_token");
  if (token.empty()) return OAuthError(400, "invalid_request", "refresh_token is required");
  if (token.size() > kMaxRefreshTokenLength) return OAuthError(400, "invalid_grant", "refresh token is not valid");
  const std::string hash = HashToken(token);
  User user;
  std::string family;
  {
    std::lock_guard<std::mutex> lock(db_->mutex());
    Query q = db_->Prepare(
        "SELECT t.user_id, t.family_id, t.expires_unix, t.revoked, u.display_name FROM refresh_tokens t "
        "JOIN users u ON u.user_id = t.user_id WHERE t.token_hash = ?1");
    q.Bind(1, hash);
    if (!q.Step()) {
      if (!q.status().ok()) return ErrorResponse(q.status());
      return OAuthError(400, "invalid_grant", "refresh token is not valid");
    }
    user.user_id = q.Text(0);
    family = q.Text(1);
    int64_t expires = q.Int(2);
    bool revoked = q.Int(3) != 0;
    user.display_name = q.Text(4);
    if (revoked) {
      Query revoke = db_->Prepare("UPDATE refresh_tokens SET revoked = 1 WHERE family_id = ?1");
      Status s = revoke.Bind(1, family).Run();
      log::Warn("identity: a rotated refresh token was presented again; its family is revoked",
                {{"user_id", user.user_id}, {"revoke_status", s.ok() ? "ok" : s.message()}});
      return OAuthError(400, "invalid_grant", "refresh token is not valid");
    }
    if (expires <= UnixNow()) return OAuthError(400, "invalid_grant", "refresh token has expired");
  }
  auto response = IssueTokens(user, family, hash);
  if (!response.ok()) {
    if (response.status().code() == StatusCode::kAborted) {
      return OAuthError(400, "invalid_grant", "refresh token is not valid");
    }
    return ErrorResponse(response.status());
  }
  return std::move(*response);
}

StatusOr<HttpResponse> IdentityService::IssueTokens(const User& user, const std::string& family_id,
                                                    const std::string& old_hash) {
  const int64_t now = UnixNow();
  const std::string refresh = Base64UrlEncode(RandomBytes(kRefreshTokenBytes));
  {
    std::lock_guard<std::mutex> lock(db_->mutex());
    Transaction tx(*db_);
    if (!tx.status().ok()) return tx.status();
    if (!old_hash.empty()) {
      // Rotation: only one caller may consume the old token, even if two present it at once.
      Query q = db_->Prepare("UPDATE refresh_tokens SET revoked = 1 WHERE token_hash = ?1 AND revoked = 0");
      if (Status s = q.Bind(1, old_hash).Run(); !s.ok()) return s;
      if (db_->Changes() == 0) return Status(StatusCode::kAborted, "refresh token already used");
    }
    {
      Query q = db_->Prepare(
          "INSERT INTO refresh_tokens(token_hash, user_id, family_id, expires_unix) VALUES(?1, ?2, ?3, ?4)");
      q.Bind(1, HashToken(refresh))
          .Bind(2, user.user_id)
          .Bind(3, family_id)
          .Bind(4, now + options_.refresh_token_ttl_s);
      if (Status s = q.Run(); !s.ok()) return s;
    }
    {
      Query q = db_->Prepare("DELETE FROM refresh_tokens WHERE expires_unix < ?1");
      if (Status s = q.Bind(1, now).Run(); !s.ok()) return s;
    }
    if (Status s = tx.Commit(); !s.ok()) return s;
  }
  nlohmann::json claims = {{"iss", options_.token_issuer},
                           {"aud", options_.token_audience},
                           {"sub", user.user_id},
                           {"name", user.display_name},
                           {"iat", now},
                           {"exp", now + options_.access_token_ttl_s},
                           {"jti", RandomHex(kJtiBytes)}};
  nlohmann::json body = {{"access_token", key_.Sign(claims)},
                         {"refresh_token", refresh},
                         {"token_type", "Bearer"},
                         {"expires_in", options_.access_token_ttl_s}};
  HttpResponse r = JsonResponse(200, body);
  r.headers.Set("Cache-Control", "no-store");
  r.headers.Set("Pragma", "no-cache");
  return r;
}

Reply IdentityService::VerifyPasswordCall(Call& call) {
  auto body = ParseJsonObjectBody(call.req);
  if (!body.ok()) return ErrorResponse(body.status());
  auto username = body->find("username");
  auto password = body->find("password");
  if (username == body->end() || !username->is_string() || password == body->end() || !password->is_string()) {
    return ErrorResponse(400, "invalid_argument", "username and password: required strings");
  }
  const std::string& pw = password->get_ref<const std::string&>();
  if (pw.size() > kMaxPasswordLength) return ErrorResponse(400, "invalid_argument", "password: too long");
  auto user = Authenticate(username->get_ref<const std::string&>(), pw);
  if (!user) return ErrorResponse(401, "unauthenticated", "invalid username or password");
  return JsonResponse(200, {{"user_id", user->user_id}});
}

}  // namespace bff::domain
