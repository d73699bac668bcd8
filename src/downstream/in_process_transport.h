// Downstream transport to the embedded domain services: same requests, no sockets.
#pragma once

#include "domain/domain_services.h"
#include "downstream/transport.h"

namespace bff {

class InProcessTransport : public Transport {
 public:
  InProcessTransport(DomainServices& domain, Scheduler& scheduler) : domain_(domain), scheduler_(scheduler) {}
  void Send(Service service, HttpRequest req, TimePoint deadline, ResponseCallback done) override;

 private:
  DomainServices& domain_;
  Scheduler& scheduler_;
};

}  // namespace bff
