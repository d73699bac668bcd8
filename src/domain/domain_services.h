// The reference domain services (CONTRACT.md section 1) behind one asynchronous HTTP-shaped entry point.
//
// The same object serves bffd's embedded mode (called in-process) and the bff-domain process (behind an
// HTTP listener). State lives in SQLite under the data directory; fault injection and the time budget
// header are honoured here, with timers (never sleeping threads).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "common/http_message.h"
#include "common/scheduler.h"
#include "common/status.h"
#include "domain/shelf_reading.h"
#include "observability/span.h"

namespace bff {

struct DomainOptions {
  std::string data_dir;                 // created if missing; holds domain.db, identity key, internal.key
  bool allow_unauthenticated = false;   // accept calls without the internal credential (debugging only)
  int password_iterations = 100000;     // PBKDF2 iterations for seeded and verified passwords
  std::string token_issuer = "bff-identity";
  std::string token_audience = "bffd";  // "aud" of access tokens
  int access_token_ttl_s = 900;
  int refresh_token_ttl_s = 30 * 24 * 3600;
  // Faults applied at start, keyed by service name: {"reviews": {"latency_ms": 200}}.
  nlohmann::json initial_faults = nlohmann::json::object();
  // One server span per service request, child of the caller's traceparent; off by default.
  Tracer tracer;
};

// Per-service fault settings. latency_ms delays every answer (timer), error_rate in [0,1] answers that
// fraction with 500, hang holds requests without answering, down answers 503 at once.
struct Fault {
  int latency_ms = 0;
  double error_rate = 0.0;
  bool hang = false;
  bool down = false;
  nlohmann::json ToJson() const;
  static StatusOr<Fault> FromJson(const nlohmann::json& j);
};

using Responder = std::function<void(HttpResponse)>;

class DomainServices {
 public:
  static StatusOr<std::unique_ptr<DomainServices>> Create(const DomainOptions& options, Scheduler& scheduler);
  virtual ~DomainServices() = default;

  // Serves one request; `done` is called exactly once (possibly later, from a scheduler thread).
  // Paths: every section-1 path, plus /admin/v1/faults (GET, PUT /{service}, DELETE) and /healthz.
  virtual void Handle(HttpRequest req, Responder done) = 0;

  // In-process shortcut of POST /inventory/v1/shelf-readings: the same checks and group commit, no
  // credential, no JSON. Callers take it only while DirectCallsAllowed("inventory"), i.e. no fault is
  // injected on the service; otherwise they send the HTTP form so that faults act on every caller alike.
  // `done` runs once, on a scheduler thread; a reading still queued at `deadline` is not stored.
  virtual bool DirectCallsAllowed(std::string_view service) const = 0;
  virtual void SubmitShelfReading(ShelfReading reading, TimePoint deadline, ShelfReadingCallback done) = 0;
  // Shelf readings accepted by inventory and waiting for its writer (read at scrape time).
  virtual size_t queued_shelf_readings() const = 0;

  virtual Status SetFault(const std::string& service, const Fault& fault) = 0;
  virtual void ClearFaults() = 0;
  virtual nlohmann::json Faults() const = 0;
  // Answers held by "hang" faults are released (503) so shutdown never waits on them.
  virtual void ReleaseHeld() = 0;
};

}  // namespace bff
