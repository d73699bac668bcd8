// Analytics service: accepts events and records them; clients treat it as non-critical.
#include "domain/http_util.h"
#include "domain/services.h"
#include "security/internal_credential.h"

namespace bff::domain {

void AnalyticsService::Register(Router& router) {
  router.Add("POST", "/analytics/v1/events", [this](Call& c) { return PostEvent(c); });
}

Reply AnalyticsService::PostEvent(Call& call) {
  auto body = ParseJsonObjectBody(call.req);
  if (!body.ok()) return ErrorResponse(body.status());
  auto type = body->find("type");
  if (type == body->end() || !type->is_string() || type->get_ref<const std::string&>().empty() ||
      type->get_ref<const std::string&>().size() > kMaxTypeLength) {
    return ErrorResponse(400, "invalid_argument", "type: required, a string of 1 to 64 characters");
  }
  auto at = body->find("at");
  int64_t at_unix = 0;
  if (at == body->end() || !at->is_string() || !ParseRfc3339(at->get_ref<const std::string&>(), &at_unix)) {
    return ErrorResponse(400, "invalid_argument", "at: required, an RFC 3339 date-time");
  }
  // Optional ids: absent or null means not given; anything else must be a valid id.
  std::optional<std::string> ids[3];
  static constexpr const char* kIdFields[3] = {"user_id", "device_id", "sku"};
  for (int i = 0; i < 3; ++i) {
    auto it = body->find(kIdFields[i]);
    if (it == body->end() || it->is_null()) continue;
    if (!it->is_string() || !IsValidId(it->get_ref<const std::string&>())) {
      return ErrorResponse(400, "invalid_argument", std::string(kIdFields[i]) + ": must match [A-Za-z0-9._-]{1,64}");
    }
    ids[i] = it->get<std::string>();
  }
  std::lock_guard<std::mutex> lock(db_->mutex());
  Query q = db_->Prepare(
      "INSERT INTO analytics_events(type, user_id, device_id, sku, at, received_unix) VALUES(?1, ?2, ?3, ?4, ?5, ?6)");
  q.Bind(1, type->get_ref<const std::string&>());
  for (int i = 0; i < 3; ++i) {
    if (ids[i])
      q.Bind(i + 2, *ids[i]);
    else
      q.BindNull(i + 2);
  }
  q.Bind(5, at->get_ref<const std::string&>()).Bind(6, UnixNow());
  if (Status s = q.Run(); !s.ok()) return ErrorResponse(s);
  return JsonResponse(202, {{"accepted", true}});
}

}  // namespace bff::domain
