// Spans: timed, attributed records of one hop of a trace, handed to a SpanSink when they end.
//
// A Tracer with no sink is off: Start() returns an inert ActiveSpan without allocating, and every call
// on it is a branch on a null pointer. With a sink, a span costs one allocation while it is open and
// one Record() on the sink when it ends (the OTLP exporter's Record() is one bounded-queue push).
//
// Intended use (the trace context is the one already carried in RequestContext):
//
//   // Entry span, one per client request. ctx.trace came from TraceContext::AcceptOrCreate(), so it
//   // is already this hop's span, child of the caller's.
//   ActiveSpan entry = tracer.Start("GET /mobile/v1/products/{sku}", SpanKind::kServer, ctx.trace);
//   entry.SetAttribute(span_attr::kProtocol, "http").SetAttribute(span_attr::kClientKind, "mobile");
//
//   // A downstream call: a fresh child context, whose traceparent goes on the wire, so the
//   // service's own spans hang under this client span.
//   TraceContext hop = ctx.trace.Child();
//   ActiveSpan call = tracer.Start("catalog GET /catalog/v1/products/{sku}", SpanKind::kClient, hop);
//   req.headers.Set("traceparent", hop.ToTraceparent());
//   transport.Send(..., [call](StatusOr<HttpResponse> r) mutable {
//     call.SetStatus(r.status());      // copies share one span; End() records it once
//     call.End();
//   });
//
//   // A local step (cache lookup, token check): an internal child, ended when the scope closes.
//   {
//     ActiveSpan lookup = tracer.Start("cache.lookup", SpanKind::kInternal, ctx.trace.Child());
//     lookup.SetAttribute(span_attr::kCacheHit, hit);
//   }
//
//   entry.SetAttribute(span_attr::kHttpStatusCode, 200);
//   entry.End();
//
// A span ends at the first End() or when the last copy of its ActiveSpan goes away. Copies share the
// span, so it can ride in std::function callbacks; as with any value passed between callbacks, one
// thread at a time changes it (End() itself is safe from any thread).
#pragma once

#include <concepts>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "common/scheduler.h"
#include "common/status.h"
#include "observability/trace_context.h"

namespace bff {

// Values are OTLP's SpanKind numbers, which the exporter sends as they are.
enum class SpanKind : int { kInternal = 1, kServer = 2, kClient = 3 };
// Values are OTLP's Status.code numbers. kUnset: nothing was said (OTLP treats it as ok).
enum class SpanStatus : int { kUnset = 0, kOk = 1, kError = 2 };

std::string_view SpanKindName(SpanKind kind);      // "internal", "server", "client"
std::string_view SpanStatusName(SpanStatus status);  // "unset", "ok", "error"

using AttributeValue = std::variant<std::string, int64_t, double, bool>;

// An attribute name: a string literal or a span_attr constant, never text built at run time. Spans
// keep a view of the name instead of a copy; the consteval constructors make anything else a
// compile error.
class AttributeKey {
 public:
  template <size_t N>
  consteval AttributeKey(const char (&name)[N]) : name_(name, N - 1) {}  // NOLINT: implicit by design
  consteval AttributeKey(std::string_view name) : name_(name) {}         // NOLINT: implicit by design
  constexpr std::string_view view() const { return name_; }

 private:
  std::string_view name_;
};

struct SpanAttribute {
  std::string_view key;  // static storage: see AttributeKey
  AttributeValue value;
  bool operator==(const SpanAttribute&) const = default;
};

// Attribute names used across bffd; OpenTelemetry's semantic conventions where one exists.
namespace span_attr {
inline constexpr std::string_view kProtocol = "network.protocol.name";       // "http", "mqtt", "coap", "coaps"
inline constexpr std::string_view kClientKind = "bff.client.kind";            // "mobile", "web", "iot"
inline constexpr std::string_view kHttpMethod = "http.request.method";
inline constexpr std::string_view kHttpRoute = "http.route";                  // the route pattern, never the raw path
inline constexpr std::string_view kHttpStatusCode = "http.response.status_code";
inline constexpr std::string_view kCoapCode = "coap.response.code";           // class*100+detail, e.g. 205
inline constexpr std::string_view kMqttTopic = "messaging.destination.name";  // the topic pattern, e.g. iot/v1/{device}/telemetry
inline constexpr std::string_view kPeerService = "peer.service";              // downstream service: "catalog", ...
inline constexpr std::string_view kDegraded = "bff.degraded";                 // comma-separated parts that fell back
inline constexpr std::string_view kCacheHit = "bff.cache.hit";
inline constexpr std::string_view kCacheResult = "bff.cache.result";         // "hit", "miss", "stale"
inline constexpr std::string_view kOutcome = "bff.outcome";                  // downstream: ok, client_error, error, timeout
inline constexpr std::string_view kAuthKind = "bff.auth.kind";               // "jwt", "session", "api_key"
inline constexpr std::string_view kIotResult = "bff.iot.result";             // IoT answer: "ok" or the error code
inline constexpr std::string_view kStatusCode = "bff.status_code";            // canonical code name on errors
}  // namespace span_attr

// One finished (or in-progress) span as a plain value.
struct Span {
  std::string trace_id;        // 32 lowercase hex
  std::string span_id;         // 16 lowercase hex
  std::string parent_span_id;  // empty for a root span
  std::string name;
  SpanKind kind = SpanKind::kInternal;
  int64_t start_unix_nano = 0;
  int64_t end_unix_nano = 0;
  SpanStatus status = SpanStatus::kUnset;
  std::string status_message;  // only meaningful with kError
  std::vector<SpanAttribute> attributes;  // keys are unique: setting a key again replaces its value

