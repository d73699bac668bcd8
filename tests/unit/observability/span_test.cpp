// Spans: ids from the trace context, typed attributes, one record per span, inert when tracing is off;
// the log and fan-out sinks.
#include "observability/span.h"

#include <functional>
#include <limits>
#include <mutex>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/log.h"
#include "observability/fanout_span_sink.h"
#include "observability/log_span_sink.h"

namespace bff {
namespace {

class FakeSink : public SpanSink {
 public:
  void Record(Span span) override {
    std::lock_guard<std::mutex> lock(mu_);
    spans_.push_back(std::move(span));
  }
  bool Flush(TimePoint) override {
    ++flushes_;
    return flush_result_;
  }
  bool Shutdown(TimePoint) override {
    ++shutdowns_;
    return true;
  }
  std::vector<Span> spans() {
    std::lock_guard<std::mutex> lock(mu_);
    return spans_;
  }
  int flushes_ = 0;
  int shutdowns_ = 0;
  bool flush_result_ = true;

 private:
  std::mutex mu_;
  std::vector<Span> spans_;
};

// Captures log lines for the test's lifetime.
class LogCapture {
 public:
  LogCapture() {
    log::SetSink([this](std::string_view line) {
      std::lock_guard<std::mutex> lock(mu_);
      lines_.emplace_back(line);
    });
  }
  ~LogCapture() { log::SetSink(nullptr); }
  std::vector<std::string> lines() {
    std::lock_guard<std::mutex> lock(mu_);
    return lines_;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> lines_;
};

TEST(SpanTest, TracerWithoutSinkHandsOutInertSpans) {
  Tracer tracer;
  EXPECT_FALSE(tracer.enabled());
  ActiveSpan span = tracer.Start("GET /x", SpanKind::kServer, TraceContext::NewRoot());
  EXPECT_FALSE(span.recording());
  span.SetAttribute("k", "v").SetAttribute("n", 1);
  span.SetError("boom");
  span.End();
  EXPECT_EQ(span.span(), nullptr);
}

TEST(SpanTest, SpanTakesItsIdsFromTheTraceContext) {
  auto sink = std::make_shared<FakeSink>();
  Tracer tracer(sink);
  TraceContext entry = TraceContext::NewRoot();
  TraceContext hop = entry.Child();
  ActiveSpan span = tracer.Start("catalog GET", SpanKind::kClient, hop);
  ASSERT_TRUE(span.recording());
  span.End();
  auto spans = sink->spans();
  ASSERT_EQ(spans.size(), 1u);
  EXPECT_EQ(spans[0].trace_id, entry.trace_id);
  EXPECT_EQ(spans[0].span_id, hop.span_id);
  EXPECT_EQ(spans[0].parent_span_id, entry.span_id);
  EXPECT_EQ(spans[0].name, "catalog GET");
  EXPECT_EQ(spans[0].kind, SpanKind::kClient);
  EXPECT_GT(spans[0].start_unix_nano, 0);
  EXPECT_GE(spans[0].end_unix_nano, spans[0].start_unix_nano);
}

TEST(SpanTest, AChildSpanHangsUnderItsParentWithAFreshId) {
  auto sink = std::make_shared<FakeSink>();
  Tracer tracer(sink);
  TraceContext entry = TraceContext::NewRoot();
  tracer.StartChild("cache.lookup", SpanKind::kInternal, entry).End();
  tracer.StartChild("cache.lookup", SpanKind::kInternal, entry).End();
  auto spans = sink->spans();
  ASSERT_EQ(spans.size(), 2u);
  for (const Span& s : spans) {
    EXPECT_EQ(s.trace_id, entry.trace_id);
    EXPECT_EQ(s.parent_span_id, entry.span_id);
    EXPECT_EQ(s.span_id.size(), 16u);
    EXPECT_NE(s.span_id, entry.span_id);
    EXPECT_EQ(s.name, "cache.lookup");
  }
  EXPECT_NE(spans[0].span_id, spans[1].span_id);

  TraceContext unsampled = entry;
  unsampled.flags = 0;
  EXPECT_FALSE(tracer.StartChild("x", SpanKind::kInternal, unsampled).recording());
  EXPECT_FALSE(Tracer().StartChild("x", SpanKind::kInternal, entry).recording());
}

TEST(SpanTest, AttributesKeepTheirTypes) {
  auto sink = std::make_shared<FakeSink>();
  Tracer tracer(sink);
  ActiveSpan span = tracer.Start("x", SpanKind::kInternal, TraceContext::NewRoot());
  std::string route = "/web/v1/products/{sku}";
  span.SetAttribute("literal", "mobile")  // a string literal must not turn into a bool
      .SetAttribute("string", route)
      .SetAttribute("int", 200)
      .SetAttribute("size", size_t{7})
      .SetAttribute("huge", UINT64_MAX)
      .SetAttribute("negative", int64_t{-3})
      .SetAttribute("double", 0.25)
      .SetAttribute("bool", true)
      .SetAttribute("int", 404);  // replaces, never duplicates
  span.End();
  auto spans = sink->spans();
  ASSERT_EQ(spans.size(), 1u);
  const Span& s = spans[0];
  std::vector<SpanAttribute> want = {
      {"literal", std::string("mobile")}, {"string", route},           {"int", int64_t{404}},
      {"size", int64_t{7}},              {"huge", int64_t{INT64_MAX}}, {"negative", int64_t{-3}},
      {"double", 0.25},                  {"bool", true},
  };
  EXPECT_EQ(s.attributes, want);
}

TEST(SpanTest, EndRecordsOnceAndFreezesTheSpan) {
  auto sink = std::make_shared<FakeSink>();
  Tracer tracer(sink);
  ActiveSpan span = tracer.Start("x", SpanKind::kInternal, TraceContext::NewRoot());
  span.SetAttribute("before", 1);
  span.End();
  span.SetAttribute("after", 2);
  span.SetError("too late");
  span.End();
  EXPECT_FALSE(span.span());
  auto spans = sink->spans();
  ASSERT_EQ(spans.size(), 1u);
  EXPECT_EQ(spans[0].attributes.size(), 1u);
  EXPECT_EQ(spans[0].status, SpanStatus::kUnset);
}

TEST(SpanTest, CopiesShareOneSpanAcrossCallbacks) {
  auto sink = std::make_shared<FakeSink>();
  Tracer tracer(sink);
  std::function<void(int)> done;
  {
    ActiveSpan call = tracer.Start("inventory GET", SpanKind::kClient, TraceContext::NewRoot());
    done = [call](int status) mutable {
      call.SetAttribute(span_attr::kHttpStatusCode, status);
      call.End();
    };
  }
  EXPECT_TRUE(sink->spans().empty());  // the callback still holds it
  done(200);
  done(500);  // a second completion does not record again
  auto spans = sink->spans();
  ASSERT_EQ(spans.size(), 1u);
  EXPECT_EQ(spans[0].FindAttribute(span_attr::kHttpStatusCode)->index(), 1u);
  EXPECT_EQ(std::get<int64_t>(*spans[0].FindAttribute(span_attr::kHttpStatusCode)), 200);
}

TEST(SpanTest, LastCopyGoingAwayEndsTheSpan) {
  auto sink = std::make_shared<FakeSink>();
  Tracer tracer(sink);
  {
    ActiveSpan scoped = tracer.Start("cache.lookup", SpanKind::kInternal, TraceContext::NewRoot());
    ActiveSpan copy = scoped;
    scoped.SetAttribute(span_attr::kCacheHit, false);
  }
  auto spans = sink->spans();
  ASSERT_EQ(spans.size(), 1u);
  EXPECT_EQ(std::get<bool>(*spans[0].FindAttribute(span_attr::kCacheHit)), false);
}

TEST(SpanTest, SpanOutlivesItsTracer) {
  auto sink = std::make_shared<FakeSink>();
  ActiveSpan span;
  {
    Tracer tracer(sink);
    span = tracer.Start("x", SpanKind::kServer, TraceContext::NewRoot());
  }
  span.End();
  EXPECT_EQ(sink->spans().size(), 1u);
}

TEST(SpanTest, UnsampledOrInvalidContextsAreNotRecorded) {
  auto sink = std::make_shared<FakeSink>();
  Tracer tracer(sink);
  TraceContext unsampled = TraceContext::NewRoot();
  unsampled.flags = 0;
  EXPECT_FALSE(tracer.Start("x", SpanKind::kServer, unsampled).recording());
  EXPECT_FALSE(tracer.Start("x", SpanKind::kServer, TraceContext{}).recording());
  EXPECT_TRUE(sink->spans().empty());
}

TEST(SpanTest, StatusFollowsBffStatus) {
  auto sink = std::make_shared<FakeSink>();
  Tracer tracer(sink);
  ActiveSpan ok = tracer.Start("ok", SpanKind::kInternal, TraceContext::NewRoot());
  ok.SetStatus(Status::Ok());
  ok.End();
  ActiveSpan bad = tracer.Start("bad", SpanKind::kClient, TraceContext::NewRoot());
  bad.SetStatus(Unavailable("reviews: connection refused"));
  bad.End();
  auto spans = sink->spans();
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_EQ(spans[0].status, SpanStatus::kOk);
  EXPECT_EQ(spans[1].status, SpanStatus::kError);
  EXPECT_EQ(spans[1].status_message, "reviews: connection refused");
  ASSERT_NE(spans[1].FindAttribute(span_attr::kStatusCode), nullptr);
  EXPECT_EQ(std::get<std::string>(*spans[1].FindAttribute(span_attr::kStatusCode)),
            std::string(StatusCodeName(StatusCode::kUnavailable)));
}

Span SampleSpan() {
  Span s;
  s.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  s.span_id = "00f067aa0ba902b7";
  s.parent_span_id = "1111111111111111";
  s.name = "GET /web/v1/products/{sku}";
  s.kind = SpanKind::kServer;
  s.start_unix_nano = 1700000000000000000;
  s.end_unix_nano = 1700000000012500000;
  s.status = SpanStatus::kError;
  s.status_message = "catalog unavailable";
  s.SetAttribute("http.response.status_code", int64_t{503});
  s.SetAttribute("bff.degraded", std::string("reviews,promotions"));
  s.SetAttribute("ratio", std::numeric_limits<double>::quiet_NaN());
  s.SetAttribute("bad.utf8", std::string("\xff\xfe"));
  return s;
}

TEST(LogSpanSinkTest, WritesOneParseableJsonLinePerSpan) {
  LogCapture capture;
  LogSpanSink sink;
  sink.Record(SampleSpan());
  auto lines = capture.lines();
  ASSERT_EQ(lines.size(), 1u);
  auto j = nlohmann::json::parse(lines[0], nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << lines[0];
  EXPECT_EQ(j["msg"], "span");
  EXPECT_EQ(j["level"], "info");
  EXPECT_EQ(j["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(j["span_id"], "00f067aa0ba902b7");
  EXPECT_EQ(j["parent_span_id"], "1111111111111111");
  EXPECT_EQ(j["name"], "GET /web/v1/products/{sku}");
  EXPECT_EQ(j["kind"], "server");
  EXPECT_EQ(j["start_unix_nano"], 1700000000000000000);
  EXPECT_DOUBLE_EQ(j["duration_ms"].get<double>(), 12.5);
  EXPECT_EQ(j["status"], "error");
  EXPECT_EQ(j["status_message"], "catalog unavailable");
  EXPECT_EQ(j["attributes"]["http.response.status_code"], 503);
  EXPECT_EQ(j["attributes"]["bff.degraded"], "reviews,promotions");
  EXPECT_EQ(j["attributes"]["ratio"], "NaN");
  EXPECT_TRUE(j["attributes"]["bad.utf8"].is_string());
}

TEST(LogSpanSinkTest, HonoursTheLogLevel) {
  LogCapture capture;
  LogSpanSink sink(log::Level::kDebug);  // below the default "info"
  sink.Record(SampleSpan());
  EXPECT_TRUE(capture.lines().empty());
}

TEST(FanoutSpanSinkTest, EverySinkGetsEverySpan) {
  auto a = std::make_shared<FakeSink>();
  auto b = std::make_shared<FakeSink>();
  FanoutSpanSink fanout({a, nullptr, b});
  fanout.Record(SampleSpan());
  ASSERT_EQ(a->spans().size(), 1u);
  ASSERT_EQ(b->spans().size(), 1u);
  EXPECT_EQ(a->spans()[0].attributes.size(), b->spans()[0].attributes.size());  // (one is NaN: no operator==)
  EXPECT_EQ(a->spans()[0].span_id, "00f067aa0ba902b7");
  EXPECT_EQ(b->spans()[0].span_id, "00f067aa0ba902b7");

  a->flush_result_ = false;
  EXPECT_FALSE(fanout.Flush(Clock::now()));
  EXPECT_EQ(a->flushes_, 1);
  EXPECT_EQ(b->flushes_, 1);  // one sink failing does not skip the others
  EXPECT_TRUE(fanout.Shutdown(Clock::now()));
  EXPECT_EQ(a->shutdowns_, 1);
  EXPECT_EQ(b->shutdowns_, 1);
}

TEST(FanoutSpanSinkTest, CombineAvoidsNeedlessFanout) {
  auto a = std::make_shared<FakeSink>();
  auto b = std::make_shared<FakeSink>();
  EXPECT_EQ(CombineSpanSinks({}), nullptr);
  EXPECT_EQ(CombineSpanSinks({nullptr}), nullptr);
  EXPECT_EQ(CombineSpanSinks({nullptr, a}), a);
  auto both = CombineSpanSinks({a, b});
  ASSERT_NE(both, nullptr);
  both->Record(SampleSpan());
  EXPECT_EQ(a->spans().size(), 1u);
  EXPECT_EQ(b->spans().size(), 1u);
}

}  // namespace
}  // namespace bff
