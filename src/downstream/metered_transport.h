// A Transport decorator that counts and times every downstream call per service and outcome.
//
// It sits where the typed clients hand requests to the transport, so it sees each call as a BFF made it
// (with read coalescing on, several calls may share one request to the service). Outcomes:
//   ok            the service answered 1xx-3xx
//   client_error  the service answered 4xx other than 429: it refused this request (unknown sku, bad input)
//   error         5xx, 429, unreachable, or any transport failure
//   timeout       the call's deadline passed first
#pragma once

#include <array>
#include <atomic>

#include "downstream/transport.h"
#include "observability/metrics.h"

namespace bff {

enum class DownstreamOutcome { kOk, kClientError, kError, kTimeout };
inline constexpr size_t kDownstreamOutcomes = 4;
std::string_view DownstreamOutcomeName(DownstreamOutcome o);
DownstreamOutcome ClassifyDownstream(const StatusOr<HttpResponse>& r);

class MeteredTransport : public Transport {
 public:
  // Registers bffd_downstream_requests_total and bffd_downstream_request_duration_seconds in `metrics`.
  MeteredTransport(Transport& inner, Scheduler& scheduler, MetricsRegistry& metrics);
  void Send(Service service, HttpRequest req, TimePoint deadline, ResponseCallback done) override;

 private:
  struct Handles {
    Counter* requests = nullptr;
    // Resolved at the pair's first call: a histogram per pair from the start would expose hundreds of
    // empty buckets for outcomes that never happen.
    std::atomic<Histogram*> duration{nullptr};
  };
  Transport& inner_;
  Scheduler& scheduler_;
  HistogramFamily& durations_;
  // Every (service, outcome) pair: a call is counted without a lookup.
  std::array<std::array<Handles, kDownstreamOutcomes>, kAllServices.size()> handles_;
};

}  // namespace bff
