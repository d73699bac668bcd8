// Span-to-log-line formatting for LogSpanSink.
#include "observability/log_span_sink.h"

#include <cmath>

namespace bff {

nlohmann::json SpanLogFields(const Span& span) {
  nlohmann::json attrs = nlohmann::json::object();
  for (const auto& a : span.attributes) {
    std::visit(
        [&](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, double>) {
            // JSON has no NaN or infinity; the log line must stay parseable.
            if (std::isfinite(v)) {
              attrs[a.key] = v;
            } else {
              attrs[a.key] = std::isnan(v) ? "NaN" : (v > 0 ? "Infinity" : "-Infinity");
            }
          } else {
            attrs[a.key] = v;
          }
        },
        a.value);
  }
  nlohmann::json f = nlohmann::json::object();
  f["span_id"] = span.span_id;
  if (!span.parent_span_id.empty()) f["parent_span_id"] = span.parent_span_id;
  f["name"] = span.name;
  f["kind"] = SpanKindName(span.kind);
  f["start_unix_nano"] = span.start_unix_nano;
  f["duration_ms"] = static_cast<double>(span.end_unix_nano - span.start_unix_nano) / 1e6;
  f["status"] = SpanStatusName(span.status);
  if (!span.status_message.empty()) f["status_message"] = span.status_message;
  f["attributes"] = std::move(attrs);
  return f;
}

void LogSpanSink::Record(Span span) {
  if (!log::Enabled(level_)) return;
  log::Write(level_, "span", SpanLogFields(span), span.trace_id);
}

}  // namespace bff
