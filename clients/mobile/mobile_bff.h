// The mobile BFF (CONTRACT.md section 2): small JSON, few round trips, bearer tokens, long caching.
#pragma once

#include <memory>

#include "api/api.h"
#include "cache/response_cache.h"
#include "common/config.h"
#include "downstream/clients.h"
#include "security/access_token_validator.h"

namespace bff {

class MobileBff {
 public:
  MobileBff(const Config& config, DownstreamClients& clients, Scheduler& scheduler,
            std::shared_ptr<AccessTokenValidator> tokens);

  // Adds the /mobile/v1 routes to `front`.
  void Register(ApiFront& front);
  ResponseCache& cache() { return cache_; }

  // Exactly the mobile product: {id, name, price, currency, thumbnail_url}.
  static std::string ShapeProduct(const nlohmann::json& product);

 private:
  void GetProduct(std::shared_ptr<ApiCall> call, Respond respond);
  void GetProducts(std::shared_ptr<ApiCall> call, Respond respond);
  void Token(std::shared_ptr<ApiCall> call, Respond respond);
  void AddCartItem(std::shared_ptr<ApiCall> call, Respond respond);

  void ServeCached(const ApiCall& call, const CachedResponse& entry, Duration age, bool stale_on_error, Respond respond);
  void RefreshInBackground(const ApiCall& call, const std::string& sku);
  std::string CacheControl() const;

  Config::Mobile options_;
  size_t max_body_bytes_;
  DownstreamClients& clients_;
  Scheduler& scheduler_;
  std::shared_ptr<AccessTokenValidator> tokens_;
  ResponseCache cache_;
};

}  // namespace bff
