// In-process transport: hands the request to the embedded domain and races its answer against the deadline.
#include "downstream/in_process_transport.h"

#include <atomic>

namespace bff {

void InProcessTransport::Send(Service service, HttpRequest req, TimePoint deadline, ResponseCallback done) {
  struct Once {
    std::atomic<bool> fired{false};
    ResponseCallback done;
    std::shared_ptr<TimerHandle> timer;
  };
  auto once = std::make_shared<Once>();
  once->done = std::move(done);
  if (deadline <= scheduler_.Now()) {
    scheduler_.Post([once, service] {
      once->done(DeadlineExceeded(std::string(ServiceName(service)) + ": no time budget left"));
    });
    return;
  }
  if (deadline != TimePoint::max()) {
    // Weak: the domain's responder owns `once`; a strong capture would make a cycle through once->timer.
    once->timer = scheduler_.RunAt(deadline, [weak = std::weak_ptr<Once>(once), service] {
      auto held = weak.lock();
      if (held && !held->fired.exchange(true)) {
        held->done(DeadlineExceeded(std::string(ServiceName(service)) + ": timed out"));
      }
    });
  }
  DomainServices* domain = &domain_;
  scheduler_.Post([domain, once, req = std::move(req)]() mutable {
    domain->Handle(std::move(req), [once](HttpResponse resp) {
      if (once->fired.exchange(true)) return;
      if (once->timer) {
        once->timer->Cancel();
        once->timer.reset();  // its callback holds `once`
      }
      once->done(std::move(resp));
    });
  });
}

}  // namespace bff
