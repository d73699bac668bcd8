// MobileBff in virtual time over a scripted catalog: stale-while-revalidate with one refresh per key.
#include "clients/mobile/mobile_bff.h"

#include <gtest/gtest.h>

#include <optional>

#include "support/collecting_span_sink.h"

namespace bff {
namespace {

using nlohmann::json;
using std::chrono::seconds;

// Answers catalog reads with the current product name; holds answers until Release() when asked to.
class ScriptedCatalog : public Transport {
 public:
  explicit ScriptedCatalog(Scheduler& s) : s_(s) {}
  void Send(Service, HttpRequest req, TimePoint, ResponseCallback done) override {
    paths.push_back(req.path);
    json p = {{"sku", "SKU-10001"}, {"name", name}, {"price", "9.99"}, {"currency", "EUR"},
              {"thumbnail_url", "https://img/t.jpg"}, {"wholesale_cost", "1.00"}, {"margin_pct", 80.0},
              {"description", "long text"}};
    HttpResponse r = down ? HttpResponse::Json(503, R"({"error":{"code":"unavailable","message":"down"}})")
                          : HttpResponse::Json(200, p.dump());
    if (hold) {
      held.push_back([done, r] { done(r); });
    } else {
      s_.Post([done, r] { done(r); });
    }
  }
  void Release() {
    auto h = std::move(held);
    held.clear();
    for (auto& f : h) s_.Post(f);
  }
  Scheduler& s_;
  std::string name = "Chef's Knife";
  bool down = false;
  bool hold = false;
  std::vector<std::string> paths;
  std::vector<std::function<void()>> held;
};

class MobileBffTest : public ::testing::Test {
 protected:
  MobileBffTest()
      : catalog_(sched_),
        minter_("test-secret"),
        clients_(catalog_, minter_, sched_),
        sink_(std::make_shared<testing::CollectingSpanSink>()),
        tracer_(sink_),
        front_(FrontOptions(), sched_) {
    config_.mobile.max_age_s = 10;
    config_.mobile.stale_while_revalidate_s = 60;
    config_.mobile.stale_if_error_s = 600;
    auto tokens = AccessTokenValidator::Create({}, [](AccessTokenValidator::JwksCallback cb) { cb(Unavailable("no keys in this test")); }, sched_);
    mobile_ = std::make_unique<MobileBff>(config_, clients_, sched_, tokens);
    mobile_->Register(front_);
  }

  ApiFront::Options FrontOptions() {
    ApiFront::Options o;
    o.tracer = &tracer_;
    return o;
  }

  HttpResponse Get(const std::string& path, const std::string& if_none_match = "") {
    HttpRequest r;
    r.path = path;
    if (!if_none_match.empty()) r.headers.Set("If-None-Match", if_none_match);
    return Send(std::move(r));
  }

  // A cart add with `authorization` (none when empty).
  HttpResponse AddToCart(const std::string& authorization = "") {
    HttpRequest r;
    r.method = "POST";
    r.path = "/mobile/v1/cart/items";
    r.headers.Set("Content-Type", "application/json");
    if (!authorization.empty()) r.headers.Set("Authorization", authorization);
    r.body = R"({"sku":"SKU-10001","qty":1})";
    return Send(std::move(r));
  }

  HttpResponse Send(HttpRequest r) {
    std::optional<HttpResponse> out;
    front_.Handle(std::move(r), [&](HttpResponse resp) { out = std::move(resp); });
    sched_.RunReady();
    EXPECT_TRUE(out.has_value());
    return out.value_or(HttpResponse{});
  }

  ManualScheduler sched_;
  ScriptedCatalog catalog_;
  CredentialMinter minter_;
  DownstreamClients clients_;
  std::shared_ptr<testing::CollectingSpanSink> sink_;
  Tracer tracer_;
  ApiFront front_;
  Config config_;
  std::unique_ptr<MobileBff> mobile_;
};

TEST_F(MobileBffTest, ShapesExactlyTheAllowedFields) {
  HttpResponse r = Get("/mobile/v1/products/SKU-10001");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"id":"SKU-10001","name":"Chef's Knife","price":"9.99","currency":"EUR","thumbnail_url":"https://img/t.jpg"})");
  EXPECT_EQ(r.headers.Get("Cache-Control"), "public, max-age=10, stale-while-revalidate=60");
}

TEST_F(MobileBffTest, FreshHitsDoNotCallTheCatalog) {
  Get("/mobile/v1/products/SKU-10001");
  sched_.Advance(seconds(5));
  HttpResponse r = Get("/mobile/v1/products/SKU-10001");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.headers.Get("Age"), "5");
  EXPECT_EQ(catalog_.paths.size(), 1u);
  EXPECT_EQ(mobile_->cache().stats().hits, 1u);
  EXPECT_EQ(mobile_->cache().stats().misses, 1u);
}

