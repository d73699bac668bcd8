// ApiFront's entry spans: one server span per request, child of the caller, named by route pattern.
#include "api/api.h"

#include <gtest/gtest.h>

#include <mutex>
#include <optional>

#include "support/collecting_span_sink.h"

namespace bff {
namespace {

using testing::CollectingSpanSink;

using testing::SpanAttr;

class ApiFrontSpanTest : public ::testing::Test {
 protected:
  ApiFrontSpanTest() : sink_(std::make_shared<CollectingSpanSink>()), tracer_(sink_), front_(Options(), sched_) {
    front_.Route("GET", "/web/v1/products/{sku}", "web", [this](std::shared_ptr<ApiCall> call, Respond respond) {
      seen_tracer_ = call->ctx().tracer;
      // A lower layer's child span, started from the context alone.
      call->ctx().StartSpan("child", SpanKind::kInternal, call->ctx().trace.Child()).End();
      if (call->param("sku") == "degraded") call->span().SetAttribute(span_attr::kDegraded, "reviews,promotions");
      respond(HttpResponse::Json(call->param("sku") == "broken" ? 503 : 200, "{}"));
    });
  }

  ApiFront::Options Options() {
    ApiFront::Options o;
    o.tracer = &tracer_;
    return o;
  }

  HttpResponse Send(const std::string& path, const std::string& traceparent = "") {
    HttpRequest r;
    r.method = "GET";
    r.path = path;
    if (!traceparent.empty()) r.headers.Set("traceparent", traceparent);
    std::optional<HttpResponse> out;
    front_.Handle(r, [&](HttpResponse resp) { out = std::move(resp); });
    sched_.RunReady();
    EXPECT_TRUE(out.has_value());
    return out.value_or(HttpResponse{});
  }

  const Span* Named(const std::vector<Span>& spans, std::string_view name) {
    for (const auto& s : spans) {
      if (s.name == name) return &s;
    }
    return nullptr;
  }

  ManualScheduler sched_;
  std::shared_ptr<CollectingSpanSink> sink_;
  Tracer tracer_;
  ApiFront front_;
  const Tracer* seen_tracer_ = nullptr;
};

TEST_F(ApiFrontSpanTest, EachRequestIsAServerSpanChildOfTheCaller) {
  HttpResponse r = Send("/web/v1/products/SKU-1", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(seen_tracer_, &tracer_) << "handlers reach the tracer through their RequestContext";
  auto spans = sink_->spans();
  const Span* entry = Named(spans, "GET /web/v1/products/{sku}");
  ASSERT_NE(entry, nullptr);
  EXPECT_EQ(entry->kind, SpanKind::kServer);
  EXPECT_EQ(entry->trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(entry->parent_span_id, "00f067aa0ba902b7");
  auto tp = TraceContext::Parse(r.headers.Get("traceparent"));
  ASSERT_TRUE(tp.has_value());
  EXPECT_EQ(tp->span_id, entry->span_id) << "the answer names the entry span";
  EXPECT_EQ(SpanAttr<std::string>(*entry, span_attr::kHttpRoute), "/web/v1/products/{sku}");
  EXPECT_EQ(SpanAttr<std::string>(*entry, span_attr::kClientKind), "web");
  EXPECT_EQ(SpanAttr<std::string>(*entry, span_attr::kProtocol), "http");
  EXPECT_EQ(SpanAttr<int64_t>(*entry, span_attr::kHttpStatusCode), 200);
  EXPECT_EQ(entry->status, SpanStatus::kUnset);
  EXPECT_EQ(entry->FindAttribute(span_attr::kDegraded), nullptr);
  const Span* child = Named(spans, "child");
  ASSERT_NE(child, nullptr);
  EXPECT_EQ(child->parent_span_id, entry->span_id);
}

TEST_F(ApiFrontSpanTest, DegradedPartsAndServerErrorsAreOnTheSpan) {
  Send("/web/v1/products/degraded");
  Send("/web/v1/products/broken");
  auto spans = sink_->spans();
  std::vector<const Span*> entries;
  for (const auto& s : spans) {
    if (s.kind == SpanKind::kServer) entries.push_back(&s);
  }
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(SpanAttr<std::string>(*entries[0], span_attr::kDegraded), "reviews,promotions");
  EXPECT_EQ(entries[0]->status, SpanStatus::kUnset);
  EXPECT_EQ(SpanAttr<int64_t>(*entries[1], span_attr::kHttpStatusCode), 503);
  EXPECT_EQ(entries[1]->status, SpanStatus::kError);
}

TEST_F(ApiFrontSpanTest, UnmatchedPathsNeverNameTheSpan) {
  EXPECT_EQ(Send("/web/v1/nothing/here").status, 404);
  auto spans = sink_->spans();
  ASSERT_EQ(spans.size(), 1u);
  EXPECT_EQ(spans[0].name, "HTTP unmatched");
  EXPECT_EQ(SpanAttr<std::string>(spans[0], span_attr::kHttpRoute), "unmatched");
  EXPECT_EQ(SpanAttr<std::string>(spans[0], span_attr::kClientKind), "web");
}

}  // namespace
}  // namespace bff
