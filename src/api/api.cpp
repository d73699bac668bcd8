// Routing, trace context, deadlines, Server-Timing and the one error format of the HTTP BFFs.
#include "api/api.h"

#include <atomic>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "common/log.h"

namespace bff {

std::string ApiCall::param(const std::string& name) const {
  auto it = params_.find(name);
  return it == params_.end() ? std::string() : it->second;
}

void ApiCall::AddTiming(std::string name, double duration_ms, std::string desc) {
  std::string e = std::move(name);
  if (!desc.empty()) e += ";desc=" + desc;
  if (duration_ms >= 0) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), ";dur=%.1f", duration_ms);
    e += buf;
  }
  std::lock_guard<std::mutex> lock(mu_);
  timings_.push_back(std::move(e));
}

std::string ApiCall::ServerTimingHeader(double total_ms) const {
  std::string h;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& t : timings_) {
      h += t;
      h += ", ";
    }
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "total;dur=%.1f", total_ms);
  return h + buf;
}

HttpResponse JsonResponse(int status, const std::string& body) { return HttpResponse::Json(status, body); }

HttpResponse ErrorResponse(int http_status, std::string_view code, const std::string& message, const std::string& trace_id) {
  nlohmann::json body = {{"error", {{"code", code}, {"message", message}, {"trace_id", trace_id}}}};
  return HttpResponse::Json(http_status, body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

HttpResponse ErrorResponse(const Status& status, const std::string& trace_id, int retry_after_s) {
  int http = HttpStatusFor(status.code());
  HttpResponse r = ErrorResponse(http, ErrorCodeString(status.code()), status.message(), trace_id);
  if (retry_after_s > 0 && (http == 429 || http == 503)) r.headers.Set("Retry-After", std::to_string(retry_after_s));
  r.headers.Set("Cache-Control", "no-store");
  return r;
}

namespace {

// Key prefixes: addresses, users and login names share one limiter without meeting.
constexpr std::string_view kUserKeyPrefix = "user:";
constexpr std::string_view kLoginKeyPrefix = "login:";
constexpr double kSecondsPerMinute = 60.0;

std::optional<HttpResponse> Charge(RateLimiter* limiter, std::string key, double rate_per_s, double burst,
                                   std::string_view who, const std::string& trace_id) {
  if (limiter == nullptr || rate_per_s <= 0) return std::nullopt;
  RateDecision d = limiter->Acquire(key, rate_per_s, burst);
  if (d.allowed) return std::nullopt;
  return ErrorResponse(ResourceExhausted("too many requests " + std::string(who) + "; retry in " +
                                         std::to_string(d.retry_after_s) + " s"),
                       trace_id, d.retry_after_s);
}

}  // namespace

std::optional<HttpResponse> ApiCall::ChargeUser(std::string_view user_id) const {
  if (limits_ == nullptr) return std::nullopt;
  return Charge(limiter_, std::string(kUserKeyPrefix).append(user_id), limits_->user_rps, limits_->user_burst,
                "for this user", trace_id());
}

std::optional<HttpResponse> ApiCall::ChargeLogin(std::string_view username) const {
  if (limits_ == nullptr) return std::nullopt;
  return Charge(limiter_, std::string(kLoginKeyPrefix).append(username), limits_->logins_per_minute / kSecondsPerMinute,
                limits_->login_burst, "for this account", trace_id());
}

std::vector<std::string> ApiFront::Split(const std::string& path) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < path.size()) {
    if (path[pos] == '/') {
      ++pos;
      continue;
    }
    size_t end = path.find('/', pos);
    if (end == std::string::npos) end = path.size();
    out.push_back(path.substr(pos, end - pos));
    pos = end;
  }
  return out;
}

ApiFront::ApiFront(Options options, Scheduler& scheduler, MetricsRegistry* metrics)
    : options_(options), scheduler_(scheduler) {
  if (!metrics) return;
  const std::vector<std::string> labels = {"client", "method", "route", "status"};
  requests_total_ = &metrics->Counters("bffd_http_requests_total",
                                       "HTTP requests answered by the mobile and web BFFs, by route pattern and status.",
                                       labels);
  duration_ = &metrics->Histograms("bffd_http_request_duration_seconds",
                                   "Time from receiving an HTTP request to handing over its answer.", labels);
  auth_failures_ = &metrics->Counters("bffd_auth_failures_total",
                                      "Requests refused for authentication (401, reason unauthenticated) or "
                                      "authorization (403, reason forbidden).",
                                      {"client", "reason"});
  rate_limited_ = &metrics->Counters("bffd_rate_limited_total", "Requests refused with 429 (rate limited).", {"client"});
}

