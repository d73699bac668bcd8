// SpanSink that hands every span to several sinks (e.g. the OTLP exporter and the span log).
#pragma once

#include <memory>
#include <vector>

#include "observability/span.h"

namespace bff {

class FanoutSpanSink : public SpanSink {
 public:
  explicit FanoutSpanSink(std::vector<std::shared_ptr<SpanSink>> sinks);

  // The last sink gets the span itself, the others a copy.
  void Record(Span span) override;
  // Each sink in turn, all against the same deadline; true when every one finished.
  bool Flush(TimePoint deadline) override;
  bool Shutdown(TimePoint deadline) override;

 private:
  std::vector<std::shared_ptr<SpanSink>> sinks_;
};

// nullptr for no sink, the sink itself for one, a FanoutSpanSink for more; null entries are skipped.
std::shared_ptr<SpanSink> CombineSpanSinks(std::vector<std::shared_ptr<SpanSink>> sinks);

}  // namespace bff
