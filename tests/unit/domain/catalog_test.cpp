// Catalog, reviews, recommendations and promotions: happy paths, pagination and their errors.
#include <set>

#include "domain/http_util.h"
#include "domain/seed.h"
#include "domain_harness.h"

namespace bff::testing {
namespace {

// Read-only tests share one seeded instance.
class CatalogTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { h_ = new DomainHarness(); }
  static void TearDownTestSuite() {
    delete h_;
    h_ = nullptr;
  }
  static DomainHarness& h() { return *h_; }
  static DomainHarness* h_;
};
DomainHarness* CatalogTest::h_ = nullptr;

TEST_F(CatalogTest, ProductHasEveryContractField) {
  auto r = h().Get("/catalog/v1/products/SKU-10001");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.headers.Get("Content-Type"), "application/json");
  auto p = BodyJson(r);
  for (const char* field : {"sku", "name", "description", "specs", "price", "currency", "images", "thumbnail_url",
                            "category", "related_skus", "wholesale_cost", "margin_pct", "updated_at"}) {
    EXPECT_TRUE(p.contains(field)) << field;
  }
  EXPECT_EQ(p["sku"], "SKU-10001");
  EXPECT_EQ(p["currency"], "EUR");
  std::string price = p["price"];
  ASSERT_GE(price.size(), 4u);
  EXPECT_EQ(price[price.size() - 3], '.');
  EXPECT_EQ(p["images"][0], "https://img.bffd.example/p/SKU-10001/1.jpg");
  EXPECT_TRUE(p["margin_pct"].is_number());
  EXPECT_TRUE(p["wholesale_cost"].is_string());
  EXPECT_EQ(p["updated_at"].get<std::string>().back(), 'Z');
  // Related skus are from the same category.
  std::string category = p["category"];
  for (const auto& rel : p["related_skus"]) {
    EXPECT_EQ(BodyJson(h().Get("/catalog/v1/products/" + rel.get<std::string>()))["category"], category);
  }
}

TEST_F(CatalogTest, UnknownAndInvalidSkus) {
  auto r = h().Get("/catalog/v1/products/SKU-99999");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(ErrorCode(r), "not_found");
  r = h().Get("/catalog/v1/products/bad$sku");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(ErrorCode(r), "invalid_argument");
  r = h().Get("/catalog/v1/products/" + std::string(65, 'a'));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(h().Get("/catalog/v1/nothing").status, 404);
  EXPECT_EQ(h().Get("/nowhere").status, 404);
}

TEST_F(CatalogTest, WrongMethodIs405) {
  auto r = h().Send(MakeRequest("DELETE", "/catalog/v1/products/SKU-10001"));
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.headers.Get("Allow"), "GET");
  EXPECT_EQ(h().Send(MakeRequest("GET", "/catalog/v1/products:batchGet")).status, 405);
}

TEST_F(CatalogTest, PaginationWalksEveryProductOnce) {
  std::set<std::string> seen;
  std::string cursor;
  int pages = 0;
  for (; pages < 100; ++pages) {
    auto r = h().Get("/catalog/v1/products?limit=97" + (cursor.empty() ? "" : "&cursor=" + cursor));
    ASSERT_EQ(r.status, 200);
    auto j = BodyJson(r);
    for (const auto& p : j["products"]) EXPECT_TRUE(seen.insert(p["sku"].get<std::string>()).second);
    if (j["next_cursor"].is_null()) break;
    cursor = j["next_cursor"];
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(kSeedProductCount));
  EXPECT_EQ(pages, (kSeedProductCount + 96) / 97 - 1);
  auto def = BodyJson(h().Get("/catalog/v1/products"));
  EXPECT_EQ(def["products"].size(), 50u);
  EXPECT_EQ(def["products"][0]["sku"], "SKU-10001");
}

TEST_F(CatalogTest, PaginationErrors) {
  for (const char* q : {"limit=0", "limit=201", "limit=-1", "limit=abc", "limit=", "limit=99999999999999999999",
                        "cursor=%%%", "cursor=not-base64!", "cursor=JCQk"}) {
    auto r = h().Get(std::string("/catalog/v1/products?") + q);
    EXPECT_EQ(r.status, 400) << q;
    EXPECT_EQ(h().Get(std::string("/inventory/v1/shelves?") + q).status, 400) << q;
  }
  EXPECT_EQ(h().Get("/catalog/v1/products?limit=200").status, 200);
  EXPECT_EQ(h().Get("/catalog/v1/products?limit=1").status, 200);
}

TEST_F(CatalogTest, BatchGetKeepsOrderAndReportsMissing) {
  auto r = h().Post("/catalog/v1/products:batchGet",
                    {{"skus", {"SKU-10003", "SKU-99999", "SKU-10001", "SKU-10003", "NOPE"}}});
  ASSERT_EQ(r.status, 200);
  auto j = BodyJson(r);
  ASSERT_EQ(j["products"].size(), 2u);
  EXPECT_EQ(j["products"][0]["sku"], "SKU-10003");
  EXPECT_EQ(j["products"][1]["sku"], "SKU-10001");
  EXPECT_EQ(j["missing"], nlohmann::json({"SKU-99999", "NOPE"}));

  auto empty = BodyJson(h().Post("/catalog/v1/products:batchGet", {{"skus", nlohmann::json::array()}}));
  EXPECT_TRUE(empty["products"].empty());
  EXPECT_TRUE(empty["missing"].empty());
}

