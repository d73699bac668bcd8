// JWT with ES256 (ECDSA P-256, OpenSSL): the identity service signs access tokens, BFFs verify them via JWKS.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace bff {

// A P-256 signing key persisted as PEM. Copyable handle; thread-safe for concurrent Sign().
class EcSigningKey {
 public:
  // Loads `pem_path`, or generates a new key and writes it there (mode 0600) when absent.
  static StatusOr<EcSigningKey> LoadOrCreate(const std::string& pem_path);
  static StatusOr<EcSigningKey> Generate();

  // Compact JWS with header {"alg":"ES256","typ":"JWT","kid":kid()}.
  std::string Sign(const nlohmann::json& claims) const;
  // Public key as a JWK: {"kty":"EC","crv":"P-256","x","y","kid","alg":"ES256","use":"sig"}.
  nlohmann::json PublicJwk() const;
  // RFC 7638 thumbprint of the public key, base64url.
  const std::string& kid() const { return kid_; }

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
  std::string kid_;
};

struct JwtExpectations {
  std::string issuer;    // checked when non-empty
  std::string audience;  // checked when non-empty ("aud" may be a string or an array)
  int64_t now_unix = 0;  // 0 = the current time, so a forgotten clock never disables expiry
  int64_t leeway_s = 30;
};

// Verifies an ES256 compact JWT against a JWKS document ({"keys": [...]}) by kid; checks exp/nbf/iss/aud.
// Returns the claims. Never throws; malformed input gives kUnauthenticated with a reason.
StatusOr<nlohmann::json> VerifyJwtEs256(std::string_view token, const nlohmann::json& jwks, const JwtExpectations& expect);

// Splits a compact JWT and decodes header and claims without verifying (for diagnostics and routing).
StatusOr<std::pair<nlohmann::json, nlohmann::json>> DecodeJwtUnverified(std::string_view token);

}  // namespace bff
