// Token exchange: the short-lived internal credential bffd mints for every downstream call, and its verifier.
//
// Format: a compact JWT signed with HMAC-SHA256 (HS256) under a secret shared by bffd and the domain
// services (data_dir/internal.key). Claims: iss "bffd", aud "bff-domain", sub = end user or device id
// (may be empty for the daemon's own calls), act = {"sub": calling BFF} (RFC 8693 actor), client =
// calling BFF ("mobile", "web", "iot", "bffd"), iat, exp (iat + ttl), jti.
// Downstream calls carry it as "Authorization: Bearer <credential>"; a client's own token never travels.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "common/status.h"

namespace bff {

inline constexpr std::chrono::seconds kDefaultCredentialTtl{60};
inline constexpr char kInternalIssuer[] = "bffd";
inline constexpr char kInternalAudience[] = "bff-domain";

struct InternalIdentity {
  std::string subject;  // end user or device; empty for the daemon itself
  std::string client;   // calling BFF
  int64_t issued_at = 0;
  int64_t expires_at = 0;
};

// Reads data_dir/internal.key (64 hex chars), creating it with a fresh random secret (mode 0600) if absent.
StatusOr<std::string> LoadOrCreateInternalSecret(const std::string& data_dir);

class CredentialMinter {
 public:
  explicit CredentialMinter(std::string secret, std::chrono::seconds ttl = kDefaultCredentialTtl);
  // Returns a credential for (subject, client). Credentials are reused while more than half their
  // lifetime remains, so minting stays off the hot path. Thread-safe.
  std::string Mint(std::string_view subject, std::string_view client);

 private:
  std::string secret_;
  std::chrono::seconds ttl_;
  std::mutex mu_;
  struct Cached {
    std::string token;
    int64_t refresh_after = 0;
  };
  std::map<std::string, Cached, std::less<>> cache_;
};

class CredentialVerifier {
 public:
  explicit CredentialVerifier(std::string secret) : secret_(std::move(secret)) {}
  // Checks signature (constant time), alg, iss, aud and expiry (with `leeway_s` of clock skew).
  StatusOr<InternalIdentity> Verify(std::string_view token, int64_t now_unix, int64_t leeway_s = 5) const;

 private:
  std::string secret_;
};

int64_t UnixNow();

}  // namespace bff
