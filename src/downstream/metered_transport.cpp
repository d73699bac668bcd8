// Downstream call counts and latencies per service and outcome.
#include "downstream/metered_transport.h"

namespace bff {

std::string_view DownstreamOutcomeName(DownstreamOutcome o) {
  switch (o) {
    case DownstreamOutcome::kOk: return "ok";
    case DownstreamOutcome::kClientError: return "client_error";
    case DownstreamOutcome::kError: return "error";
    case DownstreamOutcome::kTimeout: return "timeout";
  }
  return "error";
}

DownstreamOutcome ClassifyDownstream(const StatusOr<HttpResponse>& r) {
  if (!r.ok()) return r.status().code() == StatusCode::kDeadlineExceeded ? DownstreamOutcome::kTimeout : DownstreamOutcome::kError;
  if (r->status < 400) return DownstreamOutcome::kOk;
  // 429 means the service is overloaded, not that this request was wrong.
  if (r->status < 500 && r->status != 429) return DownstreamOutcome::kClientError;
  return DownstreamOutcome::kError;
}

MeteredTransport::MeteredTransport(Transport& inner, Scheduler& scheduler, MetricsRegistry& metrics)
    : inner_(inner),
      scheduler_(scheduler),
      durations_(metrics.Histograms("bffd_downstream_request_duration_seconds",
                                    "Time from sending a call to a domain service to its answer or failure.",
                                    {"service", "outcome"})) {
  auto& requests = metrics.Counters("bffd_downstream_requests_total",
                                    "Calls to domain services, by service and outcome (ok, client_error, error, timeout).",
                                    {"service", "outcome"});
  for (size_t s = 0; s < kAllServices.size(); ++s) {
    for (size_t o = 0; o < kDownstreamOutcomes; ++o) {
      handles_[s][o].requests =
          &requests.With({ServiceName(kAllServices[s]), DownstreamOutcomeName(static_cast<DownstreamOutcome>(o))});
    }
  }
}

void MeteredTransport::Send(Service service, HttpRequest req, TimePoint deadline, ResponseCallback done) {
  const TimePoint started = scheduler_.Now();
  inner_.Send(service, std::move(req), deadline, [this, service, started, done = std::move(done)](StatusOr<HttpResponse> r) {
    const DownstreamOutcome outcome = ClassifyDownstream(r);
    Handles& h = handles_[static_cast<size_t>(service)][static_cast<size_t>(outcome)];
    h.requests->Inc();
    Histogram* duration = h.duration.load(std::memory_order_acquire);
    if (!duration) {
      // Racing first calls get the same child from the family, so either store is right.
      duration = &durations_.With({ServiceName(service), DownstreamOutcomeName(outcome)});
      h.duration.store(duration, std::memory_order_release);
    }
    duration->ObserveDuration(scheduler_.Now() - started);
    done(std::move(r));
  });
}

}  // namespace bff
