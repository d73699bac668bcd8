// What travels with one client request through every internal hop: trace, deadline, who is asking.
#pragma once

#include <string>

#include "common/scheduler.h"
#include "observability/span.h"
#include "observability/trace_context.h"

namespace bff {

struct RequestContext {
  TraceContext trace;
  TimePoint deadline = TimePoint::max();  // absolute; max() = no request deadline
  std::string subject;                    // end user id or device id; empty when anonymous
  std::string client = "bffd";            // calling BFF: "mobile", "web", "iot", or "bffd" for the daemon itself
  // Set by the entry points, so every layer below starts child spans without being handed a tracer.
  // Null (or off) means no spans; it outlives every request (the daemon owns it).
  const Tracer* tracer = nullptr;

  // A span with `trace`'s ids (normally trace.Child() of this request); inert without a tracer.
  ActiveSpan StartSpan(std::string_view name, SpanKind kind, const TraceContext& span_trace) const {
    return tracer ? tracer->Start(name, kind, span_trace) : ActiveSpan();
  }
  // A span for a local step of this request, a child of its trace; inert (and free: no child ids are
  // made) without a tracer or when the trace is not sampled.
  ActiveSpan StartChildSpan(std::string_view name, SpanKind kind) const {
    return tracer ? tracer->StartChild(name, kind, trace) : ActiveSpan();
  }
};

}  // namespace bff
