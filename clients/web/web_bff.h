// The web BFF (CONTRACT.md section 3): the whole product page in one answer, sessions with CSRF, cart.
#pragma once

#include <memory>

#include "api/api.h"
#include "common/config.h"
#include "downstream/clients.h"
#include "observability/metrics.h"
#include "orchestration/fanout.h"
#include "security/session_store.h"

namespace bff {

class WebBff {
 public:
  // With `metrics`, the product page's fan-out counts how each part ended (bffd_fanout_calls_total).
  WebBff(const Config& config, DownstreamClients& clients, Scheduler& scheduler, SessionStore& sessions,
         MetricsRegistry* metrics = nullptr);

  // Adds the /web/v1 routes to `front`.
  void Register(ApiFront& front);

 private:
  void GetProduct(std::shared_ptr<ApiCall> call, Respond respond);
  void Login(std::shared_ptr<ApiCall> call, Respond respond);
  void Logout(std::shared_ptr<ApiCall> call, Respond respond);
  void Me(std::shared_ptr<ApiCall> call, Respond respond);
  void AddCartItem(std::shared_ptr<ApiCall> call, Respond respond);

  // The live session named by the request's cookie, or an error answer (401) already sent.
  std::optional<Session> SessionOf(const ApiCall& call);
  // The session check a route requires, as an `auth.check` span and an
  // `auth` Server-Timing entry: a valid session (401 otherwise) and, when
  // require_csrf, a matching X-CSRF-Token header (403 otherwise).
  StatusOr<Session> CheckSession(ApiCall& call, bool require_csrf);
  StatusOr<Session> SessionWithCsrf(ApiCall& call) { return CheckSession(call, true); }
  std::string SessionCookie(const std::string& value, int64_t max_age_s) const;

  Config::Web options_;
  size_t max_body_bytes_;
  DownstreamClients& clients_;
  Scheduler& scheduler_;
  SessionStore& sessions_;
  std::unique_ptr<FanOutMetrics> fanout_metrics_;
};

}  // namespace bff
