// Typed clients over a recording transport: paths, trace and credential headers, budget, status mapping.
#include "downstream/clients.h"

#include <gtest/gtest.h>

#include <mutex>
#include <optional>

#include "support/collecting_span_sink.h"

namespace bff {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

// Records each request and answers with a canned response on the scheduler.
class RecordingTransport : public Transport {
 public:
  explicit RecordingTransport(Scheduler& s) : s_(s) {}
  void Send(Service service, HttpRequest req, TimePoint deadline, ResponseCallback done) override {
    services.push_back(service);
    requests.push_back(req);
    deadlines.push_back(deadline);
    HttpResponse r = next;
    s_.Post([done = std::move(done), r] { done(r); });
  }
  Scheduler& s_;
  HttpResponse next = HttpResponse::Json(200, "{}");
  std::vector<Service> services;
  std::vector<HttpRequest> requests;
  std::vector<TimePoint> deadlines;
};

class CallerTest : public ::testing::Test {
 protected:
  CallerTest() : transport_(sched_), minter_("secret-for-tests"), clients_(transport_, minter_, sched_) {
    ctx_.trace = *TraceContext::Parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "v=1");
    ctx_.subject = "u-1001";
    ctx_.client = "mobile";
    ctx_.deadline = sched_.Now() + milliseconds(300);
  }

  StatusOr<json> Run(const std::function<void(JsonCallback)>& fn) {
    std::optional<StatusOr<json>> out;
    fn([&](StatusOr<json> r) { out = std::move(r); });
    sched_.RunReady();
    EXPECT_TRUE(out.has_value());
    return out.has_value() ? std::move(*out) : StatusOr<json>(Internal("no answer"));
  }

  ManualScheduler sched_;
  RecordingTransport transport_;
  CredentialMinter minter_;
  DownstreamClients clients_;
  RequestContext ctx_;
};

TEST_F(CallerTest, SetsTraceCredentialAndBudgetHeaders) {
  transport_.next = HttpResponse::Json(200, R"({"sku":"SKU-10001"})");
  auto r = Run([&](JsonCallback cb) { clients_.catalog().GetProduct(ctx_, sched_.Now() + milliseconds(100), "SKU-10001", cb); });
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)["sku"], "SKU-10001");
  ASSERT_EQ(transport_.requests.size(), 1u);
  const HttpRequest& req = transport_.requests[0];
  EXPECT_EQ(transport_.services[0], Service::kCatalog);
  EXPECT_EQ(req.method, "GET");
  EXPECT_EQ(req.path, "/catalog/v1/products/SKU-10001");
  auto tp = TraceContext::Parse(req.headers.Get("traceparent"));
  ASSERT_TRUE(tp.has_value());
  EXPECT_EQ(tp->trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_NE(tp->span_id, "00f067aa0ba902b7") << "downstream call must be a child span";
  EXPECT_EQ(req.headers.Get("tracestate"), "v=1");
  // The internal credential names the end user and the calling BFF.
  std::string auth(req.headers.Get("Authorization"));
  ASSERT_EQ(auth.rfind("Bearer ", 0), 0u);
  CredentialVerifier verifier("secret-for-tests");
  auto id = verifier.Verify(auth.substr(7), UnixNow());
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(id->subject, "u-1001");
  EXPECT_EQ(id->client, "mobile");
  // The call deadline (100 ms) is earlier than the request's (300 ms).
  EXPECT_EQ(req.headers.Get(kBudgetHeader), "100");
  EXPECT_EQ(transport_.deadlines[0], sched_.Now() + milliseconds(100));
}

TEST_F(CallerTest, RequestDeadlineBoundsTheCallDeadline) {
  Run([&](JsonCallback cb) { clients_.reviews().GetReviews(ctx_, sched_.Now() + milliseconds(5000), "SKU-10001", 3, cb); });
  ASSERT_EQ(transport_.requests.size(), 1u);
  EXPECT_EQ(transport_.requests[0].headers.Get(kBudgetHeader), "300");
  EXPECT_EQ(transport_.requests[0].path, "/reviews/v1/products/SKU-10001/reviews");
  EXPECT_EQ(transport_.requests[0].query, "limit=3");
}

TEST_F(CallerTest, SpentBudgetSendsNothing) {
  ctx_.deadline = sched_.Now();
  auto r = Run([&](JsonCallback cb) { clients_.catalog().GetProduct(ctx_, sched_.Now() + milliseconds(100), "SKU-10001", cb); });
  EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(transport_.requests.empty());
}

