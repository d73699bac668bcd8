// Span values, the shared state behind ActiveSpan, and the Tracer that starts spans.
#include "observability/span.h"

#include <algorithm>
#include <atomic>
#include <chrono>

namespace bff {
namespace {
// Enough for an entry span's attributes, so they are allocated once.
constexpr size_t kTypicalAttributes = 8;
}  // namespace

std::string_view SpanKindName(SpanKind kind) {
  switch (kind) {
    case SpanKind::kInternal: return "internal";
    case SpanKind::kServer: return "server";
    case SpanKind::kClient: return "client";
  }
  return "internal";
}

std::string_view SpanStatusName(SpanStatus status) {
  switch (status) {
    case SpanStatus::kUnset: return "unset";
    case SpanStatus::kOk: return "ok";
    case SpanStatus::kError: return "error";
  }
  return "unset";
}

int64_t UnixNanosNow() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void Span::SetAttribute(AttributeKey key, AttributeValue value) {
  // Spans carry a handful of attributes: a linear scan beats any index.
  for (auto& a : attributes) {
    if (a.key == key.view()) {
      a.value = std::move(value);
      return;
    }
  }
  if (attributes.empty()) attributes.reserve(kTypicalAttributes);
  attributes.push_back({key.view(), std::move(value)});
}

const AttributeValue* Span::FindAttribute(std::string_view key) const {
  for (const auto& a : attributes) {
    if (a.key == key) return &a.value;
  }
  return nullptr;
}

struct ActiveSpan::State {
  Span span;
  std::shared_ptr<SpanSink> sink;  // shared: a span may outlive the Tracer that started it
  TimePoint steady_start;
  std::atomic<bool> ended{false};

  void Finish() {
    if (ended.exchange(true, std::memory_order_acq_rel)) return;
    // The end time is the start plus a steady-clock duration, so a wall-clock step while the span is
    // open cannot make it negative.
    auto elapsed = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - steady_start).count();
    span.end_unix_nano = span.start_unix_nano + std::max<int64_t>(elapsed, 0);
    sink->Record(std::move(span));
  }

  bool open() const { return !ended.load(std::memory_order_acquire); }

  ~State() { Finish(); }
};

ActiveSpan& ActiveSpan::SetAttribute(AttributeKey key, std::string_view value) {
  if (state_ && state_->open()) state_->span.SetAttribute(key, std::string(value));
  return *this;
}

ActiveSpan& ActiveSpan::SetAttribute(AttributeKey key, bool value) {
  if (state_ && state_->open()) state_->span.SetAttribute(key, value);
  return *this;
}

ActiveSpan& ActiveSpan::SetInt(AttributeKey key, int64_t value) {
  if (state_ && state_->open()) state_->span.SetAttribute(key, value);
  return *this;
}

ActiveSpan& ActiveSpan::SetDouble(AttributeKey key, double value) {
  if (state_ && state_->open()) state_->span.SetAttribute(key, value);
  return *this;
}

ActiveSpan& ActiveSpan::SetName(std::string_view name) {
  if (state_ && state_->open()) state_->span.name = std::string(name);
  return *this;
}

void ActiveSpan::SetOk() {
  if (!state_ || !state_->open()) return;
  state_->span.status = SpanStatus::kOk;
  state_->span.status_message.clear();
}

void ActiveSpan::SetError(std::string_view message) {
  if (!state_ || !state_->open()) return;
  state_->span.status = SpanStatus::kError;
  state_->span.status_message = std::string(message);
}

void ActiveSpan::SetStatus(const Status& status) {
  if (!state_ || !state_->open()) return;
  if (status.ok()) {
    SetOk();
    return;
  }
  SetError(status.message());
  SetAttribute(span_attr::kStatusCode, StatusCodeName(status.code()));
}

void ActiveSpan::End() {
  if (state_) state_->Finish();
}

const Span* ActiveSpan::span() const { return state_ && state_->open() ? &state_->span : nullptr; }

ActiveSpan Tracer::Start(std::string_view name, SpanKind kind, const TraceContext& trace) const {
  // Flag bit 0 is W3C's "sampled": an upstream that chose not to record this trace is followed.
  if (!Records(trace)) return ActiveSpan();
  return Open(name, kind, trace.trace_id, trace.span_id, trace.parent_span_id);
}

ActiveSpan Tracer::StartChild(std::string_view name, SpanKind kind, const TraceContext& parent) const {
  if (!Records(parent)) return ActiveSpan();
  return Open(name, kind, parent.trace_id, RandomIdHex(kSpanIdBytes), parent.span_id);
}

ActiveSpan Tracer::Open(std::string_view name, SpanKind kind, std::string_view trace_id, std::string span_id,
                        std::string_view parent_span_id) const {
  auto state = std::make_shared<ActiveSpan::State>();
  state->sink = sink_;
  Span& s = state->span;
  s.trace_id = trace_id;
  s.span_id = std::move(span_id);
  s.parent_span_id = parent_span_id;
  s.name = name;
  s.kind = kind;
  s.start_unix_nano = UnixNanosNow();
  state->steady_start = Clock::now();
  return ActiveSpan(std::move(state));
}

}  // namespace bff
