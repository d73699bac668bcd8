// The standard process_* metrics of a Prometheus client, read from /proc at each scrape.
#pragma once

#include <optional>

#include "observability/metrics.h"

namespace bff {

// Registers process_resident_memory_bytes, process_open_fds, process_cpu_seconds_total and
// process_start_time_seconds (Linux /proc; a value that cannot be read is exposed as NaN).
void RegisterProcessMetrics(MetricsRegistry& registry);

struct ProcessStats {
  double resident_bytes = 0;
  double cpu_seconds = 0;
  double start_time_seconds = 0;  // unix time
  double open_fds = 0;
};
// One reading of this process's /proc entries; nullopt when /proc is not there.
std::optional<ProcessStats> ReadProcessStats();

}  // namespace bff