TEST_F(CallerTest, ErrorStatusesCarryTheServiceMessage) {
  transport_.next = HttpResponse::Json(404, R"({"error":{"code":"not_found","message":"unknown sku SKU-1"}})");
  auto r = Run([&](JsonCallback cb) { clients_.catalog().GetProduct(ctx_, TimePoint::max(), "SKU-1", cb); });
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("catalog: unknown sku SKU-1"), std::string::npos) << r.status().message();

  transport_.next = HttpResponse::Json(400, R"({"error":"invalid_grant","error_description":"bad password"})");
  r = Run([&](JsonCallback cb) {
    clients_.identity().Token(ctx_, TimePoint::max(), {{"grant_type", "password"}, {"username", "a"}, {"password", "b&c"}}, cb);
  });
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("invalid_grant: bad password"), std::string::npos);
  EXPECT_EQ(transport_.requests.back().headers.Get("Content-Type"), "application/x-www-form-urlencoded");
  EXPECT_EQ(transport_.requests.back().body, "grant_type=password&username=a&password=b%26c");

  transport_.next = HttpResponse::Json(503, "");
  r = Run([&](JsonCallback cb) { clients_.inventory().GetStock(ctx_, TimePoint::max(), "SKU-1", cb); });
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);

  transport_.next = HttpResponse::Json(200, "not json");
  r = Run([&](JsonCallback cb) { clients_.inventory().GetStock(ctx_, TimePoint::max(), "SKU-1", cb); });
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
}

TEST_F(CallerTest, EveryClientUsesItsContractPath) {
  struct Case {
    std::function<void(JsonCallback)> call;
    Service service;
    const char* method;
    const char* path;
  };
  TimePoint d = TimePoint::max();
  std::vector<Case> cases = {
      {[&](JsonCallback cb) { clients_.catalog().ListProducts(ctx_, d, 20, "abc", cb); }, Service::kCatalog, "GET", "/catalog/v1/products"},
      {[&](JsonCallback cb) { clients_.catalog().BatchGet(ctx_, d, {"A", "B"}, cb); }, Service::kCatalog, "POST", "/catalog/v1/products:batchGet"},
      {[&](JsonCallback cb) { clients_.inventory().ListShelves(ctx_, d, 10, "", cb); }, Service::kInventory, "GET", "/inventory/v1/shelves"},
      {[&](JsonCallback cb) { clients_.inventory().GetShelf(ctx_, d, "shelf-01-01", cb); }, Service::kInventory, "GET", "/inventory/v1/shelves/shelf-01-01"},
      {[&](JsonCallback cb) { clients_.inventory().GetStock(ctx_, d, "SKU-1", cb); }, Service::kInventory, "GET", "/inventory/v1/stock/SKU-1"},
      {[&](JsonCallback cb) {
         ShelfReading r;
         r.device_id = "sensor-1";
         r.seq = 1;
         clients_.inventory().PostShelfReading(ctx_, d, r, [cb](StatusOr<ShelfReadingAccepted> a) {
           cb(a.ok() ? StatusOr<nlohmann::json>(ShelfReadingAcceptedToJson(*a)) : StatusOr<nlohmann::json>(a.status()));
         });
       },
       Service::kInventory, "POST", "/inventory/v1/shelf-readings"},
      {[&](JsonCallback cb) { clients_.recommendations().GetRelated(ctx_, d, "SKU-1", cb); }, Service::kRecommendations, "GET", "/recommendations/v1/products/SKU-1"},
      {[&](JsonCallback cb) { clients_.promotions().GetPromotions(ctx_, d, "SKU-1", cb); }, Service::kPromotions, "GET", "/promotions/v1/products/SKU-1"},
      {[&](JsonCallback cb) { clients_.cart().GetCart(ctx_, d, "u-1001", cb); }, Service::kCart, "GET", "/cart/v1/carts/u-1001"},
      {[&](JsonCallback cb) { clients_.cart().AddItem(ctx_, d, "u-1001", "SKU-1", 2, cb); }, Service::kCart, "POST", "/cart/v1/carts/u-1001/items"},
      {[&](JsonCallback cb) { clients_.analytics().RecordEvent(ctx_, d, {{"type", "view"}}, cb); }, Service::kAnalytics, "POST", "/analytics/v1/events"},
      {[&](JsonCallback cb) { clients_.identity().Jwks(ctx_, d, cb); }, Service::kIdentity, "GET", "/identity/v1/jwks"},
      {[&](JsonCallback cb) { clients_.identity().VerifyPassword(ctx_, d, "alice", "pw", cb); }, Service::kIdentity, "POST", "/identity/v1/verify-password"},
  };
  for (auto& c : cases) {
    Run(c.call);
    EXPECT_EQ(transport_.services.back(), c.service) << c.path;
    EXPECT_EQ(transport_.requests.back().method, c.method) << c.path;
    EXPECT_EQ(transport_.requests.back().path, c.path);
  }
  EXPECT_EQ(json::parse(transport_.requests[1].body), json({{"skus", {"A", "B"}}}));
  EXPECT_EQ(json::parse(transport_.requests[9].body), json({{"sku", "SKU-1"}, {"qty", 2}}));
  EXPECT_EQ(transport_.requests[0].query, "limit=20&cursor=abc");
}