TEST_F(MobileBffTest, StaleCopyIsServedWhileExactlyOneBackgroundRefreshRuns) {
  HttpResponse first = Get("/mobile/v1/products/SKU-10001");
  ASSERT_EQ(first.status, 200);
  sched_.Advance(seconds(11));  // past max-age, inside stale-while-revalidate
  catalog_.name = "Chef's Knife, new edition";
  catalog_.hold = true;
  for (int i = 0; i < 10; ++i) {
    HttpResponse r = Get("/mobile/v1/products/SKU-10001");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, first.body) << "the stale copy must be served at once";
    EXPECT_NE(r.headers.Get("Server-Timing").find("cache;desc=stale"), std::string_view::npos);
  }
  EXPECT_EQ(catalog_.paths.size(), 2u) << "one refresh per key at a time";
  catalog_.Release();
  sched_.RunReady();
  HttpResponse fresh = Get("/mobile/v1/products/SKU-10001");
  EXPECT_NE(fresh.body.find("new edition"), std::string::npos);
  EXPECT_NE(fresh.headers.Get("ETag"), first.headers.Get("ETag"));
  EXPECT_EQ(catalog_.paths.size(), 2u);
}

TEST_F(MobileBffTest, IfNoneMatchGives304WithoutBody) {
  HttpResponse first = Get("/mobile/v1/products/SKU-10001");
  HttpResponse again = Get("/mobile/v1/products/SKU-10001", std::string(first.headers.Get("ETag")));
  EXPECT_EQ(again.status, 304);
  EXPECT_TRUE(again.body.empty());
  HttpResponse other = Get("/mobile/v1/products/SKU-10001", "\"something-else\"");
  EXPECT_EQ(other.status, 200);
}

TEST_F(MobileBffTest, CatalogFailureServesExpiredCopyWithWarningElse503) {
  HttpResponse first = Get("/mobile/v1/products/SKU-10001");
  sched_.Advance(seconds(10 + 60 + 1));  // beyond stale-while-revalidate: a miss that asks the catalog
  catalog_.down = true;
  HttpResponse r = Get("/mobile/v1/products/SKU-10001");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, first.body);
  EXPECT_EQ(r.headers.Get("Warning"), "110 - \"Response is Stale\"");
  EXPECT_EQ(r.headers.Get("Age"), "71");
  EXPECT_EQ(mobile_->cache().stats().stale_on_error, 1u);

  sched_.Advance(seconds(600));  // beyond stale-if-error: nothing may stand in any more
  HttpResponse gone = Get("/mobile/v1/products/SKU-10001");
  EXPECT_EQ(gone.status, 503);
  EXPECT_EQ(gone.headers.Get("Retry-After"), "5");
}

TEST_F(MobileBffTest, CartWithoutUsableTokenIs401Or503WithoutTouchingTheCart) {
  EXPECT_EQ(AddToCart().status, 401);
  HttpResponse bad = AddToCart("Bearer a.b.c");
  EXPECT_TRUE(bad.status == 401 || bad.status == 503) << bad.status;
  for (auto& p : catalog_.paths) EXPECT_EQ(p.find("/cart/"), std::string::npos);
}

// The cache lookup and the token check are spans of their own, children of the request's span.
TEST_F(MobileBffTest, CacheLookupAndAuthCheckAreSpansUnderTheRequest) {
  using testing::SpanAttr;
  ASSERT_EQ(Get("/mobile/v1/products/SKU-10001").status, 200);
  auto entries = sink_->Named("GET /mobile/v1/products/{sku}");
  auto lookups = sink_->Named("cache.lookup");
  ASSERT_EQ(entries.size(), 1u);
  ASSERT_EQ(lookups.size(), 1u);
  EXPECT_EQ(lookups[0].parent_span_id, entries[0].span_id);
  EXPECT_EQ(lookups[0].trace_id, entries[0].trace_id);
  EXPECT_EQ(SpanAttr<std::string>(lookups[0], span_attr::kCacheResult), "miss");
  EXPECT_FALSE(SpanAttr<bool>(lookups[0], span_attr::kCacheHit));
  bool catalog_call = false;
  for (const auto& s : sink_->spans()) {
    if (s.kind == SpanKind::kClient && s.parent_span_id == entries[0].span_id) {
      catalog_call = SpanAttr<std::string>(s, span_attr::kPeerService) == "catalog";
    }
  }
  EXPECT_TRUE(catalog_call) << "the catalog read is a client span under the request";

  sink_->Clear();
  ASSERT_EQ(Get("/mobile/v1/products/SKU-10001").status, 200);
  lookups = sink_->Named("cache.lookup");
  ASSERT_EQ(lookups.size(), 1u);
  EXPECT_EQ(SpanAttr<std::string>(lookups[0], span_attr::kCacheResult), "hit");
  EXPECT_TRUE(SpanAttr<bool>(lookups[0], span_attr::kCacheHit));
  for (const auto& s : sink_->spans()) EXPECT_NE(s.kind, SpanKind::kClient) << "a hit calls nothing: " << s.name;

  sink_->Clear();
  EXPECT_EQ(AddToCart().status, 401);
  auto checks = sink_->Named("auth.check");
  entries = sink_->Named("POST /mobile/v1/cart/items");
  ASSERT_EQ(checks.size(), 1u);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(checks[0].parent_span_id, entries[0].span_id);
  EXPECT_EQ(SpanAttr<std::string>(checks[0], span_attr::kAuthKind), "jwt");
  EXPECT_EQ(checks[0].status, SpanStatus::kError);
  EXPECT_EQ(SpanAttr<std::string>(checks[0], span_attr::kStatusCode), "UNAUTHENTICATED");
}

}  // namespace
}  // namespace bff