void ApiFront::Route(const std::string& method, const std::string& pattern, const std::string& client, ApiHandler handler) {
  auto metrics = std::make_unique<RouteMetrics>();
  if (requests_total_) {
    metrics->unauthenticated = &auth_failures_->With({client, "unauthenticated"});
    metrics->forbidden = &auth_failures_->With({client, "forbidden"});
    metrics->rate_limited = &rate_limited_->With({client});
  }
  routes_.push_back({method, pattern, Split(pattern), client, method + " " + pattern, std::move(handler), std::move(metrics)});
}

namespace {

// The client of a path no route matched, from its prefix only: the raw path never becomes a label.
std::string_view ClientOfPath(const std::string& path) {
  if (path.rfind("/mobile/", 0) == 0) return "mobile";
  if (path.rfind("/web/", 0) == 0) return "web";
  return "unknown";
}

constexpr char kUnmatchedRoute[] = "unmatched";
constexpr char kUnmatchedSpanName[] = "HTTP unmatched";

}  // namespace

void ApiFront::Record(const RouteEntry* route, const ApiCall& call, int status, Duration elapsed) const {
  if (!requests_total_) return;
  std::string_view client = route ? std::string_view(route->client) : ClientOfPath(call.http().path);
  if (route && status >= kFirstStatus && status < kFirstStatus + kStatusSlots) {
    // First answer with this status on this route resolves the children; later ones reuse them. Two
    // threads racing here get the same child from the family, so either store is right.
    RouteMetrics& m = *route->metrics;
    const size_t slot = static_cast<size_t>(status - kFirstStatus);
    Counter* counter = m.requests[slot].load(std::memory_order_acquire);
    Histogram* histogram = m.latency[slot].load(std::memory_order_acquire);
    if (!counter || !histogram) {
      const std::string status_text = std::to_string(status);
      counter = &requests_total_->With({client, route->method, route->pattern, status_text});
      histogram = &duration_->With({client, route->method, route->pattern, status_text});
      m.requests[slot].store(counter, std::memory_order_release);
      m.latency[slot].store(histogram, std::memory_order_release);
    }
    counter->Inc();
    histogram->ObserveDuration(elapsed);
  } else {
    // Unmatched paths label the method only when it is one a route could have: the method is client input.
    std::string_view method = call.http().method;
    if (method != "GET" && method != "HEAD" && method != "POST" && method != "PUT" && method != "PATCH" &&
        method != "DELETE" && method != "OPTIONS") {
      method = kOverflowLabelValue;
    }
    const std::string status_text = std::to_string(status);
    std::string_view route_label = route ? std::string_view(route->pattern) : std::string_view(kUnmatchedRoute);
    std::string_view method_label = route ? std::string_view(route->method) : method;
    requests_total_->With({client, method_label, route_label, status_text}).Inc();
    duration_->With({client, method_label, route_label, status_text}).ObserveDuration(elapsed);
  }
  if (status != 401 && status != 403 && status != 429) return;
  const RouteMetrics* m = route ? route->metrics.get() : nullptr;
  if (status == 401) {
    (m ? *m->unauthenticated : auth_failures_->With({client, "unauthenticated"})).Inc();
  } else if (status == 403) {
    (m ? *m->forbidden : auth_failures_->With({client, "forbidden"})).Inc();
  } else {
    (m ? *m->rate_limited : rate_limited_->With({client})).Inc();
  }
}

uint64_t ApiFront::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

