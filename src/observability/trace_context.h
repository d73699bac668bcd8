// W3C Trace Context (traceparent/tracestate): parse, create, and derive child spans for every hop.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace bff {

struct TraceContext {
  std::string trace_id;        // 32 lowercase hex
  std::string span_id;         // 16 lowercase hex: this hop's span
  std::string parent_span_id;  // the caller's span, empty for a root
  uint8_t flags = 1;           // sampled
  std::string tracestate;      // passed through untouched

  // A new root trace with random ids.
  static TraceContext NewRoot();
  // Parses a W3C traceparent header (version 00, or higher versions' first four fields);
  // returns nullopt for anything malformed or all-zero ids. The result is the caller's span;
  // call Child() to make this hop's span.
  static std::optional<TraceContext> Parse(std::string_view traceparent, std::string_view tracestate = {});
  // Accepts an incoming traceparent (making this hop a child of it) or starts a new trace.
  static TraceContext AcceptOrCreate(std::string_view traceparent, std::string_view tracestate = {});
  // Same trace, fresh span id, parent = this span.
  TraceContext Child() const;
  std::string ToTraceparent() const;
  bool valid() const { return trace_id.size() == 32 && span_id.size() == 16; }
};

// The share of new traces (started here, not continued from a caller) that are sampled, in percent,
// process-wide: 100 records every request's spans; lower keeps the cost of span export bounded on hot
// paths. A caller's sampled flag is always honoured, and an unsampled trace still propagates its ids.
void SetNewTraceSamplePercent(int percent);

inline constexpr size_t kTraceIdBytes = 16;
inline constexpr size_t kSpanIdBytes = 8;

// Fast non-cryptographic random hex for ids (trace ids are not secrets).
std::string RandomIdHex(size_t n_bytes);

}  // namespace bff
