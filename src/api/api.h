// Shared plumbing of the HTTP BFFs: the per-request object, routing, errors, Server-Timing.
//
// A protocol adapter hands each request to ApiFront::Handle. The front accepts or creates the trace
// context, sets the request deadline, finds the route (404/405 JSON otherwise), runs the client module's
// handler, and stamps every answer with traceparent and Server-Timing. Errors everywhere take one form:
// {"error": {"code", "message", "trace_id"}} with the status from the single Status mapping.
#pragma once

#include <array>
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "api/client_address.h"
#include "common/http_message.h"
#include "common/log.h"
#include "common/scheduler.h"
#include "common/status.h"
#include "observability/metrics.h"
#include "observability/request_context.h"
#include "security/rate_limiter.h"

namespace bff {

using Respond = std::function<void(HttpResponse)>;

// Per-client limits of the HTTP BFFs; a rate of 0 turns that limit off. Past a limit: 429 JSON error
// with Retry-After.
struct HttpRateLimits {
  double client_rps = 0;            // every request, per client address (an IPv6 client by its /64)
  double client_burst = 0;
  double user_rps = 0;              // authenticated requests, per user (a token's subject, a session's user)
  double user_burst = 0;
  double logins_per_minute = 0;     // password attempts, per username
  double login_burst = 0;
  std::vector<IpNetwork> trusted_proxies;  // peers whose X-Forwarded-For names the client
};

// One client request in flight: what the handler needs, plus timing entries collected on the way.
class ApiCall {
 public:
  ApiCall(HttpRequest http, RequestContext ctx, TimePoint started) : http_(std::move(http)), ctx_(std::move(ctx)), started_(started) {}

  const HttpRequest& http() const { return http_; }
  RequestContext& ctx() { return ctx_; }
  const RequestContext& ctx() const { return ctx_; }
  const std::string& trace_id() const { return ctx_.trace.trace_id; }
  // For log lines about this request: its trace id and client kind.
  log::Scope log_scope() const { return log::Scope(ctx_.trace.trace_id, ctx_.client); }
  TimePoint started() const { return started_; }
  // Path parameter captured by the route pattern ("{sku}" → "sku").
  std::string param(const std::string& name) const;
  void set_params(std::map<std::string, std::string> p) { params_ = std::move(p); }

  // This request's server span (inert when tracing is off): handlers add attributes such as
  // bff.degraded. One thread at a time, like the call itself.
  ActiveSpan& span() { return span_; }
  void set_span(ActiveSpan span) { span_ = std::move(span); }

  // One request charged to `user_id`'s bucket, or one password attempt to `username`'s; when the
  // bucket is empty, the 429 answer to give (with Retry-After). Without limits, always nullopt.
  std::optional<HttpResponse> ChargeUser(std::string_view user_id) const;
  std::optional<HttpResponse> ChargeLogin(std::string_view username) const;
  void set_limits(RateLimiter* limiter, const HttpRateLimits* limits) {
    limiter_ = limiter;
    limits_ = limits;
  }

  // Server-Timing entries: "cache;desc=hit", "catalog;dur=10.2". Thread-safe.
  void AddTiming(std::string name, double duration_ms = -1, std::string desc = {});
  std::string ServerTimingHeader(double total_ms) const;

 private:
  HttpRequest http_;
  RequestContext ctx_;
  TimePoint started_;
  std::map<std::string, std::string> params_;
  ActiveSpan span_;
  RateLimiter* limiter_ = nullptr;
  const HttpRateLimits* limits_ = nullptr;
  mutable std::mutex mu_;
  std::vector<std::string> timings_;
};

using ApiHandler = std::function<void(std::shared_ptr<ApiCall> call, Respond respond)>;

// The error body every HTTP BFF answers with; 429 and 503 carry Retry-After when retry_after_s > 0.
HttpResponse ErrorResponse(const Status& status, const std::string& trace_id, int retry_after_s = 0);
HttpResponse ErrorResponse(int http_status, std::string_view code, const std::string& message, const std::string& trace_id);
HttpResponse JsonResponse(int status, const std::string& body);

class ApiFront {
 public:
  struct Options {
    std::chrono::milliseconds request_timeout{5000};
    // Entry spans ("METHOD route-pattern") and every child below, via RequestContext::tracer; null: none.
    // Must outlive the front.
    const Tracer* tracer = nullptr;
    // Per-client limits, kept in `limiter` (null: no limits). Must outlive the front.
    RateLimiter* limiter = nullptr;
    HttpRateLimits limits;
  };
  // With `metrics`, every answer is counted and timed per client, method, route pattern and status
  // (bffd_http_requests_total, bffd_http_request_duration_seconds), 401/403 answers as authentication
  // failures and 429 answers as rate-limit rejections. The registry must outlive the front.
  ApiFront(Options options, Scheduler& scheduler, MetricsRegistry* metrics = nullptr);

  // `client` names the BFF answering this route ("mobile", "web"): it goes into the internal credential.
  // Pattern segments in braces capture one path segment: "/mobile/v1/products/{sku}".
  void Route(const std::string& method, const std::string& pattern, const std::string& client, ApiHandler handler);

  // Entry point for protocol adapters: always answers exactly once.
  void Handle(HttpRequest req, Respond respond);

  uint64_t requests() const;

 private:
  // HTTP statuses 100-599 index the per-route handle tables; anything else is looked up by label.
  static constexpr int kFirstStatus = 100;
  static constexpr int kStatusSlots = 500;
  // Handles of one route, filled per status on first use so an answer is counted without a lookup.
  struct RouteMetrics {
    std::array<std::atomic<Counter*>, kStatusSlots> requests{};
    std::array<std::atomic<Histogram*>, kStatusSlots> latency{};
    // This route's client's children of the auth-failure and rate-limit families.
    Counter* unauthenticated = nullptr;
    Counter* forbidden = nullptr;
    Counter* rate_limited = nullptr;
  };
  struct RouteEntry {
    std::string method;
    std::string pattern;
    std::vector<std::string> segments;  // "{name}" captures
    std::string client;
    std::string span_name;  // "METHOD pattern", built once
    ApiHandler handler;
    std::unique_ptr<RouteMetrics> metrics;
  };
  static std::vector<std::string> Split(const std::string& path);
  // Counts one answer; `route` is null when no route matched.
  void Record(const RouteEntry* route, const ApiCall& call, int status, Duration elapsed) const;

  Options options_;
  Scheduler& scheduler_;
  std::vector<RouteEntry> routes_;
  mutable std::mutex mu_;
  uint64_t requests_ = 0;
  CounterFamily* requests_total_ = nullptr;
  HistogramFamily* duration_ = nullptr;
  CounterFamily* auth_failures_ = nullptr;
  CounterFamily* rate_limited_ = nullptr;
};

}  // namespace bff
