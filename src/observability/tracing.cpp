// Builds the span sinks the settings ask for and the Tracer over them.
#include "observability/tracing.h"

#include <vector>

#include "observability/fanout_span_sink.h"
#include "observability/log_span_sink.h"

namespace bff {

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
