// Validation of end-user access tokens (ES256 JWTs from the identity service) against its JWKS.
//
// The key set is fetched at Start(), refreshed every `refresh_interval`, and refetched at once (at most
// every `min_refetch_interval`) when a token names an unknown kid, so key rotation needs no restart.
// Only one fetch runs at a time; validations waiting for it are answered when it completes.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/scheduler.h"
#include "common/status.h"

namespace bff {

struct AuthenticatedUser {
  std::string user_id;  // "sub"
  std::string name;     // "name" claim when present
  int64_t expires_at = 0;
};

struct AccessTokenOptions {
  std::string issuer = "bff-identity";
  std::string audience = "bffd";
  std::chrono::seconds refresh_interval{600};
  std::chrono::seconds min_refetch_interval{10};
  int64_t leeway_s = 30;
};

class AccessTokenValidator : public std::enable_shared_from_this<AccessTokenValidator> {
 public:
  using JwksCallback = std::function<void(StatusOr<nlohmann::json>)>;
  // Fetches the current JWK set (e.g. through IdentityApi::Jwks).
  using JwksFetcher = std::function<void(JwksCallback)>;

  static std::shared_ptr<AccessTokenValidator> Create(AccessTokenOptions options, JwksFetcher fetcher,
                                                      Scheduler& scheduler);
  // Starts the first fetch and the periodic refresh.
  void Start();
  void Stop();

  // Validates the value of an Authorization header ("Bearer <jwt>"). kUnauthenticated for a missing,
  // malformed, expired or badly signed token, or a wrong issuer/audience; kUnavailable when no key set
  // could be fetched. Answers inline when the key is known; otherwise after a (shared) fetch.
  void Validate(std::string_view authorization_header, std::function<void(StatusOr<AuthenticatedUser>)> done);

  uint64_t fetches() const;

 private:
  AccessTokenValidator(AccessTokenOptions options, JwksFetcher fetcher, Scheduler& scheduler);
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace bff