TEST_F(CatalogTest, BatchGetErrors) {
  nlohmann::json many = nlohmann::json::array();
  for (int i = 0; i < 101; ++i) many.push_back(SeedSku(i));
  EXPECT_EQ(h().Post("/catalog/v1/products:batchGet", {{"skus", many}}).status, 400);
  many.erase(many.end() - 1);
  EXPECT_EQ(h().Post("/catalog/v1/products:batchGet", {{"skus", many}}).status, 200);
  EXPECT_EQ(h().Post("/catalog/v1/products:batchGet", {{"skus", {"SKU-10001", 5}}}).status, 400);
  EXPECT_EQ(h().Post("/catalog/v1/products:batchGet", {{"skus", {"bad sku"}}}).status, 400);
  EXPECT_EQ(h().Post("/catalog/v1/products:batchGet", {{"skus", "SKU-10001"}}).status, 400);
  EXPECT_EQ(h().Post("/catalog/v1/products:batchGet", nlohmann::json::object()).status, 400);
  auto wrong_type = MakeRequest("POST", "/catalog/v1/products:batchGet", R"({"skus":[]})", "text/plain");
  EXPECT_EQ(h().Send(wrong_type).status, 415);
  auto no_type = MakeRequest("POST", "/catalog/v1/products:batchGet", R"({"skus":[]})", "");
  EXPECT_EQ(h().Send(no_type).status, 415);
  auto charset =
      MakeRequest("POST", "/catalog/v1/products:batchGet", R"({"skus":[]})", "Application/JSON; charset=utf-8");
  EXPECT_EQ(h().Send(charset).status, 200);
}

TEST_F(CatalogTest, ReviewsNewestFirstWithLimit) {
  // Find a product with many reviews.
  std::string sku;
  for (int i = 0; i < 50 && sku.empty(); ++i) {
    auto j = BodyJson(h().Get("/reviews/v1/products/" + SeedSku(i) + "/reviews"));
    if (j["count"].get<int>() > 12) sku = SeedSku(i);
  }
  ASSERT_FALSE(sku.empty());
  auto j = BodyJson(h().Get("/reviews/v1/products/" + sku + "/reviews"));
  EXPECT_EQ(j["sku"], sku);
  ASSERT_EQ(j["reviews"].size(), 10u);
  for (size_t i = 1; i < j["reviews"].size(); ++i) {
    EXPECT_GE(j["reviews"][i - 1]["created_at"].get<std::string>(), j["reviews"][i]["created_at"].get<std::string>());
  }
  for (const char* field : {"id", "author", "rating", "title", "body", "created_at"}) {
    EXPECT_TRUE(j["reviews"][0].contains(field)) << field;
  }
  double avg = j["rating_avg"];
  EXPECT_GE(avg, 1.0);
  EXPECT_LE(avg, 5.0);
  EXPECT_DOUBLE_EQ(avg, std::round(avg * 100) / 100);
  auto all = BodyJson(h().Get("/reviews/v1/products/" + sku + "/reviews?limit=50"));
  EXPECT_EQ(all["reviews"].size(), std::min<size_t>(50, all["count"].get<size_t>()));
  EXPECT_EQ(h().Get("/reviews/v1/products/" + sku + "/reviews?limit=51").status, 400);
  EXPECT_EQ(h().Get("/reviews/v1/products/" + sku + "/reviews?limit=0").status, 400);
  EXPECT_EQ(h().Get("/reviews/v1/products/SKU-99999/reviews").status, 404);
}

TEST_F(CatalogTest, RecommendationsAndPromotions) {
  auto rec = BodyJson(h().Get("/recommendations/v1/products/SKU-10010"));
  EXPECT_EQ(rec["sku"], "SKU-10010");
  EXPECT_GE(rec["related"].size(), 4u);
  EXPECT_LE(rec["related"].size(), 8u);
  EXPECT_EQ(h().Get("/recommendations/v1/products/SKU-99999").status, 404);

  int with_promotions = 0;
  for (int i = 0; i < 100; ++i) {
    auto r = h().Get("/promotions/v1/products/" + SeedSku(i));
    ASSERT_EQ(r.status, 200);
    auto j = BodyJson(r);
    ASSERT_TRUE(j["promotions"].is_array());
    if (!j["promotions"].empty()) {
      ++with_promotions;
      const auto& p = j["promotions"][0];
      EXPECT_TRUE(p["id"].is_string());
      EXPECT_NE(p["label"].get<std::string>().find('%'), std::string::npos);
      EXPECT_TRUE(p["discount_pct"].is_number_integer());
      EXPECT_EQ(p["ends_at"].get<std::string>().back(), 'Z');
      EXPECT_GT(p["ends_at"].get<std::string>(), domain::FormatRfc3339(UnixNow())) << "promotions end in the future";
    }
  }
  EXPECT_GT(with_promotions, 15);
  EXPECT_LT(with_promotions, 50);
  EXPECT_EQ(h().Get("/promotions/v1/products/SKU-99999").status, 404);
}

TEST_F(CatalogTest, HealthzNeedsNoCredential) {
  auto r = h().Send(MakeRequest("GET", "/healthz"), /*authenticate=*/false);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(BodyJson(r)["status"], "ok");
}

}  // namespace
}  // namespace bff::testing
