// What travels with one client request through every internal hop: trace, deadline, who is asking.
#pragma once

#include <string>

#include "common/scheduler.h"
#include "observability/trace_context.h"

namespace bff {

struct RequestContext {
  TraceContext trace;
  TimePoint deadline = TimePoint::max();  // absolute; max() = no request deadline
  std::string subject;                    // end user id or device id; empty when anonymous
  std::string client = "bffd";            // calling BFF: "mobile", "web", "iot", or "bffd" for the daemon itself
};

}  // namespace bff