  void SetAttribute(AttributeKey key, AttributeValue value);
  const AttributeValue* FindAttribute(std::string_view key) const;
};

// Where finished spans go. Record() is called on the thread that ends a span, often a request
// thread, so it must never block: an exporter queues (or drops and counts) and returns.
class SpanSink {
 public:
  virtual ~SpanSink() = default;
  virtual void Record(Span span) = 0;
  // Hands everything recorded so far onward; true when done before `deadline`.
  virtual bool Flush(TimePoint deadline) {
    (void)deadline;
    return true;
  }
  // Flushes until `deadline`, then stops; spans recorded afterwards are dropped. True when all
  // spans were handed onward.
  virtual bool Shutdown(TimePoint deadline) { return Flush(deadline); }
};

class ActiveSpan {
 public:
  ActiveSpan() = default;  // inert: records nothing
  ~ActiveSpan() = default;  // the shared state ends the span when the last copy goes
  ActiveSpan(const ActiveSpan&) = default;
  ActiveSpan& operator=(const ActiveSpan&) = default;
  ActiveSpan(ActiveSpan&&) noexcept = default;
  ActiveSpan& operator=(ActiveSpan&&) noexcept = default;

  // False for an inert span (tracing off, or the trace is not sampled): callers may skip building
  // expensive attribute values.
  bool recording() const { return state_ != nullptr; }

  ActiveSpan& SetAttribute(AttributeKey key, std::string_view value);
  ActiveSpan& SetAttribute(AttributeKey key, const char* value) { return SetAttribute(key, std::string_view(value)); }
  ActiveSpan& SetAttribute(AttributeKey key, bool value);
  // Any integer type; unsigned values past INT64_MAX are clamped to it (OTLP ints are signed).
  template <std::integral T>
    requires(!std::same_as<T, bool>)
  ActiveSpan& SetAttribute(AttributeKey key, T value) {
    if constexpr (std::is_unsigned_v<T>) {
      if (static_cast<uint64_t>(value) > static_cast<uint64_t>(INT64_MAX)) return SetInt(key, INT64_MAX);
    }
    return SetInt(key, static_cast<int64_t>(value));
  }
  template <std::floating_point T>
  ActiveSpan& SetAttribute(AttributeKey key, T value) {
    return SetDouble(key, static_cast<double>(value));
  }

  // Renames the span, for spans whose name (a route pattern) is known only after they started.
  ActiveSpan& SetName(std::string_view name);

  void SetOk();
  void SetError(std::string_view message);
  // Ok for an ok Status; otherwise error with its message and bff.status_code = the canonical name.
  void SetStatus(const Status& status);

  // Records the span with the sink; later calls (and later changes) do nothing.
  void End();

  // The span as it stands (nullptr when inert); for tests and for logging its ids.
  const Span* span() const;

 private:
  friend class Tracer;
  struct State;
  explicit ActiveSpan(std::shared_ptr<State> state) : state_(std::move(state)) {}
  ActiveSpan& SetInt(AttributeKey key, int64_t value);
  ActiveSpan& SetDouble(AttributeKey key, double value);
  std::shared_ptr<State> state_;
};

class Tracer {
 public:
  Tracer() = default;  // off
  explicit Tracer(std::shared_ptr<SpanSink> sink) : sink_(std::move(sink)) {}

  bool enabled() const { return sink_ != nullptr; }
  // Whether Start() with `trace` (or one of its children) records anything: callers skip building
  // span names and child ids for the traces that are not sampled.
  bool Records(const TraceContext& trace) const { return sink_ && trace.valid() && (trace.flags & 1) != 0; }

  // Starts a span whose ids are `trace`'s: trace_id, span_id, parent_span_id. The span is inert when
  // the tracer is off, `trace` is not valid, or its sampled flag is clear (the caller asked not to
  // record this trace; its traceparent still propagates).
  ActiveSpan Start(std::string_view name, SpanKind kind, const TraceContext& trace) const;
  // Starts a span for a fresh child of `parent` (what Start(name, kind, parent.Child()) records),
  // without building the child context first: for local steps whose ids go nowhere else.
  ActiveSpan StartChild(std::string_view name, SpanKind kind, const TraceContext& parent) const;

  // Records an already complete span (e.g. one timed elsewhere).
  void Record(Span span) const {
    if (sink_) sink_->Record(std::move(span));
  }

  SpanSink* sink() const { return sink_.get(); }

 private:
  ActiveSpan Open(std::string_view name, SpanKind kind, std::string_view trace_id, std::string span_id,
                  std::string_view parent_span_id) const;
  std::shared_ptr<SpanSink> sink_;
};

// Current wall-clock time as unix nanoseconds.
int64_t UnixNanosNow();

}  // namespace bff
