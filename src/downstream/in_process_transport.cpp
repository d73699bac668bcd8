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
    once->timer = scheduler_.RunAt(deadline, [once, service] {
      if (!once->fired.exchange(true)) {
        once->done(DeadlineExceeded(std::string(ServiceName(service)) + ": timed out"));
      }
    });
  }
  DomainServices* domain = &domain_;
  scheduler_.Post([domain, once, req = std::move(req)]() mutable {
    domain->Handle(std::move(req), [once](HttpResponse resp) {
      if (once->fired.exchange(true)) return;
      if (once->timer) once->timer->Cancel();
      once->done(std::move(resp));
    });
  });
}

}  // namespace bff
