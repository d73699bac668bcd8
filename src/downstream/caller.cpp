// Downstream call plumbing shared by every typed client.
#include "downstream/caller.h"

#include <algorithm>

namespace bff {

Status StatusFromDownstream(Service service, const HttpResponse& resp) {
  std::string message;
  auto body = nlohmann::json::parse(resp.body, nullptr, false);
  if (body.is_object()) {
    if (body.contains("error") && body["error"].is_object() && body["error"].contains("message") &&
        body["error"]["message"].is_string()) {
      message = body["error"]["message"].get<std::string>();
    } else if (body.contains("error") && body["error"].is_string()) {
      // OAuth2 error form: {"error": "invalid_grant", "error_description": "..."}
      message = body["error"].get<std::string>();
      if (body.contains("error_description") && body["error_description"].is_string()) {
        message += ": " + body["error_description"].get<std::string>();
      }
    }
  }
  if (message.empty()) message = "HTTP " + std::to_string(resp.status);
  return Status(StatusCodeFromHttp(resp.status), std::string(ServiceName(service)) + ": " + message);
}

bool DownstreamCaller::Prepare(const RequestContext& ctx, Service service, HttpRequest& req, TimePoint& deadline) {
  deadline = std::min(deadline, ctx.deadline);
  TimePoint now = scheduler_.Now();
  int64_t budget_ms = MillisUntil(deadline, now);
  if (deadline <= now || budget_ms <= 0) return false;
  TraceContext span = ctx.trace.valid() ? ctx.trace.Child() : TraceContext::NewRoot();
  req.headers.Set("traceparent", span.ToTraceparent());
  if (!span.tracestate.empty()) req.headers.Set("tracestate", span.tracestate);
  req.headers.Set("Authorization", "Bearer " + minter_.Mint(ctx.subject, ctx.client));
  if (deadline != TimePoint::max()) req.headers.Set(kBudgetHeader, std::to_string(budget_ms));
  req.headers.Set("Accept", "application/json");
  if (!req.body.empty() && !req.headers.Has("Content-Type")) req.headers.Set("Content-Type", "application/json");
  (void)service;
  return true;
}

void DownstreamCaller::CallRaw(const RequestContext& ctx, Service service, HttpRequest req, TimePoint deadline,
                               ResponseCallback done) {
  if (!Prepare(ctx, service, req, deadline)) {
    scheduler_.Post([done = std::move(done), service] {
      done(DeadlineExceeded(std::string(ServiceName(service)) + ": no time budget left"));
    });
    return;
  }
  transport_.Send(service, std::move(req), deadline, std::move(done));
}

void DownstreamCaller::Call(const RequestContext& ctx, Service service, HttpRequest req, TimePoint deadline,
                            JsonCallback done) {
  CallRaw(ctx, service, std::move(req), deadline, [service, done = std::move(done)](StatusOr<HttpResponse> r) {
    if (!r.ok()) {
      done(r.status());
      return;
    }
    if (r->status < 200 || r->status >= 300) {
      done(StatusFromDownstream(service, *r));
      return;
    }
    if (r->body.empty()) {
      done(nlohmann::json(nullptr));
      return;
    }
    auto j = nlohmann::json::parse(r->body, nullptr, false);
    if (j.is_discarded()) {
      done(Unavailable(std::string(ServiceName(service)) + ": answer is not valid JSON"));
      return;
    }
    done(std::move(j));
  });
}

}  // namespace bff
