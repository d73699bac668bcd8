// Fan-out state machine: start all calls, race each against its deadline, collect or fall back.
#include "orchestration/fanout.h"

#include <algorithm>

namespace bff {

FanOutMetrics::FanOutMetrics(MetricsRegistry& metrics)
    : calls_(metrics.Counters("bffd_fanout_calls_total",
                              "Calls of parallel fan-outs (the web product page) by how they ended: ok, fallback "
                              "(degraded part), failed (critical, request failed), abandoned.",
                              {"call", "outcome"})) {}

void FanOutMetrics::Record(const std::string& call, std::string_view outcome) const { calls_.With({call, outcome}).Inc(); }

std::shared_ptr<FanOut> FanOut::Create(Scheduler& scheduler, TimePoint request_deadline, const FanOutMetrics* metrics) {
  return std::shared_ptr<FanOut>(new FanOut(scheduler, request_deadline, metrics));
}

void FanOut::Run(std::function<void(FanOutResult)> on_done) {
  auto self = shared_from_this();
  std::vector<size_t> to_start;
  bool finished_now = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    on_done_ = std::move(on_done);
    remaining_ = calls_.size();
    TimePoint now = scheduler_.Now();
    for (size_t i = 0; i < calls_.size(); ++i) {
      Call& c = calls_[i];
      TimePoint call_deadline = deadline_;
      if (c.timeout > Duration::zero() && now + c.timeout < call_deadline) call_deadline = now + c.timeout;
      if (call_deadline <= now) {
        // The budget is spent: do not start work whose answer nobody would wait for.
        finished_now = FinishCallLocked(i, DeadlineExceeded(c.name + ": no time budget left"), nullptr) || finished_now;
        continue;
      }
      c.started = true;
      c.started_at = now;
      if (call_deadline != TimePoint::max()) {
        c.timer = scheduler_.RunAt(call_deadline, [self, i] {
          self->Complete(i, DeadlineExceeded(self->calls_[i].name + ": timed out"), nullptr);
        });
      }
      to_start.push_back(i);
    }
    if (calls_.empty()) {
      finished_ = true;
      finished_now = true;
    }
  }
  // Start outside the lock: a transport may complete synchronously in tests.
  for (size_t i : to_start) {
    TimePoint call_deadline = deadline_;
    if (calls_[i].timeout > Duration::zero() && calls_[i].started_at + calls_[i].timeout < call_deadline) {
      call_deadline = calls_[i].started_at + calls_[i].timeout;
    }
    calls_[i].start(call_deadline);
  }
  if (finished_now) Deliver();
}

void FanOut::Complete(size_t index, const Status& status, const std::function<void()>& apply) {
  bool finished_now;
  {
    std::lock_guard<std::mutex> lock(mu_);
    finished_now = FinishCallLocked(index, status, apply);
  }
  if (finished_now) Deliver();
}

bool FanOut::FinishCallLocked(size_t index, const Status& status, const std::function<void()>& apply) {
  Call& c = calls_[index];
  if (c.done || finished_) return false;  // late answer after a timeout, or the fan-out already ended
  c.done = true;
  c.status = status;
  if (c.started) c.elapsed = scheduler_.Now() - c.started_at;
  if (c.timer) {
    c.timer->Cancel();
    c.timer.reset();  // the timer's callback holds this fan-out
  }
  --remaining_;
  if (status.ok()) {
    if (apply) apply();
  } else if (c.criticality == Criticality::kCritical) {
    finished_ = true;
    result_.status = status;
    result_.failed_call = c.name;
    return true;
  } else {
    if (c.fallback) c.fallback(status);
  }
  if (remaining_ == 0) {
    finished_ = true;
    return true;
  }
  return false;
}

void FanOut::Deliver() {
  FanOutResult result;
  std::function<void(FanOutResult)> done;
  {
    std::lock_guard<std::mutex> lock(mu_);
    result = std::move(result_);
    for (Call& c : calls_) {
      CallOutcome o;
      o.name = c.name;
      o.started = c.started;
      o.elapsed = c.elapsed;
      o.status = c.done ? c.status : Status(StatusCode::kCancelled, "abandoned after a critical failure");
      if (c.done && !c.status.ok() && c.criticality == Criticality::kOptional) result.degraded.push_back(c.name);
      if (metrics_) {
        std::string_view outcome = !c.done                                    ? "abandoned"
                                   : c.status.ok()                            ? "ok"
                                   : c.criticality == Criticality::kOptional ? "fallback"
                                                                              : "failed";
        metrics_->Record(c.name, outcome);
      }
      if (c.timer) {
        c.timer->Cancel();
        c.timer.reset();
      }
      result.calls.push_back(std::move(o));
    }
    done = std::move(on_done_);
  }
  auto self = shared_from_this();
  scheduler_.Post([self, done = std::move(done), result = std::move(result)]() mutable {
    if (done) done(std::move(result));
  });
}

}  // namespace bff
