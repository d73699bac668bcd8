// Parallel fan-out of downstream calls with per-call and per-request deadlines, fallbacks and degradation.
//
// Every call starts at once (independent calls never run in sequence). Each call has a timeout bounded by
// the request deadline; a call whose budget is already spent is not started. An optional call that fails
// or times out runs its fallback and is listed in `degraded`; a critical call that fails ends the whole
// fan-out with its status. Results are applied under the fan-out's lock, so a late answer from a call that
// already timed out is dropped, never written over its fallback.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/scheduler.h"
#include "common/status.h"
#include "observability/metrics.h"

namespace bff {

enum class Criticality { kCritical, kOptional };

struct CallOutcome {
  std::string name;
  Status status;
  bool started = false;
  Duration elapsed{};
};

struct FanOutResult {
  Status status;                      // OK unless a critical call failed
  std::string failed_call;            // name of the critical call that failed
  std::vector<std::string> degraded;  // optional calls that fell back, in the order they were added
  std::vector<CallOutcome> calls;     // one per added call, in the order added
};

// How the calls of fan-outs ended, by call name (bffd_fanout_calls_total{call, outcome}): ok; fallback (an
// optional call failed, timed out or had no budget, and its part of the answer is degraded); failed (a
// critical call did, failing the whole fan-out); abandoned (still running when a critical call failed).
class FanOutMetrics {
 public:
  explicit FanOutMetrics(MetricsRegistry& metrics);
  void Record(const std::string& call, std::string_view outcome) const;

 private:
  CounterFamily& calls_;
};

class FanOut : public std::enable_shared_from_this<FanOut> {
 public:
  // `metrics`, when given, must outlive the fan-out.
  static std::shared_ptr<FanOut> Create(Scheduler& scheduler, TimePoint request_deadline = TimePoint::max(),
                                        const FanOutMetrics* metrics = nullptr);

  // Adds a call. `start(call_deadline, complete)` issues it; `complete` may be called from any thread, once.
  // On success `on_ok(value)` runs; on failure, timeout or a spent budget `on_fallback(status)` runs for an
  // optional call. Must be called before Run().
  template <typename T>
  void Add(std::string name, Criticality criticality, Duration timeout,
           std::function<void(TimePoint, std::function<void(StatusOr<T>)>)> start, std::function<void(T)> on_ok,
           std::function<void(const Status&)> on_fallback = {}) {
    size_t index = calls_.size();
    Call call;
    call.name = std::move(name);
    call.criticality = criticality;
    call.timeout = timeout;
    call.fallback = std::move(on_fallback);
    call.start = [this, index, start = std::move(start), on_ok = std::move(on_ok)](TimePoint deadline) mutable {
      auto self = shared_from_this();
      start(deadline, [self, index, on_ok](StatusOr<T> r) mutable {
        if (r.ok()) {
          self->Complete(index, Status::Ok(), [&] { on_ok(std::move(r).value()); });
        } else {
          self->Complete(index, r.status(), nullptr);
        }
      });
    };
    calls_.push_back(std::move(call));
  }

  // Starts every call; `on_done` runs exactly once, on a scheduler thread, when all calls have ended or a
  // critical call failed.
  void Run(std::function<void(FanOutResult)> on_done);

 private:
  struct Call {
    std::string name;
    Criticality criticality = Criticality::kOptional;
    Duration timeout{};
    std::function<void(TimePoint)> start;
    std::function<void(const Status&)> fallback;
    std::shared_ptr<TimerHandle> timer;
    TimePoint started_at{};
    bool done = false;
    bool started = false;
    Status status;
    Duration elapsed{};
  };

  FanOut(Scheduler& scheduler, TimePoint deadline, const FanOutMetrics* metrics)
      : scheduler_(scheduler), deadline_(deadline), metrics_(metrics) {}
  void Complete(size_t index, const Status& status, const std::function<void()>& apply);
  // Must hold mu_. Records the outcome; returns true if the fan-out just finished.
  bool FinishCallLocked(size_t index, const Status& status, const std::function<void()>& apply);
  void Deliver();

  Scheduler& scheduler_;
  TimePoint deadline_;
  const FanOutMetrics* metrics_;
  std::mutex mu_;
  std::vector<Call> calls_;
  size_t remaining_ = 0;
  bool finished_ = false;
  FanOutResult result_;
  std::function<void(FanOutResult)> on_done_;
};

}  // namespace bff
