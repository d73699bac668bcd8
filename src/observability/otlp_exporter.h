// SpanSink that batches spans and POSTs them to an OpenTelemetry collector as OTLP/HTTP JSON.
//
// Record() moves the span into a bounded queue and returns: when the queue is full the span is
// dropped and counted, so a slow or absent collector costs requests nothing. One exporter thread
// takes batches off the queue (at max_batch spans, or max_delay_ms after the first span of a batch
// arrived), encodes them and POSTs {collector_url}/v1/traces over plain HTTP/1.1 (Boost.Beast, a
// keep-alive connection), each exchange bounded by timeout_ms. A batch that fails (connect refused,
// timeout, non-2xx) is dropped and counted; there is no retry, so the queue never backs up behind a
// collector that is down.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "observability/span.h"

namespace bff {

struct OtlpExporterOptions {
  // Base URL of the collector's OTLP/HTTP receiver, "http://host:port" with an optional path prefix;
  // spans go to <collector_url>/v1/traces. http:// only.
  std::string collector_url;
  size_t max_queue = 8192;  // spans waiting to be sent; past this, new spans are dropped
  size_t max_batch = 512;   // spans per POST (at most max_queue)
  int max_delay_ms = 1000;  // longest a span waits for its batch to fill
  int timeout_ms = 5000;    // one export: resolve + connect + send + answer
  std::string service_name = "bffd";
  std::string service_version;  // empty: bffd's own version
};

// Monotonic counts, readable at any time from any thread (e.g. into Prometheus counters).
struct OtlpExporterCounters {
  std::atomic<uint64_t> queued_spans{0};              // accepted by Record()
  std::atomic<uint64_t> exported_spans{0};            // in batches the collector answered 2xx
  std::atomic<uint64_t> rejected_spans{0};            // the collector's partialSuccess.rejectedSpans
  std::atomic<uint64_t> dropped_spans_queue_full{0};  // Record() found the queue full
  std::atomic<uint64_t> dropped_spans_failed{0};      // in failed batches
  std::atomic<uint64_t> dropped_spans_shutdown{0};    // recorded after Shutdown(), or still queued at its deadline
  std::atomic<uint64_t> exported_batches{0};
  std::atomic<uint64_t> failed_batches{0};
};

class OtlpExporter : public SpanSink {
 public:
  // Validates the options and the URL (kInvalidArgument naming the setting) and starts the thread.
  static StatusOr<std::shared_ptr<OtlpExporter>> Create(OtlpExporterOptions options);
  // Stops at once: whatever is still queued is dropped (counted). Call Shutdown() first to drain.
  ~OtlpExporter() override = default;

  // Never blocks beyond one short lock: queues the span or drops it (counted).
  void Record(Span span) override = 0;
  // Sends every span queued before the call without waiting for max_delay_ms; true when all of them
  // were handed to the collector (exported or failed) before `deadline`.
  bool Flush(TimePoint deadline) override = 0;
  // Refuses new spans, drains the queue until `deadline`, aborts the export in flight at the
  // deadline and joins the thread. True when everything queued was handed to the collector.
  // Idempotent; the process's drain on SIGTERM calls it with its own deadline.
  bool Shutdown(TimePoint deadline) override = 0;

  virtual const OtlpExporterCounters& counters() const = 0;
  // POST target, "http://host:port/prefix/v1/traces", for logs.
  virtual const std::string& endpoint() const = 0;
};

// The OTLP JSON encoding of `spans` (ExportTraceServiceRequest): one resourceSpans with
// service.name/service.version, one scopeSpans, ids as hex strings, times and intValue as decimal
// strings (proto3 JSON maps 64-bit integers to strings), kind and status code as enum numbers. Text
// that is not valid UTF-8 has each bad byte replaced by U+FFFD.
std::string EncodeOtlpTracesJson(const std::vector<Span>& spans, const std::string& service_name,
                                 const std::string& service_version);
// The same, appended to `out`.
void AppendOtlpTracesJson(std::string& out, const std::vector<Span>& spans, const std::string& service_name,
                          const std::string& service_version);
// The same, as a JSON value (for tests and tools).
nlohmann::ordered_json EncodeOtlpTraces(const std::vector<Span>& spans, const std::string& service_name,
                                const std::string& service_version);

// "http://host[:port][/prefix]" -> host, port (default 80), prefix without trailing '/'.
struct OtlpEndpoint {
  std::string host;
  uint16_t port = 80;
  std::string path;  // full target path: prefix + "/v1/traces"
};
StatusOr<OtlpEndpoint> ParseCollectorUrl(const std::string& url);

}  // namespace bff
