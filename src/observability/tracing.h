// Tracing as the daemon sets it up: settings in, a Tracer (off, log lines, OTLP export or both) out.
#pragma once

#include <memory>

#include "common/config.h"
#include "common/log.h"
#include "common/status.h"
#include "observability/otlp_exporter.h"
#include "observability/span.h"

namespace bff {

struct TracingSettings {
  OtlpExporterOptions otlp;  // otlp.collector_url empty: no export
  bool log_spans = false;    // one JSON log line per span, at log_spans_level
  log::Level log_spans_level = log::Level::kInfo;
};

struct Tracing {
  Tracer tracer;                           // off when nothing is configured
  std::shared_ptr<OtlpExporter> exporter;  // null without a collector; counters() feed the metrics

  // Drains and stops every sink, for the process's shutdown. True when nothing was left behind.
  bool Shutdown(TimePoint deadline) const { return tracer.sink() == nullptr || tracer.sink()->Shutdown(deadline); }
};

// The [tracing] settings of the configuration as MakeTracing takes them.
TracingSettings TracingSettingsFrom(const Config::Tracing& config);

// kInvalidArgument naming the setting ("tracing.collector_url: ...") when the exporter's options are bad.
StatusOr<Tracing> MakeTracing(TracingSettings settings);

}  // namespace bff
