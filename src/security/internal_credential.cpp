// Token exchange: minting, caching and verifying the HS256 internal credential.
#include "security/internal_credential.h"

#include <filesystem>

#include <nlohmann/json.hpp>

#include "common/crypto.h"
#include "security/compact_jws.h"
#include "security/secret_file.h"

namespace bff {
namespace {

constexpr char kInternalSecretFile[] = "internal.key";
constexpr size_t kInternalSecretHexChars = 64;
// One entry per (client, subject); subjects are end users, so the cache is swept rather than unbounded.
constexpr size_t kMaxCachedCredentials = 10000;
constexpr size_t kJtiBytes = 12;

const std::string& Hs256Header() {
  static const std::string kHeader = EncodeJsonSegment({{"alg", "HS256"}, {"typ", "JWT"}});
  return kHeader;
}

std::string TrimWhitespace(std::string s) {
  auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && is_space(s.back())) s.pop_back();
  size_t start = 0;
  while (start < s.size() && is_space(s[start])) ++start;
  return s.substr(start);
}

}  // namespace

int64_t UnixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

StatusOr<std::string> LoadOrCreateInternalSecret(const std::string& data_dir) {
  std::string path = (std::filesystem::path(data_dir) / kInternalSecretFile).string();
  StatusOr<std::string> contents =
      LoadOrCreateSecretFile(path, [] { return RandomHex(kInternalSecretHexChars / 2) + "\n"; });
  if (!contents.ok()) return contents.status();
  std::string secret = TrimWhitespace(std::move(*contents));
  std::string decoded;
  if (secret.size() != kInternalSecretHexChars || !HexDecode(secret, &decoded)) {
    return InvalidArgument(path + " must hold " + std::to_string(kInternalSecretHexChars) + " hex characters");
  }
  return secret;
}

CredentialMinter::CredentialMinter(std::string secret, std::chrono::seconds ttl)
    : secret_(std::move(secret)), ttl_(ttl) {}

std::string CredentialMinter::Mint(std::string_view subject, std::string_view client) {
  int64_t now = UnixNow();
  std::string cache_key;
  cache_key.reserve(client.size() + 1 + subject.size());
  cache_key.append(client).push_back('\0');  // ids never hold NUL, so the pair maps to one key
  cache_key.append(subject);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = cache_.find(cache_key);
    if (it != cache_.end() && now < it->second.refresh_after) return it->second.token;
  }

  // Signed outside the lock; two threads racing on one key just mint two valid credentials.
  int64_t ttl = ttl_.count();
  nlohmann::json claims = {
      {"iss", kInternalIssuer},
      {"aud", kInternalAudience},
      {"act", {{"sub", client}}},
      {"client", client},
      {"iat", now},
      {"exp", now + ttl},
      {"jti", RandomHex(kJtiBytes)},
  };
  if (!subject.empty()) claims["sub"] = subject;
  std::string signing_input = Hs256Header() + "." + EncodeJsonSegment(claims);
  std::string token = signing_input + "." + Base64UrlEncode(HmacSha256(secret_, signing_input));

  std::lock_guard<std::mutex> lock(mu_);
  if (cache_.size() >= kMaxCachedCredentials) {
    std::erase_if(cache_, [now](const auto& entry) { return entry.second.refresh_after <= now; });
    if (cache_.size() >= kMaxCachedCredentials) cache_.clear();  // all fresh: a burst of distinct subjects
  }
  cache_[cache_key] = Cached{token, now + ttl / 2};
  return token;
}

StatusOr<InternalIdentity> CredentialVerifier::Verify(std::string_view token, int64_t now_unix,
                                                      int64_t leeway_s) const {
  if (secret_.empty()) return Unauthenticated("no internal secret configured");
  StatusOr<CompactJws> parsed = ParseCompactJws(token);
  if (!parsed.ok()) return parsed.status();
  const CompactJws& jws = *parsed;

  // The algorithm is fixed: a token naming any other ("none", RS256, ...) is refused outright.
  auto alg = jws.header.find("alg");
  if (alg == jws.header.end() || !alg->is_string() || alg->get_ref<const std::string&>() != "HS256") {
    return Unauthenticated("credential algorithm must be HS256");
  }
  if (!ConstantTimeEquals(HmacSha256(secret_, jws.signing_input), jws.signature)) {
    return Unauthenticated("bad credential signature");
  }

  const nlohmann::json& claims = jws.claims;
  auto iss = claims.find("iss");
  if (iss == claims.end() || !iss->is_string() || iss->get_ref<const std::string&>() != kInternalIssuer) {
    return Unauthenticated("wrong credential issuer");
  }
  if (!AudienceMatches(claims, kInternalAudience)) return Unauthenticated("wrong credential audience");

  double exp = 0, iat = 0, nbf = 0;
  if (!NumericClaim(claims, "exp", &exp)) return Unauthenticated("credential has no expiry");
  if (!NumericClaim(claims, "iat", &iat)) return Unauthenticated("credential has no issue time");
  int64_t expires_at = ToUnixSeconds(exp);
  int64_t issued_at = ToUnixSeconds(iat);
  if (now_unix > expires_at + leeway_s) return Unauthenticated("credential expired");
  if (issued_at > now_unix + leeway_s) return Unauthenticated("credential issued in the future");
  if (NumericClaim(claims, "nbf", &nbf) && ToUnixSeconds(nbf) > now_unix + leeway_s) {
    return Unauthenticated("credential not yet valid");
  }

  InternalIdentity identity;
  auto client = claims.find("client");
  if (client == claims.end() || !client->is_string() || client->get_ref<const std::string&>().empty()) {
    return Unauthenticated("credential names no client");
  }
  identity.client = client->get<std::string>();
  auto sub = claims.find("sub");
  if (sub != claims.end()) {
    if (!sub->is_string()) return Unauthenticated("malformed credential subject");
    identity.subject = sub->get<std::string>();
  }
  identity.issued_at = issued_at;
  identity.expires_at = expires_at;
  return identity;
}

}  // namespace bff
