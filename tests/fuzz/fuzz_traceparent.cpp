// Fuzz target: W3C traceparent parsing; whatever parses must format back to a valid header.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "observability/trace_context.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string header(reinterpret_cast<const char*>(data), size);
  if (auto t = bff::TraceContext::Parse(header)) {
    auto again = bff::TraceContext::Parse(t->ToTraceparent());
    if (!again || again->trace_id != t->trace_id || again->span_id != t->span_id) std::abort();
  }
  return 0;
}
