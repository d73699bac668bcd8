// The domain services bffd talks to, their names and URL prefixes.
#pragma once

#include <array>
#include <optional>
#include <string_view>

namespace bff {

enum class Service { kCatalog, kInventory, kReviews, kRecommendations, kPromotions, kCart, kAnalytics, kIdentity };

inline constexpr std::array<Service, 8> kAllServices = {
    Service::kCatalog, Service::kInventory, Service::kReviews,   Service::kRecommendations,
    Service::kPromotions, Service::kCart,   Service::kAnalytics, Service::kIdentity};

std::string_view ServiceName(Service s);  // "catalog", "inventory", ...
std::optional<Service> ServiceFromName(std::string_view name);
// The service that owns a request path ("/catalog/v1/..." -> kCatalog), if any.
std::optional<Service> ServiceForPath(std::string_view path);

}  // namespace bff
