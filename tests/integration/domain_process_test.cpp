// bff-domain as its own process, driven over real HTTP through bffd's downstream layer and orchestration.
#include <gtest/gtest.h>

#include <csignal>
#include <future>

#include "common/scheduler.h"
#include "downstream/clients.h"
#include "orchestration/coalescing_transport.h"
#include "orchestration/fanout.h"
#include "security/internal_credential.h"
#include "support/processes.h"

namespace bff::testing {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

class DomainProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    domain_ = std::make_unique<DomainProcess>(dir_.path());
    ASSERT_TRUE(domain_->ready()) << domain_->process().Stderr();
    Connect();
  }

  void Connect() {
    auto secret = LoadOrCreateInternalSecret(dir_.path());
    ASSERT_TRUE(secret.ok());
    minter_ = std::make_unique<CredentialMinter>(*secret);
    std::map<Service, std::string> urls;
    for (Service s : kAllServices) urls[s] = domain_->base_url();
    auto t = HttpTransport::Create(http_.io(), urls);
    ASSERT_TRUE(t.ok());
    transport_ = *t;
    scheduler_ = std::make_unique<AsioScheduler>(http_.io());
    clients_ = std::make_unique<DownstreamClients>(*transport_, *minter_, *scheduler_);
  }

  void TearDown() override {
    if (transport_) transport_->Shutdown();
  }

  RequestContext Ctx(const std::string& subject = "") {
    RequestContext c;
    c.trace = TraceContext::NewRoot();
    c.subject = subject;
    c.client = "web";
    return c;
  }

  StatusOr<json> Wait(const std::function<void(JsonCallback)>& fn) {
    auto p = std::make_shared<std::promise<StatusOr<json>>>();
    auto f = p->get_future();
    fn([p](StatusOr<json> r) { p->set_value(std::move(r)); });
    if (f.wait_for(std::chrono::seconds(30)) != std::future_status::ready) return DeadlineExceeded("test wait");
    return f.get();
  }

  TimePoint In(milliseconds d) { return Clock::now() + d; }

  StatusOr<HttpResponse> Admin(const std::string& method, const std::string& path, const std::string& body = "") {
    HttpRequest r;
    r.method = method;
    r.path = path;
    r.body = body;
    if (!body.empty()) r.headers.Set("Content-Type", "application/json");
    return http_.Send(domain_->base_url(), r);
  }

  TempDir dir_;
  TestHttpClient http_;
  std::unique_ptr<DomainProcess> domain_;
  std::unique_ptr<CredentialMinter> minter_;
  std::shared_ptr<HttpTransport> transport_;
  std::unique_ptr<AsioScheduler> scheduler_;
  std::unique_ptr<DownstreamClients> clients_;
};

