// A Transport decorator that coalesces identical in-flight GETs into one downstream call.
//
// Key: service + method + target. The first caller's request (its traceparent and credential) goes
// downstream; later callers share its answer. Each waiter keeps its own deadline: if the shared call
// outlives it, that waiter alone gets kDeadlineExceeded. Requests other than GET pass straight through.
#pragma once

#include <memory>

#include "downstream/transport.h"
#include "orchestration/coalescer.h"

namespace bff {

class CoalescingTransport : public Transport {
 public:
  CoalescingTransport(Transport& inner, Scheduler& scheduler) : inner_(inner), scheduler_(scheduler) {}
  void Send(Service service, HttpRequest req, TimePoint deadline, ResponseCallback done) override;
  uint64_t downstream_calls() const { return coalescer_.started(); }
  uint64_t coalesced_calls() const { return coalescer_.joined(); }

 private:
  Transport& inner_;
  Scheduler& scheduler_;
  Coalescer<StatusOr<HttpResponse>> coalescer_;
};

}  // namespace bff
