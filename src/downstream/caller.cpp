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

bool DownstreamCaller::Prepare(const RequestContext& ctx, Service service, HttpRequest& req, TimePoint& deadline,
                               TraceContext& hop) {
  deadline = std::min(deadline, ctx.deadline);
  hop = ctx.trace.valid() ? ctx.trace.Child() : TraceContext::NewRoot();
  TimePoint now = scheduler_.Now();
  int64_t budget_ms = MillisUntil(deadline, now);
  if (deadline <= now || budget_ms <= 0) return false;
  const TraceContext& span = hop;
  req.headers.Set("traceparent", span.ToTraceparent());
  if (!span.tracestate.empty()) req.headers.Set("tracestate", span.tracestate);
  req.headers.Set("Authorization", "Bearer " + minter_.Mint(ctx.subject, ctx.client));
  if (deadline != TimePoint::max()) req.headers.Set(kBudgetHeader, std::to_string(budget_ms));
  req.headers.Set("Accept", "application/json");
  if (!req.body.empty() && !req.headers.Has("Content-Type")) req.headers.Set("Content-Type", "application/json");
  (void)service;
  return true;
}

namespace {

// Outcome as bffd_downstream_requests_total labels it, so a span and the metric tell the same story.
std::string_view OutcomeOf(const StatusOr<HttpResponse>& r) {
  if (!r.ok()) return r.status().code() == StatusCode::kDeadlineExceeded ? "timeout" : "error";
  if (r->status < 400) return "ok";
  if (r->status < 500 && r->status != 429) return "client_error";
  return "error";
}

}  // namespace

void DownstreamCaller::CallRaw(const RequestContext& ctx, Service service, HttpRequest req, TimePoint deadline,
                               ResponseCallback done) {
  TraceContext hop;
  const bool ready = Prepare(ctx, service, req, deadline, hop);
  ActiveSpan span;
  if (ctx.tracer && ctx.tracer->enabled()) {
    span = ctx.tracer->Start(std::string(ServiceName(service)) + " " + req.method, SpanKind::kClient, hop);
    span.SetAttribute(span_attr::kPeerService, ServiceName(service)).SetAttribute(span_attr::kHttpMethod, req.method);
  }
  if (!ready) {
    scheduler_.Post([done = std::move(done), service, span]() mutable {
      Status s = DeadlineExceeded(std::string(ServiceName(service)) + ": no time budget left");
      span.SetAttribute(span_attr::kOutcome, "timeout");
      span.SetStatus(s);
      span.End();
      done(std::move(s));
    });
    return;
  }
  if (!span.recording()) {
    transport_.Send(service, std::move(req), deadline, std::move(done));
    return;
  }
  transport_.Send(service, std::move(req), deadline,
                  [done = std::move(done), span](StatusOr<HttpResponse> r) mutable {
                    std::string_view outcome = OutcomeOf(r);
                    span.SetAttribute(span_attr::kOutcome, outcome);
                    if (r.ok()) {
                      span.SetAttribute(span_attr::kHttpStatusCode, r->status);
                      if (outcome == "error") span.SetError("HTTP " + std::to_string(r->status));
                    } else {
                      span.SetStatus(r.status());
                    }
                    span.End();
                    done(std::move(r));
                  });
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