TEST_F(DomainProcessTest, ServesEverySectionOnePathWithSeedData) {
  auto ctx = Ctx("u-1001");
  auto list = Wait([&](JsonCallback cb) { clients_->catalog().ListProducts(ctx, In(milliseconds(5000)), 5, "", cb); });
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  ASSERT_EQ((*list)["products"].size(), 5u);
  ASSERT_TRUE((*list)["next_cursor"].is_string());
  std::string sku = (*list)["products"][0]["sku"];

  auto product = Wait([&](JsonCallback cb) { clients_->catalog().GetProduct(ctx, In(milliseconds(5000)), sku, cb); });
  ASSERT_TRUE(product.ok()) << product.status().ToString();
  for (const char* f : {"sku", "name", "description", "specs", "price", "currency", "images", "thumbnail_url", "category",
                        "related_skus", "wholesale_cost", "margin_pct", "updated_at"}) {
    EXPECT_TRUE(product->contains(f)) << f;
  }
  EXPECT_TRUE((*product)["price"].is_string());

  auto batch = Wait([&](JsonCallback cb) {
    clients_->catalog().BatchGet(ctx, In(milliseconds(5000)), {sku, "NO-SUCH-SKU"}, cb);
  });
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  EXPECT_EQ((*batch)["products"].size(), 1u);
  EXPECT_EQ((*batch)["missing"], json::array({"NO-SUCH-SKU"}));

  auto shelves = Wait([&](JsonCallback cb) { clients_->inventory().ListShelves(ctx, In(milliseconds(5000)), 3, "", cb); });
  ASSERT_TRUE(shelves.ok()) << shelves.status().ToString();
  ASSERT_EQ((*shelves)["shelves"].size(), 3u);
  std::string shelf_id = (*shelves)["shelves"][0]["shelf_id"];
  auto shelf = Wait([&](JsonCallback cb) { clients_->inventory().GetShelf(ctx, In(milliseconds(5000)), shelf_id, cb); });
  ASSERT_TRUE(shelf.ok()) << shelf.status().ToString();
  EXPECT_GE((*shelf)["slots"].size(), 8u);
  auto stock = Wait([&](JsonCallback cb) { clients_->inventory().GetStock(ctx, In(milliseconds(5000)), sku, cb); });
  ASSERT_TRUE(stock.ok()) << stock.status().ToString();
  EXPECT_TRUE((*stock)["available"].is_number_integer());

  auto reviews = Wait([&](JsonCallback cb) { clients_->reviews().GetReviews(ctx, In(milliseconds(5000)), sku, 3, cb); });
  ASSERT_TRUE(reviews.ok()) << reviews.status().ToString();
  EXPECT_LE((*reviews)["reviews"].size(), 3u);
  auto related = Wait([&](JsonCallback cb) { clients_->recommendations().GetRelated(ctx, In(milliseconds(5000)), sku, cb); });
  ASSERT_TRUE(related.ok()) << related.status().ToString();
  EXPECT_FALSE((*related)["related"].empty());
  auto promos = Wait([&](JsonCallback cb) { clients_->promotions().GetPromotions(ctx, In(milliseconds(5000)), sku, cb); });
  ASSERT_TRUE(promos.ok()) << promos.status().ToString();
  EXPECT_TRUE((*promos)["promotions"].is_array());

  auto cart = Wait([&](JsonCallback cb) { clients_->cart().AddItem(ctx, In(milliseconds(5000)), "u-1001", sku, 2, cb); });
  ASSERT_TRUE(cart.ok()) << cart.status().ToString();
  EXPECT_EQ((*cart)["items"][0]["qty"], 2);
  auto event = Wait([&](JsonCallback cb) {
    clients_->analytics().RecordEvent(ctx, In(milliseconds(5000)),
                                      {{"type", "add_to_cart"}, {"user_id", "u-1001"}, {"sku", sku}, {"at", "2026-11-25T10:00:00Z"}}, cb);
  });
  ASSERT_TRUE(event.ok()) << event.status().ToString();

  auto jwks = Wait([&](JsonCallback cb) { clients_->identity().Jwks(ctx, In(milliseconds(5000)), cb); });
  ASSERT_TRUE(jwks.ok());
  EXPECT_EQ((*jwks)["keys"][0]["kty"], "EC");
  auto token = Wait([&](JsonCallback cb) {
    clients_->identity().Token(ctx, In(milliseconds(5000)), {{"grant_type", "password"}, {"username", "alice"}, {"password", "demo-alice"}}, cb);
  });
  ASSERT_TRUE(token.ok()) << token.status().ToString();
  EXPECT_EQ((*token)["token_type"], "Bearer");
  auto who = Wait([&](JsonCallback cb) { clients_->identity().VerifyPassword(ctx, In(milliseconds(5000)), "alice", "demo-alice", cb); });
  ASSERT_TRUE(who.ok()) << who.status().ToString();
  EXPECT_TRUE((*who)["user_id"].is_string());
  auto wrong = Wait([&](JsonCallback cb) { clients_->identity().VerifyPassword(ctx, In(milliseconds(5000)), "alice", "nope", cb); });
  EXPECT_EQ(wrong.status().code(), StatusCode::kUnauthenticated);

  auto missing = Wait([&](JsonCallback cb) { clients_->catalog().GetProduct(ctx, In(milliseconds(5000)), "NO-SUCH-SKU", cb); });
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

TEST_F(DomainProcessTest, RefusesCallsWithoutOrWithAForgedInternalCredential) {
  auto r = http_.Get(domain_->base_url(), "/catalog/v1/products?limit=1");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 401);
  HttpRequest forged;
  forged.path = "/catalog/v1/products";
  forged.query = "limit=1";
  CredentialMinter other(std::string(32, 'x'));
  forged.headers.Set("Authorization", "Bearer " + other.Mint("u-1001", "web"));
  auto f = http_.Send(domain_->base_url(), forged);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->status, 401);
}

