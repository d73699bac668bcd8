// Service names and path-prefix ownership.
#include "downstream/service.h"

namespace bff {

std::string_view ServiceName(Service s) {
  switch (s) {
    case Service::kCatalog: return "catalog";
    case Service::kInventory: return "inventory";
    case Service::kReviews: return "reviews";
    case Service::kRecommendations: return "recommendations";
    case Service::kPromotions: return "promotions";
    case Service::kCart: return "cart";
    case Service::kAnalytics: return "analytics";
    case Service::kIdentity: return "identity";
  }
  return "unknown";
}

std::optional<Service> ServiceFromName(std::string_view name) {
  for (Service s : kAllServices) {
    if (ServiceName(s) == name) return s;
  }
  return std::nullopt;
}

std::optional<Service> ServiceForPath(std::string_view path) {
  if (path.size() < 2 || path[0] != '/') return std::nullopt;
  size_t end = path.find('/', 1);
  return ServiceFromName(path.substr(1, end == std::string_view::npos ? std::string_view::npos : end - 1));
}

}  // namespace bff
