// SpanSink that writes each finished span as one JSON log line (for local runs without a collector).
#pragma once

#include <nlohmann/json.hpp>

#include "common/log.h"
#include "observability/span.h"

namespace bff {

// Each span becomes a line {"msg":"span", "trace_id", "span_id", "parent_span_id", "name", "kind",
// "start_unix_nano", "duration_ms", "status", "status_message", "attributes":{...}} at `level`.
// Lines go through log::Write, which writes synchronously under the log's lock: this sink is meant
// for development and low traffic, not for production load (use the OTLP exporter there).
class LogSpanSink : public SpanSink {
 public:
  explicit LogSpanSink(log::Level level = log::Level::kInfo) : level_(level) {}
  void Record(Span span) override;

 private:
  log::Level level_;
};

// The fields LogSpanSink logs for `span` (everything but msg and trace_id, which log::Write adds).
nlohmann::json SpanLogFields(const Span& span);

}  // namespace bff