TEST_F(DomainProcessTest, InjectedLatencyOnReviewsIsVisibleAndClearable) {
  std::string sku;
  {
    auto list = Wait([&](JsonCallback cb) { clients_->catalog().ListProducts(Ctx(), In(milliseconds(5000)), 1, "", cb); });
    ASSERT_TRUE(list.ok());
    sku = (*list)["products"][0]["sku"];
  }
  auto put = Admin("PUT", "/admin/v1/faults/reviews", R"({"latency_ms": 200})");
  ASSERT_TRUE(put.ok());
  ASSERT_EQ(put->status, 200) << put->body;
  auto faults = Admin("GET", "/admin/v1/faults");
  ASSERT_TRUE(faults.ok());
  EXPECT_EQ(json::parse(faults->body)["reviews"]["latency_ms"], 200);

  // A caller that gives reviews 50 ms gets a deadline error; one that gives it 5 s gets the answer.
  auto short_call = Wait([&](JsonCallback cb) { clients_->reviews().GetReviews(Ctx(), In(milliseconds(50)), sku, 3, cb); });
  EXPECT_EQ(short_call.status().code(), StatusCode::kDeadlineExceeded);
  auto patient = Wait([&](JsonCallback cb) { clients_->reviews().GetReviews(Ctx(), In(milliseconds(5000)), sku, 3, cb); });
  EXPECT_TRUE(patient.ok()) << patient.status().ToString();
  // Other services are unaffected.
  auto promos = Wait([&](JsonCallback cb) { clients_->promotions().GetPromotions(Ctx(), In(milliseconds(50)), sku, cb); });
  EXPECT_TRUE(promos.ok()) << promos.status().ToString();

  auto del = Admin("DELETE", "/admin/v1/faults");
  ASSERT_TRUE(del.ok());
  EXPECT_EQ(del->status, 204);
  auto quick = Wait([&](JsonCallback cb) { clients_->reviews().GetReviews(Ctx(), In(milliseconds(150)), sku, 3, cb); });
  EXPECT_TRUE(quick.ok()) << quick.status().ToString();
}

TEST_F(DomainProcessTest, FanOutDegradesHangingAndDownServicesButFailsOnCriticalOutage) {
  ASSERT_EQ(Admin("PUT", "/admin/v1/faults/reviews", R"({"hang": true})")->status, 200);
  ASSERT_EQ(Admin("PUT", "/admin/v1/faults/promotions", R"({"down": true})")->status, 200);
  const std::string sku = "SKU-10001";
  auto ctx = Ctx();
  auto run = [&](Criticality catalog_criticality) {
    auto fan = FanOut::Create(*scheduler_, Clock::now() + milliseconds(2000));
    json page;
    auto call = [&](auto method) {
      return [this, ctx, method](TimePoint d, std::function<void(StatusOr<json>)> done) { method(ctx, d, done); };
    };
    fan->Add<json>("catalog", catalog_criticality, milliseconds(1000),
                   call([&](const RequestContext& c, TimePoint d, JsonCallback cb) { clients_->catalog().GetProduct(c, d, sku, cb); }),
                   [&page](json v) { page["product"] = v; });
    fan->Add<json>("reviews", Criticality::kOptional, milliseconds(100),
                   call([&](const RequestContext& c, TimePoint d, JsonCallback cb) { clients_->reviews().GetReviews(c, d, sku, 3, cb); }),
                   [&page](json v) { page["reviews"] = v; }, [&page](const Status&) { page["reviews"] = json::array(); });
    fan->Add<json>("promotions", Criticality::kOptional, milliseconds(100),
                   call([&](const RequestContext& c, TimePoint d, JsonCallback cb) { clients_->promotions().GetPromotions(c, d, sku, cb); }),
                   [&page](json v) { page["promotions"] = v; }, [&page](const Status&) { page["promotions"] = json::array(); });
    fan->Add<json>("inventory", Criticality::kOptional, milliseconds(1000),
                   call([&](const RequestContext& c, TimePoint d, JsonCallback cb) { clients_->inventory().GetStock(c, d, sku, cb); }),
                   [&page](json v) { page["stock"] = v; }, [&page](const Status&) { page["stock"] = nullptr; });
    auto p = std::make_shared<std::promise<FanOutResult>>();
    auto f = p->get_future();
    fan->Run([p](FanOutResult r) { p->set_value(std::move(r)); });
    EXPECT_EQ(f.wait_for(std::chrono::seconds(20)), std::future_status::ready);
    return std::make_pair(f.get(), page);
  };
  auto [result, page] = run(Criticality::kCritical);
  EXPECT_TRUE(result.status.ok()) << result.status.ToString();
  EXPECT_EQ(result.degraded, (std::vector<std::string>{"reviews", "promotions"}));
  EXPECT_EQ(page["product"]["sku"], sku);
  EXPECT_TRUE(page["stock"].is_object());
  EXPECT_EQ(page["reviews"], json::array());

  ASSERT_EQ(Admin("PUT", "/admin/v1/faults/catalog", R"({"down": true})")->status, 200);
  auto [failed, unused] = run(Criticality::kCritical);
  EXPECT_EQ(failed.status.code(), StatusCode::kUnavailable);
  EXPECT_EQ(failed.failed_call, "catalog");
  EXPECT_EQ(HttpStatusFor(failed.status.code()), 503);
  ASSERT_EQ(Admin("DELETE", "/admin/v1/faults")->status, 204);
}

