// Cart and analytics: adding items, totals in cents, ownership by credential subject, persistence.
#include "domain/seed.h"
#include "domain_harness.h"

namespace bff::testing {
namespace {

int64_t Cents(const std::string& price) {
  size_t dot = price.find('.');
  return std::stoll(price.substr(0, dot)) * 100 + std::stoll(price.substr(dot + 1));
}

TEST(Cart, EmptyCartIsOk) {
  DomainHarness h;
  auto r = h.Get("/cart/v1/carts/u-1001", "u-1001");
  ASSERT_EQ(r.status, 200);
  auto j = BodyJson(r);
  EXPECT_EQ(j["user_id"], "u-1001");
  EXPECT_TRUE(j["items"].is_array() && j["items"].empty());
  EXPECT_EQ(j["total"], "0.00");
  EXPECT_EQ(j["currency"], "EUR");
}

TEST(Cart, AddItemsAccumulatesAndTotalsInCents) {
  DomainHarness h;
  const std::string path = "/cart/v1/carts/u-1002/items";
  auto r = h.Post(path, {{"sku", "SKU-10001"}, {"qty", 2}}, "u-1002");
  ASSERT_EQ(r.status, 200) << r.body;
  r = h.Post(path, {{"sku", "SKU-10002"}, {"qty", 1}}, "u-1002");
  ASSERT_EQ(r.status, 200);
  r = h.Post(path, {{"sku", "SKU-10001"}, {"qty", 3}}, "u-1002");
  ASSERT_EQ(r.status, 200);
  auto cart = BodyJson(r);
  ASSERT_EQ(cart["items"].size(), 2u);
  EXPECT_EQ(cart["items"][0]["sku"], "SKU-10001");
  EXPECT_EQ(cart["items"][0]["qty"], 5);
  EXPECT_EQ(cart["items"][1]["qty"], 1);
  std::string p1 = BodyJson(h.Get("/catalog/v1/products/SKU-10001"))["price"];
  std::string p2 = BodyJson(h.Get("/catalog/v1/products/SKU-10002"))["price"];
  EXPECT_EQ(cart["items"][0]["price"], p1);
  int64_t total = 5 * Cents(p1) + Cents(p2);
  EXPECT_EQ(Cents(cart["total"]), total);
  EXPECT_EQ(BodyJson(h.Get("/cart/v1/carts/u-1002", "u-1002")), cart);
}

TEST(Cart, LineQuantityIsCappedAt99) {
  DomainHarness h;
  const std::string path = "/cart/v1/carts/u-1003/items";
  ASSERT_EQ(h.Post(path, {{"sku", "SKU-10004"}, {"qty", 99}}).status, 200);
  auto r = h.Post(path, {{"sku", "SKU-10004"}, {"qty", 1}});
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(ErrorCode(r), "conflict");
  EXPECT_EQ(BodyJson(h.Get("/cart/v1/carts/u-1003"))["items"][0]["qty"], 99);
}

TEST(Cart, InputErrors) {
  DomainHarness h;
  const std::string path = "/cart/v1/carts/u-1001/items";
  for (const nlohmann::json& qty : {nlohmann::json(0), nlohmann::json(100), nlohmann::json(-3), nlohmann::json(1.5),
                                    nlohmann::json("2"), nlohmann::json(nullptr), nlohmann::json(1e300)}) {
    EXPECT_EQ(h.Post(path, {{"sku", "SKU-10001"}, {"qty", qty}}).status, 400) << qty.dump();
  }
  EXPECT_EQ(h.Post(path, {{"qty", 1}}).status, 400);
  EXPECT_EQ(h.Post(path, {{"sku", "no such/sku"}, {"qty", 1}}).status, 400);
  EXPECT_EQ(h.Post(path, {{"sku", "SKU-99999"}, {"qty", 1}}).status, 404);
  EXPECT_EQ(h.Send(MakeRequest("POST", path, R"({"sku":"SKU-10001","qty":1})", "text/plain")).status, 415);
  EXPECT_EQ(h.Send(MakeRequest("POST", path, R"({"sku":"SKU-10001",)")).status, 400);
  EXPECT_EQ(h.Get("/cart/v1/carts/bad%id").status, 400);
  EXPECT_TRUE(BodyJson(h.Get("/cart/v1/carts/u-1001"))["items"].empty());
}

TEST(Cart, AnotherUsersCartIsForbidden) {
  DomainHarness h;
  auto r = h.Get("/cart/v1/carts/u-1001", "u-1002");
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(ErrorCode(r), "forbidden");
  r = h.Post("/cart/v1/carts/u-1001/items", {{"sku", "SKU-10001"}, {"qty", 1}}, "u-1002");
  EXPECT_EQ(r.status, 403);
  EXPECT_TRUE(BodyJson(h.Get("/cart/v1/carts/u-1001", "u-1001"))["items"].empty());
  // The daemon's own calls (no subject) may read any cart.
  EXPECT_EQ(h.Get("/cart/v1/carts/u-1001").status, 200);
}

TEST(Cart, PersistsAcrossRestart) {
  DomainHarness h;
  ASSERT_EQ(h.Post("/cart/v1/carts/u-1005/items", {{"sku", "SKU-10100"}, {"qty", 4}}, "u-1005").status, 200);
  auto before = h.Get("/cart/v1/carts/u-1005", "u-1005").body;
  h.Open();
  EXPECT_EQ(h.Get("/cart/v1/carts/u-1005", "u-1005").body, before);
  EXPECT_EQ(
      BodyJson(h.Post("/cart/v1/carts/u-1005/items", {{"sku", "SKU-10100"}, {"qty", 1}}, "u-1005"))["items"][0]["qty"],
      5);
}

TEST(Analytics, AcceptsValidEvents) {
  DomainHarness h;
  auto r =
      h.Post("/analytics/v1/events",
             {{"type", "add_to_cart"}, {"user_id", "u-1001"}, {"sku", "SKU-10001"}, {"at", "2026-01-05T10:00:00Z"}});
  ASSERT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(BodyJson(r), nlohmann::json({{"accepted", true}}));
  EXPECT_EQ(h.Post("/analytics/v1/events",
                   {{"type", "shelf_empty"}, {"device_id", "dev-1"}, {"at", "2026-01-05T10:00:00.123+01:00"}})
                .status,
            202);
  EXPECT_EQ(
      h.Post("/analytics/v1/events", {{"type", "x"}, {"user_id", nullptr}, {"at", "2026-01-05T10:00:00Z"}}).status,
      202);
}

TEST(Analytics, RejectsBadEvents) {
  DomainHarness h;
  const nlohmann::json good = {{"type", "view"}, {"at", "2026-01-05T10:00:00Z"}};
  std::vector<std::pair<const char*, nlohmann::json>> bad = {
      {"type", ""},
      {"type", std::string(65, 't')},
      {"type", 7},
      {"at", "yesterday"},
      {"at", "2026-13-01T00:00:00Z"},
      {"at", "2026-02-30T00:00:00Z"},
      {"at", "2026-01-05 10:00:00Z"},
      {"at", 1767603600},
      {"user_id", "bad id"},
      {"device_id", 5},
      {"sku", "x/y"},
  };
  for (const auto& [field, value] : bad) {
    nlohmann::json body = good;
    body[field] = value;
    EXPECT_EQ(h.Post("/analytics/v1/events", body).status, 400) << field << "=" << value.dump();
  }
  nlohmann::json no_at = good;
  no_at.erase("at");
  EXPECT_EQ(h.Post("/analytics/v1/events", no_at).status, 400);
  nlohmann::json no_type = good;
  no_type.erase("type");
  EXPECT_EQ(h.Post("/analytics/v1/events", no_type).status, 400);
  EXPECT_EQ(h.Send(MakeRequest("POST", "/analytics/v1/events", good.dump(), "text/plain")).status, 415);
}

}  // namespace
}  // namespace bff::testing
