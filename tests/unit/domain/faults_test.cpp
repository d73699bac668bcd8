// Fault injection and time budgets, in virtual time: latency, down, hang, error rate, budgets; admin API.
#include "domain/seed.h"
#include "domain_harness.h"

namespace bff::testing {
namespace {

using std::chrono::milliseconds;

HttpRequest ProductRequest() { return MakeRequest("GET", "/catalog/v1/products/SKU-10001"); }

HttpRequest WithBudget(HttpRequest r, const std::string& ms) {
  r.headers.Set("X-Request-Budget-Ms", ms);
  return r;
}

class FaultsTest : public ::testing::Test {
 protected:
  DomainHarness h;
};

TEST_F(FaultsTest, LatencyDelaysTheAnswerInVirtualTime) {
  Fault f;
  f.latency_ms = 200;
  ASSERT_TRUE(h.services->SetFault("catalog", f).ok());
  auto slot = h.Start(ProductRequest());
  h.scheduler.RunReady();
  EXPECT_FALSE(slot->has_value());
  h.scheduler.Advance(milliseconds(199));
  EXPECT_FALSE(slot->has_value());
  h.scheduler.Advance(milliseconds(1));
  ASSERT_TRUE(slot->has_value());
  EXPECT_EQ((*slot)->status, 200);
  // Other services are unaffected.
  EXPECT_EQ(h.Get("/reviews/v1/products/SKU-10001/reviews").status, 200);
}

TEST_F(FaultsTest, DownAnswers503AtOnce) {
  Fault f;
  f.down = true;
  f.latency_ms = 5000;  // down wins over latency
  ASSERT_TRUE(h.services->SetFault("inventory", f).ok());
  auto r = h.Get("/inventory/v1/stock/SKU-10001");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(ErrorCode(r), "unavailable");
  EXPECT_EQ(h.Get("/catalog/v1/products/SKU-10001").status, 200);
}

TEST_F(FaultsTest, HangHoldsUntilReleased) {
  Fault f;
  f.hang = true;
  ASSERT_TRUE(h.services->SetFault("catalog", f).ok());
  auto a = h.Start(ProductRequest());
  auto b = h.Start(ProductRequest());
  h.scheduler.Advance(std::chrono::seconds(3600));
  EXPECT_FALSE(a->has_value());
  EXPECT_FALSE(b->has_value());
  h.services->ReleaseHeld();
  ASSERT_TRUE(a->has_value());
  ASSERT_TRUE(b->has_value());
  EXPECT_EQ((*a)->status, 503);

  // Setting the fault again (here: clearing hang) releases too, and later calls go through.
  auto c = h.Start(ProductRequest());
  h.scheduler.RunReady();
  EXPECT_FALSE(c->has_value());
  ASSERT_TRUE(h.services->SetFault("catalog", Fault{}).ok());
  ASSERT_TRUE(c->has_value());
  EXPECT_EQ((*c)->status, 503);
  EXPECT_EQ(h.Get("/catalog/v1/products/SKU-10001").status, 200);

  // ClearFaults releases as well.
  ASSERT_TRUE(h.services->SetFault("catalog", f).ok());
  auto d = h.Start(ProductRequest());
  h.scheduler.RunReady();
  EXPECT_FALSE(d->has_value());
  h.services->ClearFaults();
  ASSERT_TRUE(d->has_value());
  EXPECT_EQ((*d)->status, 503);
}

TEST_F(FaultsTest, HeldRequestsAreReleasedOnDestruction) {
  Fault f;
  f.hang = true;
  ASSERT_TRUE(h.services->SetFault("cart", f).ok());
  auto a = h.Start(MakeRequest("GET", "/cart/v1/carts/u-1001"));
  h.scheduler.RunReady();
  EXPECT_FALSE(a->has_value());
  h.services.reset();
  ASSERT_TRUE(a->has_value());
  EXPECT_EQ((*a)->status, 503);
}

TEST_F(FaultsTest, ErrorRate) {
  Fault f;
  f.error_rate = 1.0;
  ASSERT_TRUE(h.services->SetFault("reviews", f).ok());
  for (int i = 0; i < 20; ++i) EXPECT_EQ(h.Get("/reviews/v1/products/SKU-10001/reviews").status, 500);
  f.error_rate = 0.5;
  ASSERT_TRUE(h.services->SetFault("reviews", f).ok());
  int errors = 0;
  for (int i = 0; i < 400; ++i) errors += h.Get("/reviews/v1/products/SKU-10001/reviews").status == 500 ? 1 : 0;
  EXPECT_GT(errors, 120);
  EXPECT_LT(errors, 280);
  f.error_rate = 0.0;
  ASSERT_TRUE(h.services->SetFault("reviews", f).ok());
  for (int i = 0; i < 20; ++i) EXPECT_EQ(h.Get("/reviews/v1/products/SKU-10001/reviews").status, 200);
}

TEST_F(FaultsTest, ExhaustedBudgetIs504AtOnce) {
  for (const char* budget : {"0", "-5"}) {
    auto r = h.Send(WithBudget(ProductRequest(), budget));
    EXPECT_EQ(r.status, 504) << budget;
    EXPECT_EQ(ErrorCode(r), "deadline_exceeded");
  }
  EXPECT_EQ(h.Send(WithBudget(ProductRequest(), "abc")).status, 400);
  EXPECT_EQ(h.Send(WithBudget(ProductRequest(), "250")).status, 200);
  EXPECT_EQ(h.Send(WithBudget(ProductRequest(), "99999999999999999")).status, 200);
}

TEST_F(FaultsTest, LatencyLongerThanBudgetGivesUpWhenTheBudgetRunsOut) {
  Fault f;
  f.latency_ms = 1000;
  ASSERT_TRUE(h.services->SetFault("catalog", f).ok());
  auto slot = h.Start(WithBudget(ProductRequest(), "300"));
  h.scheduler.Advance(milliseconds(299));
  EXPECT_FALSE(slot->has_value());
  h.scheduler.Advance(milliseconds(1));
  ASSERT_TRUE(slot->has_value());
  EXPECT_EQ((*slot)->status, 504);

  // Within budget, the latency is served normally.
  auto ok = h.Start(WithBudget(ProductRequest(), "1500"));
  h.scheduler.Advance(milliseconds(999));
  EXPECT_FALSE(ok->has_value());
  h.scheduler.Advance(milliseconds(1));
  ASSERT_TRUE(ok->has_value());
  EXPECT_EQ((*ok)->status, 200);
  EXPECT_EQ(h.scheduler.pending_timers(), 0u);
}

TEST_F(FaultsTest, AdminApi) {
  auto all = h.Send(MakeRequest("GET", "/admin/v1/faults"), /*authenticate=*/false);
  ASSERT_EQ(all.status, 200);
  auto j = BodyJson(all);
  for (const char* s :
       {"catalog", "inventory", "reviews", "recommendations", "promotions", "cart", "analytics", "identity"}) {
    ASSERT_TRUE(j.contains(s)) << s;
    EXPECT_EQ(j[s], nlohmann::json({{"latency_ms", 0}, {"error_rate", 0.0}, {"hang", false}, {"down", false}}));
  }
  EXPECT_EQ(j.size(), 8u);

  auto put =
      h.Send(MakeRequest("PUT", "/admin/v1/faults/reviews", R"({"latency_ms": 250, "error_rate": 0.25})"), false);
  ASSERT_EQ(put.status, 200) << put.body;
  EXPECT_EQ(BodyJson(put),
            nlohmann::json({{"latency_ms", 250}, {"error_rate", 0.25}, {"hang", false}, {"down", false}}));
  EXPECT_EQ(h.services->Faults()["reviews"]["latency_ms"], 250);

  // Missing fields fall back to defaults: a PUT replaces the whole fault.
  put = h.Send(MakeRequest("PUT", "/admin/v1/faults/reviews", R"({"down": true})"), false);
  EXPECT_EQ(BodyJson(put)["latency_ms"], 0);
  EXPECT_EQ(BodyJson(put)["down"], true);

  for (const char* bad :
       {R"({"latency_ms": -1})", R"({"latency_ms": 600001})", R"({"latency_ms": 1.5})", R"({"latency_ms": "10"})",
        R"({"error_rate": 1.01})", R"({"error_rate": -0.1})", R"({"error_rate": "0.5"})", R"({"hang": 1})",
        R"({"down": "yes"})", R"({"latncy_ms": 5})", R"([1,2])", "not json", ""}) {
    auto r = h.Send(MakeRequest("PUT", "/admin/v1/faults/catalog", bad), false);
    EXPECT_EQ(r.status, 400) << bad;
  }
  EXPECT_EQ(h.services->Faults()["catalog"]["latency_ms"], 0);
  EXPECT_EQ(h.Send(MakeRequest("PUT", "/admin/v1/faults/latency_ms", "{}"), false).status, 404);
  EXPECT_EQ(h.Send(MakeRequest("PUT", "/admin/v1/faults/nope", "{}"), false).status, 404);
  EXPECT_EQ(h.Send(MakeRequest("POST", "/admin/v1/faults", "{}"), false).status, 405);
  EXPECT_EQ(h.Send(MakeRequest("POST", "/admin/v1/faults/catalog", "{}"), false).status, 405);
  EXPECT_EQ(h.Send(MakeRequest("GET", "/admin/v1/faults/catalog/extra"), false).status, 404);

  ASSERT_EQ(h.Send(MakeRequest("PUT", "/admin/v1/faults/cart", R"({"error_rate": 1})"), false).status, 200);
  EXPECT_EQ(h.Send(MakeRequest("DELETE", "/admin/v1/faults/cart"), false).status, 204);
  EXPECT_EQ(h.services->Faults()["cart"]["error_rate"], 0.0);
  EXPECT_EQ(h.services->Faults()["reviews"]["down"], true);
  auto del = h.Send(MakeRequest("DELETE", "/admin/v1/faults"), false);
  EXPECT_EQ(del.status, 204);
  EXPECT_TRUE(del.body.empty());
  EXPECT_EQ(h.services->Faults()["reviews"]["down"], false);

  // Faults never apply to the admin API or health check.
  Fault down;
  down.down = true;
  for (const auto& name :
       {"catalog", "inventory", "reviews", "recommendations", "promotions", "cart", "analytics", "identity"}) {
    ASSERT_TRUE(h.services->SetFault(name, down).ok());
  }
  EXPECT_EQ(h.Send(MakeRequest("GET", "/healthz"), false).status, 200);
  EXPECT_EQ(h.Send(MakeRequest("GET", "/admin/v1/faults"), false).status, 200);
}

TEST_F(FaultsTest, AdminDeleteReleasesHeld) {
  ASSERT_EQ(h.Send(MakeRequest("PUT", "/admin/v1/faults/promotions", R"({"hang": true})"), false).status, 200);
  auto held = h.Start(MakeRequest("GET", "/promotions/v1/products/SKU-10001"));
  h.scheduler.RunReady();
  EXPECT_FALSE(held->has_value());
  EXPECT_EQ(h.Send(MakeRequest("DELETE", "/admin/v1/faults"), false).status, 204);
  ASSERT_TRUE(held->has_value());
  EXPECT_EQ((*held)->status, 503);
}

TEST_F(FaultsTest, SetFaultValidates) {
  EXPECT_EQ(h.services->SetFault("nope", Fault{}).code(), StatusCode::kNotFound);
  Fault f;
  f.error_rate = 2;
  EXPECT_EQ(h.services->SetFault("catalog", f).code(), StatusCode::kInvalidArgument);
  f = Fault{};
  f.latency_ms = -1;
  EXPECT_EQ(h.services->SetFault("catalog", f).code(), StatusCode::kInvalidArgument);
}

TEST(InitialFaults, AppliedAtStart) {
  DomainHarness h([](DomainOptions& o) {
    o.initial_faults = {{"reviews", {{"latency_ms", 200}}}, {"cart", {{"down", true}}}};
  });
  EXPECT_EQ(h.services->Faults()["reviews"]["latency_ms"], 200);
  EXPECT_EQ(h.Get("/cart/v1/carts/u-1001").status, 503);
}

TEST(InitialFaults, InvalidOnesStopCreateWithANamedField) {
  TempDir dir;
  ManualScheduler scheduler;
  struct Case {
    nlohmann::json faults;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {{{"reviews", {{"latency_ms", -3}}}}, "reviews.latency_ms"},
      {{{"catalog", {{"error_rate", 3}}}}, "catalog.error_rate"},
      {{{"billing", {{"down", true}}}}, "billing"},
      {{{"cart", {{"hang", "yes"}}}}, "cart.hang"},
      {{{"cart", 5}}, "cart"},
      {nlohmann::json::array(), "initial_faults"},
  };
  for (const auto& c : cases) {
    DomainOptions o = TestDomainOptions(dir.path());
    o.initial_faults = c.faults;
    auto created = DomainServices::Create(o, scheduler);
    ASSERT_FALSE(created.ok()) << c.faults.dump();
    EXPECT_NE(created.status().message().find(c.expect), std::string::npos) << created.status().message();
    EXPECT_NE(created.status().message().find("initial_faults"), std::string::npos) << created.status().message();
  }
}

}  // namespace
}  // namespace bff::testing