TEST_F(DomainProcessTest, CartSurvivesARestart) {
  auto ctx = Ctx("u-1002");
  auto add = Wait([&](JsonCallback cb) { clients_->cart().AddItem(ctx, In(milliseconds(5000)), "u-1002", "SKU-10005", 3, cb); });
  ASSERT_TRUE(add.ok()) << add.status().ToString();
  transport_->Shutdown();
  domain_->process().Signal(SIGTERM);
  EXPECT_EQ(domain_->process().Wait(std::chrono::seconds(20)), 0) << domain_->process().Stderr();

  domain_ = std::make_unique<DomainProcess>(dir_.path());
  ASSERT_TRUE(domain_->ready()) << domain_->process().Stderr();
  Connect();
  auto cart = Wait([&](JsonCallback cb) { clients_->cart().GetCart(ctx, In(milliseconds(5000)), "u-1002", cb); });
  ASSERT_TRUE(cart.ok()) << cart.status().ToString();
  ASSERT_EQ((*cart)["items"].size(), 1u);
  EXPECT_EQ((*cart)["items"][0]["sku"], "SKU-10005");
  EXPECT_EQ((*cart)["items"][0]["qty"], 3);
}

TEST_F(DomainProcessTest, ShelfReadingsAreIdempotentOverHttp) {
  auto ctx = Ctx("sensor-01-01");
  ctx.client = "iot";
  ShelfReading reading;
  reading.device_id = "sensor-01-01";
  reading.shelf_id = "shelf-01-01";
  reading.seq = 7;
  reading.ts = 1790000000;
  reading.slots = {{0, 3}};
  reading.battery_pct = 80;
  reading.temp_c = 21.5;
  // Over HTTP the typed client sends the JSON form and reads the 202 answer back into its type.
  auto post = [&] {
    auto p = std::make_shared<std::promise<StatusOr<ShelfReadingAccepted>>>();
    auto f = p->get_future();
    clients_->inventory().PostShelfReading(ctx, In(milliseconds(5000)), reading,
                                           [p](StatusOr<ShelfReadingAccepted> a) { p->set_value(std::move(a)); });
    EXPECT_EQ(f.wait_for(std::chrono::seconds(10)), std::future_status::ready);
    return f.get();
  };
  auto first = post();
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_FALSE(first->duplicate);
  EXPECT_GT(first->shelf_version, 0u);
  auto again = post();
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(again->shelf_version, first->shelf_version);
  auto shelf = Wait([&](JsonCallback cb) { clients_->inventory().GetShelf(ctx, In(milliseconds(5000)), "shelf-01-01", cb); });
  ASSERT_TRUE(shelf.ok());
  EXPECT_EQ((*shelf)["slots"][0]["qty"], 3);
}

TEST_F(DomainProcessTest, SpentBudgetIsRefusedByTheServiceWithoutWork) {
  HttpRequest r;
  r.path = "/catalog/v1/products/SKU-10001";
  r.headers.Set("Authorization", "Bearer " + minter_->Mint("", "bffd"));
  r.headers.Set("X-Request-Budget-Ms", "0");
  auto resp = http_.Send(domain_->base_url(), r);
  ASSERT_TRUE(resp.ok());
  EXPECT_EQ(resp->status, 504);
}

}  // namespace
}  // namespace bff::testing