TEST(ServiceTest, NamesAndPathOwnership) {
  for (Service s : kAllServices) EXPECT_EQ(ServiceFromName(ServiceName(s)), s);
  EXPECT_EQ(ServiceForPath("/inventory/v1/stock/X"), Service::kInventory);
  EXPECT_EQ(ServiceForPath("/identity"), Service::kIdentity);
  EXPECT_FALSE(ServiceForPath("/nope/v1").has_value());
  EXPECT_FALSE(ServiceForPath("").has_value());
}

}  // namespace
}  // namespace bff

namespace bff {
namespace {

using CollectingSink = testing::CollectingSpanSink;

std::string StringAttr(const Span& span, std::string_view key) {
  const AttributeValue* v = span.FindAttribute(key);
  return v && std::holds_alternative<std::string>(*v) ? std::get<std::string>(*v) : std::string();
}

int64_t IntAttr(const Span& span, std::string_view key) {
  const AttributeValue* v = span.FindAttribute(key);
  return v && std::holds_alternative<int64_t>(*v) ? std::get<int64_t>(*v) : -1;
}

// Each downstream call is a client span whose id is the one the service sees in traceparent.
TEST_F(CallerTest, EachCallIsAClientSpanNamedInItsTraceparent) {
  auto sink = std::make_shared<CollectingSink>();
  Tracer tracer(sink);
  ctx_.tracer = &tracer;
  transport_.next = HttpResponse::Json(503, R"({"error":{"message":"busy"}})");
  auto r = Run([&](JsonCallback cb) { clients_.reviews().GetReviews(ctx_, sched_.Now() + milliseconds(100), "SKU-1", 3, cb); });
  EXPECT_FALSE(r.ok());
  ASSERT_EQ(sink->spans().size(), 1u);
  const Span span = sink->spans()[0];
  auto tp = TraceContext::Parse(transport_.requests.at(0).headers.Get("traceparent"));
  ASSERT_TRUE(tp.has_value());
  EXPECT_EQ(span.span_id, tp->span_id);
  EXPECT_EQ(span.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(span.parent_span_id, "00f067aa0ba902b7") << "child of the request's span";
  EXPECT_EQ(span.kind, SpanKind::kClient);
  EXPECT_EQ(span.name, "reviews GET");
  EXPECT_EQ(StringAttr(span, span_attr::kPeerService), "reviews");
  EXPECT_EQ(IntAttr(span, span_attr::kHttpStatusCode), 503);
  EXPECT_EQ(StringAttr(span, span_attr::kOutcome), "error");
  EXPECT_EQ(span.status, SpanStatus::kError);

  // A refusal (404) is the service doing its job: outcome client_error, status left unset.
  transport_.next = HttpResponse::Json(404, R"({"error":{"message":"no such sku"}})");
  Run([&](JsonCallback cb) { clients_.catalog().GetProduct(ctx_, sched_.Now() + milliseconds(100), "SKU-9", cb); });
  ASSERT_EQ(sink->spans().size(), 2u);
  EXPECT_EQ(StringAttr(sink->spans()[1], span_attr::kOutcome), "client_error");
  EXPECT_EQ(sink->spans()[1].status, SpanStatus::kUnset);
}

TEST_F(CallerTest, ACallWithNoBudgetLeftIsATimedOutSpan) {
  auto sink = std::make_shared<CollectingSink>();
  Tracer tracer(sink);
  ctx_.tracer = &tracer;
  ctx_.deadline = sched_.Now();
  auto r = Run([&](JsonCallback cb) { clients_.catalog().GetProduct(ctx_, sched_.Now() + milliseconds(100), "SKU-1", cb); });
  EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(transport_.requests.empty());
  ASSERT_EQ(sink->spans().size(), 1u);
  EXPECT_EQ(StringAttr(sink->spans()[0], span_attr::kOutcome), "timeout");
  EXPECT_EQ(sink->spans()[0].status, SpanStatus::kError);
}

}  // namespace
}  // namespace bff
