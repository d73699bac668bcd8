// How a downstream request reaches a domain service: in-process (embedded) or over HTTP.
#pragma once

#include <functional>

#include "common/http_message.h"
#include "common/scheduler.h"
#include "common/status.h"
#include "downstream/service.h"

namespace bff {

// Header carrying the caller's remaining time budget in whole milliseconds, so a service can give up
// early instead of working for an answer nobody will read.
inline constexpr char kBudgetHeader[] = "X-Request-Budget-Ms";

using ResponseCallback = std::function<void(StatusOr<HttpResponse>)>;

class Transport {
 public:
  virtual ~Transport() = default;
  // Sends `req` to `service`. The callback runs exactly once, on a scheduler thread: with the response
  // (any HTTP status), or kDeadlineExceeded when `deadline` passes first, or kUnavailable when the
  // service cannot be reached. It never runs inline inside Send().
  virtual void Send(Service service, HttpRequest req, TimePoint deadline, ResponseCallback done) = 0;
};

}  // namespace bff
