// Fan-out of spans to several sinks.
#include "observability/fanout_span_sink.h"

#include <algorithm>

namespace bff {

FanoutSpanSink::FanoutSpanSink(std::vector<std::shared_ptr<SpanSink>> sinks) : sinks_(std::move(sinks)) {
  sinks_.erase(std::remove(sinks_.begin(), sinks_.end(), nullptr), sinks_.end());
}

void FanoutSpanSink::Record(Span span) {
  if (sinks_.empty()) return;
  for (size_t i = 0; i + 1 < sinks_.size(); ++i) sinks_[i]->Record(span);
  sinks_.back()->Record(std::move(span));
}

bool FanoutSpanSink::Flush(TimePoint deadline) {
  bool all = true;
  for (auto& s : sinks_) all = s->Flush(deadline) && all;
  return all;
}

bool FanoutSpanSink::Shutdown(TimePoint deadline) {
  bool all = true;
  for (auto& s : sinks_) all = s->Shutdown(deadline) && all;
  return all;
}

std::shared_ptr<SpanSink> CombineSpanSinks(std::vector<std::shared_ptr<SpanSink>> sinks) {
  sinks.erase(std::remove(sinks.begin(), sinks.end(), nullptr), sinks.end());
  if (sinks.empty()) return nullptr;
  if (sinks.size() == 1) return sinks.front();
  return std::make_shared<FanoutSpanSink>(std::move(sinks));
}

}  // namespace bff
