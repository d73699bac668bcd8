// W3C traceparent: valid headers are accepted and continued, anything malformed starts a new trace.
#include "observability/trace_context.h"

#include <gtest/gtest.h>

namespace bff {
namespace {

constexpr char kValid[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

TEST(TraceContextTest, ParsesValidHeader) {
  auto t = TraceContext::Parse(kValid, "vendor=x");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(t->span_id, "00f067aa0ba902b7");
  EXPECT_EQ(t->flags, 1);
  EXPECT_EQ(t->tracestate, "vendor=x");
  EXPECT_EQ(t->ToTraceparent(), kValid);
}

TEST(TraceContextTest, AcceptKeepsTraceIdAndMakesAChildSpan) {
  TraceContext t = TraceContext::AcceptOrCreate(kValid);
  EXPECT_EQ(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(t.parent_span_id, "00f067aa0ba902b7");
  EXPECT_NE(t.span_id, "00f067aa0ba902b7");
  EXPECT_TRUE(t.valid());
  TraceContext c = t.Child();
  EXPECT_EQ(c.trace_id, t.trace_id);
  EXPECT_EQ(c.parent_span_id, t.span_id);
}

TEST(TraceContextTest, RejectsMalformedHeaders) {
  const char* bad[] = {
      "",
      "garbage",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",     // short flags
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01",    // zero trace id
      "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",    // zero span id
      "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",    // forbidden version
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",    // upper case
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xx", // v00 with extra fields
      "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
  };
  for (const char* h : bad) EXPECT_FALSE(TraceContext::Parse(h).has_value()) << h;
  TraceContext fresh = TraceContext::AcceptOrCreate("garbage");
  EXPECT_TRUE(fresh.valid());
  EXPECT_TRUE(fresh.parent_span_id.empty());
}

TEST(TraceContextTest, FutureVersionsParseTheirFirstFields) {
  auto t = TraceContext::Parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->span_id, "00f067aa0ba902b7");
}

TEST(TraceContextTest, NewRootsAreUnique) {
  EXPECT_NE(TraceContext::NewRoot().trace_id, TraceContext::NewRoot().trace_id);
}

}  // namespace
}  // namespace bff

namespace bff {
namespace {

TEST(TraceSampling, NewTracesFollowTheSamplePercentAndCallersKeepTheirFlag) {
  SetNewTraceSamplePercent(0);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(TraceContext::NewRoot().flags, 0) << "0%: no new trace is sampled";
  auto continued = TraceContext::AcceptOrCreate("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  EXPECT_EQ(continued.flags, 1) << "a caller's sampled flag is honoured whatever the percentage";
  EXPECT_EQ(continued.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
  SetNewTraceSamplePercent(30);
  int sampled = 0;
  for (int i = 0; i < 2000; ++i) sampled += TraceContext::NewRoot().flags;
  EXPECT_GT(sampled, 400);
  EXPECT_LT(sampled, 800);
  SetNewTraceSamplePercent(100);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(TraceContext::NewRoot().flags, 1);
}

}  // namespace
}  // namespace bff
