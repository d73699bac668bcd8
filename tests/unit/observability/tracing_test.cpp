// Tracing set-up from settings: off by default, log lines, OTLP export, both, bad settings refused.
#include "observability/tracing.h"

#include <mutex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "support/otlp_receiver.h"

namespace bff {
namespace {

using namespace std::chrono_literals;

class LogCapture {
 public:
  LogCapture() {
    log::SetSink([this](std::string_view line) {
      std::lock_guard<std::mutex> lock(mu_);
      if (line.find("\"msg\":\"span\"") != std::string_view::npos) ++span_lines_;
    });
  }
  ~LogCapture() { log::SetSink(nullptr); }
  int span_lines() {
    std::lock_guard<std::mutex> lock(mu_);
    return span_lines_;
  }

 private:
  std::mutex mu_;
  int span_lines_ = 0;
};

TEST(TracingTest, OffByDefault) {
  auto t = MakeTracing({});
  ASSERT_TRUE(t.ok());
  EXPECT_FALSE(t->tracer.enabled());
  EXPECT_EQ(t->exporter, nullptr);
  EXPECT_TRUE(t->Shutdown(Clock::now()));
}

TEST(TracingTest, LogSpansOnly) {
  LogCapture logs;
  TracingSettings s;
  s.log_spans = true;
  auto t = MakeTracing(s);
  ASSERT_TRUE(t.ok());
  EXPECT_TRUE(t->tracer.enabled());
  EXPECT_EQ(t->exporter, nullptr);
  t->tracer.Start("x", SpanKind::kServer, TraceContext::NewRoot()).End();
  EXPECT_EQ(logs.span_lines(), 1);
}

TEST(TracingTest, ExportAndLogTogether) {
  LogCapture logs;
  testing::OtlpReceiver receiver;
  TracingSettings s;
  s.otlp.collector_url = receiver.url();
  s.log_spans = true;
  auto t = MakeTracing(s);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ASSERT_NE(t->exporter, nullptr);
  TraceContext trace = TraceContext::NewRoot();
  t->tracer.Start("x", SpanKind::kServer, trace).End();
  EXPECT_TRUE(t->Shutdown(Clock::now() + 10s));
  EXPECT_EQ(receiver.WaitForSpans(trace.trace_id, 1, 10s).size(), 1u);
  EXPECT_EQ(logs.span_lines(), 1);
  EXPECT_EQ(t->exporter->counters().exported_spans.load(), 1u);
}

TEST(TracingTest, BadCollectorUrlIsRefusedByName) {
  TracingSettings s;
  s.otlp.collector_url = "grpc://collector:4317";
  auto t = MakeTracing(s);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("tracing.collector_url"), std::string::npos);
}

}  // namespace
}  // namespace bff
