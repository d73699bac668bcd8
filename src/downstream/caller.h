// Common path of every typed downstream call: budget check, trace and credential headers, status mapping.
#pragma once

#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "downstream/transport.h"
#include "observability/request_context.h"
#include "security/internal_credential.h"

namespace bff {

using JsonCallback = std::function<void(StatusOr<nlohmann::json>)>;

class DownstreamCaller {
 public:
  DownstreamCaller(Transport& transport, CredentialMinter& minter, Scheduler& scheduler)
      : transport_(transport), minter_(minter), scheduler_(scheduler) {}

  // Sends `req` to `service` for `ctx`. The effective deadline is the earlier of `deadline` and
  // ctx.deadline; when it has passed, nothing is sent and the answer is kDeadlineExceeded. Headers set
  // here: traceparent (a child span of ctx.trace), tracestate, Authorization (the internal credential
  // naming ctx.subject and ctx.client; never the client's own token), X-Request-Budget-Ms, Accept.
  // Each call is a client span "<service> <METHOD>" (peer.service, status code, outcome) when ctx.tracer
  // is set; its span id is the one sent in traceparent, so the service's spans are its children.
  // 2xx answers are parsed as JSON (empty body = null); other statuses map to a Status carrying the
  // service's error message.
  void Call(const RequestContext& ctx, Service service, HttpRequest req, TimePoint deadline, JsonCallback done);

  // As Call() but hands back the raw response of any status (for pass-through endpoints).
  void CallRaw(const RequestContext& ctx, Service service, HttpRequest req, TimePoint deadline, ResponseCallback done);

  Scheduler& scheduler() { return scheduler_; }

 private:
  // Sets the headers; `hop` is the client span's context, whose traceparent goes on the wire.
  bool Prepare(const RequestContext& ctx, Service service, HttpRequest& req, TimePoint& deadline, TraceContext& hop);

  Transport& transport_;
  CredentialMinter& minter_;
  Scheduler& scheduler_;
};

// Maps a non-2xx downstream answer to a Status, using the body's error message when there is one.
Status StatusFromDownstream(Service service, const HttpResponse& resp);

}  // namespace bff
