// Builds the span sinks the settings ask for and the Tracer over them.
#include "observability/tracing.h"

#include <vector>

#include "observability/fanout_span_sink.h"
#include "observability/log_span_sink.h"

namespace bff {

TracingSettings TracingSettingsFrom(const Config::Tracing& config) {
  TracingSettings s;
  s.otlp.collector_url = config.collector_url;
  s.otlp.max_queue = static_cast<size_t>(config.max_queue);
  s.otlp.max_batch = static_cast<size_t>(config.max_batch);
  s.otlp.max_delay_ms = config.max_delay_ms;
  s.otlp.timeout_ms = config.timeout_ms;
  s.otlp.service_name = config.service_name;
  s.log_spans = config.log_spans;
  return s;
}

StatusOr<Tracing> MakeTracing(TracingSettings settings) {
  Tracing t;
  std::vector<std::shared_ptr<SpanSink>> sinks;
  if (!settings.otlp.collector_url.empty()) {
    auto exporter = OtlpExporter::Create(std::move(settings.otlp));
    if (!exporter.ok()) return exporter.status();
    t.exporter = exporter.value();
    sinks.push_back(t.exporter);
  }
  if (settings.log_spans) sinks.push_back(std::make_shared<LogSpanSink>(settings.log_spans_level));
  t.tracer = Tracer(CombineSpanSinks(std::move(sinks)));
  return t;
}

}  // namespace bff