void ApiFront::Handle(HttpRequest req, Respond respond) {
  TimePoint started = scheduler_.Now();
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++requests_;
  }
  RequestContext ctx;
  ctx.trace = TraceContext::AcceptOrCreate(req.headers.Get("traceparent"), req.headers.Get("tracestate"));
  ctx.deadline = started + options_.request_timeout;
  ctx.tracer = options_.tracer;

  // Match: same number of segments, literal segments equal, "{x}" captures anything non-empty.
  std::vector<std::string> segs = Split(req.path);
  const RouteEntry* match = nullptr;
  std::map<std::string, std::string> params;
  std::vector<std::string> allowed;
  bool trailing_slash = req.path.size() > 1 && req.path.back() == '/';
  for (const RouteEntry& r : routes_) {
    if (r.segments.size() != segs.size() || trailing_slash) continue;
    std::map<std::string, std::string> p;
    bool ok = true;
    for (size_t i = 0; i < segs.size() && ok; ++i) {
      const std::string& want = r.segments[i];
      if (want.size() > 2 && want.front() == '{' && want.back() == '}') {
        p[want.substr(1, want.size() - 2)] = segs[i];
      } else {
        ok = want == segs[i];
      }
    }
    if (!ok) continue;
    if (r.method == req.method || (req.method == "HEAD" && r.method == "GET")) {
      match = &r;
      params = std::move(p);
      break;
    }
    allowed.push_back(r.method);
  }

  // Who is asking, read before the request moves into the call; only a limit needs to know.
  const std::string client_key = options_.limiter ? ClientKey(ClientAddress(req, options_.limits.trusted_proxies)) : "";
  auto call = std::make_shared<ApiCall>(std::move(req), std::move(ctx), started);
  if (options_.tracer && options_.tracer->Records(call->ctx().trace)) {
    // The request's own context is this hop's span (AcceptOrCreate made it the caller's child).
    // An unmatched request's method is client input: it stays out of the span.
    const std::string_view method = match ? std::string_view(match->method) : std::string_view("HTTP");
    const std::string_view route = match ? std::string_view(match->pattern) : std::string_view(kUnmatchedRoute);
    ActiveSpan span = options_.tracer->Start(match ? std::string_view(match->span_name) : kUnmatchedSpanName,
                                             SpanKind::kServer, call->ctx().trace);
    span.SetAttribute(span_attr::kProtocol, "http")
        .SetAttribute(span_attr::kClientKind, match ? std::string_view(match->client) : ClientOfPath(call->http().path))
        .SetAttribute(span_attr::kHttpMethod, method)
        .SetAttribute(span_attr::kHttpRoute, route);
    call->set_span(std::move(span));
  }
  Scheduler& sched = scheduler_;
  auto once = std::make_shared<std::atomic<bool>>(false);
  Respond finish = [this, match, call, respond = std::move(respond), &sched, once](HttpResponse r) {
    if (once->exchange(true)) {
      log::Warn("handler answered twice", {{"path", call->http().path}}, call->log_scope());
      return;
    }
    const Duration elapsed = sched.Now() - call->started();
    Record(match, *call, r.status, elapsed);
    if (ActiveSpan& span = call->span(); span.recording()) {
      span.SetAttribute(span_attr::kHttpStatusCode, r.status);
      if (r.status >= 500) span.SetError("HTTP " + std::to_string(r.status));
      span.End();
    }
    double total_ms = std::chrono::duration<double, std::milli>(elapsed).count();
    r.headers.Set("traceparent", call->ctx().trace.ToTraceparent());
    r.headers.Set("Server-Timing", call->ServerTimingHeader(total_ms));
    if (call->http().method == "HEAD") r.body.clear();
    if (log::Enabled(log::Level::kDebug)) {
      log::Debug("request", {{"method", call->http().method}, {"path", call->http().path}, {"status", r.status},
                             {"ms", total_ms}},
                 call->log_scope());
    }
    respond(std::move(r));
  };

  // Before any work, and before routing answers: a client scanning for endpoints is a client too.
  call->set_limits(options_.limiter, &options_.limits);
  if (!client_key.empty()) {
    if (auto refused = Charge(options_.limiter, client_key, options_.limits.client_rps, options_.limits.client_burst,
                              "from this client", call->trace_id())) {
      return finish(std::move(*refused));
    }
  }

  if (!match) {
    if (!allowed.empty()) {
      std::string allow;
      for (auto& m : allowed) allow += (allow.empty() ? "" : ", ") + m;
      HttpResponse r = ErrorResponse(405, "method_not_allowed", call->http().method + " is not allowed here; use " + allow,
                                     call->trace_id());
      r.headers.Set("Allow", allow);
      finish(std::move(r));
    } else {
      finish(ErrorResponse(404, "not_found", "no such endpoint: " + call->http().path, call->trace_id()));
    }
    return;
  }
  call->ctx().client = match->client;
  call->set_params(std::move(params));
  try {
    match->handler(call, finish);
  } catch (const std::exception& e) {
    log::Error("handler threw", {{"path", call->http().path}, {"what", e.what()}}, call->log_scope());
    finish(ErrorResponse(500, "internal", "internal error", call->trace_id()));
  }
}

}  // namespace bff
