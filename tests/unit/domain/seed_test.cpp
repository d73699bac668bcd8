// Seed data: sizes, documented rules, determinism across fresh data directories, and reopening.
#include "domain/seed.h"

#include <map>
#include <set>

#include "domain_harness.h"

namespace bff::testing {
namespace {

TEST(SeedRules, NamesAndHelpers) {
  EXPECT_EQ(SeedSku(0), "SKU-10001");
  EXPECT_EQ(SeedSku(kSeedProductCount - 1), "SKU-11200");
  EXPECT_EQ(SeedShelfId(3, 7), "shelf-03-07");
  EXPECT_EQ(SeedShelfIdByNumber(0), "shelf-01-01");
  EXPECT_EQ(SeedShelfIdByNumber(kSeedShelfCount - 1), "shelf-50-20");
  EXPECT_EQ(SeedStoreId(50), "store-50");
  EXPECT_EQ(SeedDemoUsers().size(), 5u);
  EXPECT_EQ(SeedDemoUsers()[0].username, "alice");
  EXPECT_EQ(SeedDemoUsers()[0].password, "demo-alice");
  EXPECT_EQ(SeedDemoUsers()[0].user_id, "u-1001");
  int shelf_only = 0, out_of_stock = 0;
  for (int i = 0; i < kSeedProductCount; ++i) {
    shelf_only += IsShelfOnlySkuIndex(i) ? 1 : 0;
    out_of_stock += IsOutOfStockSkuIndex(i) ? 1 : 0;
    EXPECT_FALSE(IsShelfOnlySkuIndex(i) && IsOutOfStockSkuIndex(i));
  }
  EXPECT_EQ(shelf_only, kSeedShelfOnlyCount);
  EXPECT_EQ(out_of_stock, kSeedOutOfStockCount);
}

TEST(SeedRules, GeneratedDataFollowsTheDocumentedRules) {
  const SeedData data = GenerateSeed();
  ASSERT_EQ(data.products.size(), static_cast<size_t>(kSeedProductCount));
  std::set<std::string> names, categories;
  for (const auto& p : data.products) {
    names.insert(p.doc["name"].get<std::string>());
    categories.insert(p.category);
    EXPECT_EQ(p.doc["currency"], "EUR");
    EXPECT_GE(p.doc["images"].size(), 3u);
    EXPECT_LE(p.doc["images"].size(), 5u);
    EXPECT_GE(p.doc["related_skus"].size(), 4u);
    EXPECT_LE(p.doc["related_skus"].size(), 6u);
    EXPECT_TRUE(p.doc["specs"].is_object() && !p.doc["specs"].empty());
    EXPECT_GT(p.price_cents, 0);
  }
  EXPECT_EQ(names.size(), data.products.size()) << "product names must be unique";
  EXPECT_GE(categories.size(), 12u);

  ASSERT_EQ(data.shelves.size(), static_cast<size_t>(kSeedShelfCount));
  std::map<std::string, std::vector<std::pair<std::string, int>>> slots_by_sku;
  int full_shelves = 0;
  for (const auto& shelf : data.shelves) {
    EXPECT_GE(shelf.slots.size(), static_cast<size_t>(kSeedMinSlots));
    EXPECT_LE(shelf.slots.size(), static_cast<size_t>(kSeedMaxSlots));
    full_shelves += shelf.slots.size() == static_cast<size_t>(kSeedMaxSlots) ? 1 : 0;
    for (const auto& s : shelf.slots) {
      EXPECT_GE(s.qty, 0);
      EXPECT_LE(s.qty, 40);
      EXPECT_GE(s.low_threshold, 2);
      EXPECT_LE(s.low_threshold, 5);
      slots_by_sku[s.sku].emplace_back(shelf.shelf_id, s.slot);
    }
  }
  EXPECT_GE(full_shelves, kSeedStoreCount);

  for (int n = 0; n < kSeedShelfOnlyCount; ++n) {
    SeedSlotRef ref = SeedShelfOnlyProduct(n);
    ASSERT_EQ(slots_by_sku[ref.sku].size(), 1u) << ref.sku;
    EXPECT_EQ(slots_by_sku[ref.sku][0], std::make_pair(ref.shelf_id, ref.slot));
  }
  for (int n = 0; n < kSeedOutOfStockCount; ++n) {
    SeedSlotRef ref = SeedOutOfStockProduct(n);
    ASSERT_EQ(slots_by_sku[ref.sku].size(), 1u) << ref.sku;
    EXPECT_EQ(slots_by_sku[ref.sku][0], std::make_pair(ref.shelf_id, ref.slot));
  }
  for (int i = 0; i < kSeedProductCount; ++i) {
    int total = data.warehouse_qty[static_cast<size_t>(i)][0] + data.warehouse_qty[static_cast<size_t>(i)][1] +
                data.warehouse_qty[static_cast<size_t>(i)][2];
    if (IsShelfOnlySkuIndex(i) || IsOutOfStockSkuIndex(i)) {
      EXPECT_EQ(total, 0) << SeedSku(i);
    } else {
      EXPECT_GT(data.warehouse_qty[static_cast<size_t>(i)][2], 0) << SeedSku(i);
    }
    EXPECT_GE(data.recommendations[static_cast<size_t>(i)].size(), 4u);
    EXPECT_LE(data.recommendations[static_cast<size_t>(i)].size(), 8u);
  }
  EXPECT_GT(data.reviews.size(), 5000u);
  EXPECT_GT(data.promotions.size(), static_cast<size_t>(kSeedProductCount / 5));
}

TEST(SeedRules, GeneratorIsPure) {
  const SeedData a = GenerateSeed();
  const SeedData b = GenerateSeed();
  ASSERT_EQ(a.products.size(), b.products.size());
  for (size_t i = 0; i < a.products.size(); ++i) EXPECT_EQ(a.products[i].doc, b.products[i].doc);
  EXPECT_EQ(a.reviews.size(), b.reviews.size());
}

TEST(SeedStore, SizesThroughTheApi) {
  DomainHarness h;
  auto page = h.Get("/catalog/v1/products?limit=200");
  ASSERT_EQ(page.status, 200);
  int products = 0;
  std::string cursor;
  for (int guard = 0; guard < 20; ++guard) {
    auto r = h.Get("/catalog/v1/products?limit=200" + (cursor.empty() ? "" : "&cursor=" + cursor));
    ASSERT_EQ(r.status, 200);
    auto j = BodyJson(r);
    products += static_cast<int>(j["products"].size());
    if (j["next_cursor"].is_null()) break;
    cursor = j["next_cursor"].get<std::string>();
  }
  EXPECT_GE(products, 1000);
  EXPECT_EQ(products, kSeedProductCount);

  int shelves = 0;
  std::set<std::string> stores;
  cursor.clear();
  for (int guard = 0; guard < 20; ++guard) {
    auto r = h.Get("/inventory/v1/shelves?limit=200" + (cursor.empty() ? "" : "&cursor=" + cursor));
    ASSERT_EQ(r.status, 200);
    auto j = BodyJson(r);
    for (const auto& s : j["shelves"]) stores.insert(s["store_id"].get<std::string>());
    shelves += static_cast<int>(j["shelves"].size());
    if (j["next_cursor"].is_null()) break;
    cursor = j["next_cursor"].get<std::string>();
  }
  EXPECT_EQ(shelves, 50 * 20);
  EXPECT_EQ(stores.size(), 50u);

  auto reviews = BodyJson(h.Get("/reviews/v1/products/" + SeedSku(0) + "/reviews"));
  int with_reviews = 0;
  for (int i = 0; i < 20; ++i) {
    auto j = BodyJson(h.Get("/reviews/v1/products/" + SeedSku(i) + "/reviews"));
    with_reviews += j["count"].get<int>() > 0 ? 1 : 0;
  }
  EXPECT_GT(with_reviews, 10);

  for (const auto& u : SeedDemoUsers()) {
    auto r = h.Post("/identity/v1/verify-password", {{"username", u.username}, {"password", u.password}});
    ASSERT_EQ(r.status, 200) << u.username;
    EXPECT_EQ(BodyJson(r)["user_id"], u.user_id);
  }
}

TEST(SeedStore, TwoFreshDirectoriesAnswerIdentically) {
  DomainHarness a;
  DomainHarness b;
  for (const std::string target :
       {"/catalog/v1/products?limit=200", "/catalog/v1/products/SKU-10001", "/catalog/v1/products/SKU-11200",
        "/inventory/v1/shelves?limit=200", "/inventory/v1/shelves/shelf-01-01", "/inventory/v1/shelves/shelf-37-12",
        "/inventory/v1/stock/SKU-10500", "/reviews/v1/products/SKU-10002/reviews?limit=50",
        "/recommendations/v1/products/SKU-10003", "/promotions/v1/products/SKU-10004"}) {
    auto ra = a.Get(target);
    auto rb = b.Get(target);
    EXPECT_EQ(ra.status, 200) << target;
    EXPECT_EQ(ra.body, rb.body) << target;
  }
  std::string cursor_a = BodyJson(a.Get("/catalog/v1/products?limit=200"))["next_cursor"];
  EXPECT_EQ(a.Get("/catalog/v1/products?limit=200&cursor=" + cursor_a).body,
            b.Get("/catalog/v1/products?limit=200&cursor=" + cursor_a).body);
}

TEST(SeedStore, ReopeningKeepsStateAndDoesNotReseed) {
  DomainHarness h;
  const std::string user = SeedDemoUsers()[1].user_id;
  ASSERT_EQ(h.Post("/cart/v1/carts/" + user + "/items", {{"sku", SeedSku(5)}, {"qty", 2}}).status, 200);
  SeedSlotRef ref = SeedShelfOnlyProduct(0);
  ASSERT_EQ(h.Post("/inventory/v1/shelf-readings", {{"device_id", "dev-1"},
                                                    {"shelf_id", ref.shelf_id},
                                                    {"seq", 1},
                                                    {"ts", 1767603700},
                                                    {"readings", {{{"slot", ref.slot}, {"qty", 0}}}},
                                                    {"battery_pct", 80},
                                                    {"temp_c", 4.5}})
                .status,
            202);
  auto shelf_before = h.Get("/inventory/v1/shelves/" + ref.shelf_id).body;
  auto stock_before = h.Get("/inventory/v1/stock/" + ref.sku).body;

  h.Open();  // destroys and recreates DomainServices over the same directory
  auto cart = BodyJson(h.Get("/cart/v1/carts/" + user));
  ASSERT_EQ(cart["items"].size(), 1u);
  EXPECT_EQ(cart["items"][0]["sku"], SeedSku(5));
  EXPECT_EQ(cart["items"][0]["qty"], 2);
  EXPECT_EQ(h.Get("/inventory/v1/shelves/" + ref.shelf_id).body, shelf_before);
  EXPECT_EQ(h.Get("/inventory/v1/stock/" + ref.sku).body, stock_before);
  EXPECT_EQ(BodyJson(h.Get("/inventory/v1/stock/" + ref.sku))["available"], 0);
}

}  // namespace
}  // namespace bff::testing
