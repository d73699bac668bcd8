// Coalescing transport: shares one downstream GET among identical concurrent callers.
#include "orchestration/coalescing_transport.h"

#include <atomic>

namespace bff {

void CoalescingTransport::Send(Service service, HttpRequest req, TimePoint deadline, ResponseCallback done) {
  if (req.method != "GET") {
    inner_.Send(service, std::move(req), deadline, std::move(done));
    return;
  }
  std::string key = std::string(ServiceName(service)) + " GET " + req.Target();
  // Each waiter races the shared answer against its own deadline; whichever comes first wins.
  struct Once {
    std::atomic<bool> fired{false};
    ResponseCallback done;
    std::shared_ptr<TimerHandle> timer;
  };
  auto once = std::make_shared<Once>();
  once->done = std::move(done);
  if (deadline != TimePoint::max()) {
    // Weak: the waiter owns `once`; a strong capture here would make a cycle through once->timer.
    once->timer = scheduler_.RunAt(deadline, [weak = std::weak_ptr<Once>(once)] {
      auto held = weak.lock();
      if (held && !held->fired.exchange(true)) {
        held->done(DeadlineExceeded("deadline passed while waiting for a shared call"));
      }
    });
  }
  Scheduler& scheduler = scheduler_;
  coalescer_.Run(
      key,
      [once, &scheduler](const StatusOr<HttpResponse>& r) {
        if (once->fired.exchange(true)) return;
        if (once->timer) {
          once->timer->Cancel();
          once->timer.reset();  // its callback holds `once`
        }
        // Post so no waiter runs inside another waiter's call stack.
        scheduler.Post([once, r] { once->done(r); });
      },
      [&](Coalescer<StatusOr<HttpResponse>>::Finish finish) {
        inner_.Send(service, std::move(req), deadline, [finish](StatusOr<HttpResponse> r) { finish(std::move(r)); });
      });
}

}  // namespace bff
