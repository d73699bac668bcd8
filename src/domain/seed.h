// Deterministic demo data for the reference domain services, and the names tests and benchmarks rely on.
//
// Every value comes from a fixed-seed splitmix64 generator (never std::random_device or std
// distributions, whose output is implementation-defined) and a fixed epoch, so two fresh data
// directories answer byte for byte the same. The rules below are part of this header's contract:
//
//  * Products: kSeedProductCount skus, SeedSku(0) = "SKU-10001" .. SeedSku(1199) = "SKU-11200", spread
//    round-robin over kSeedCategoryCount categories (sku i is in category i % kSeedCategoryCount).
//    Names are brand + descriptor + product type + variant and unique. Prices are EUR with two decimals.
//  * Warehouses: kSeedWarehouses, one stock row per sku and warehouse. Regular skus always hold at
//    least one unit in "wh-central", so only the special skus below can be out of stock.
//  * Stores and shelves: kSeedStoreCount stores "store-01".."store-50", kSeedShelvesPerStore shelves
//    each, "shelf-SS-NN". Slots are numbered from 0. Every "shelf-SS-01" has kSeedMaxSlots (24) slots;
//    the others have 8..24. Each slot holds one sku with qty 0..40 and low_threshold 2..5.
//  * Shelf-only skus: index i with i % 50 == 7 (24 skus). No warehouse stock and exactly one shelf
//    slot (qty 3..40), so a sensor reading of qty 0 for that slot makes the sku unavailable everywhere.
//    The m-th of them (m = i / 50) sits on shelf number (m * 41 + 3) % 1000 at slot m % 8.
//  * Out-of-stock skus: index i with i % 100 == 93 (12 skus). No warehouse stock and exactly one
//    shelf slot holding qty 0, so available is 0 until a reading restocks that slot. The m-th of them
//    (m = i / 100) sits on shelf number (m * 41 + 503) % 1000 at slot m % 8.
//    (Shelf number n is "shelf-SS-NN" with SS = n / 20 + 1, NN = n % 20 + 1.)
//  * Regular skus never sit on the special skus' slots; they fill every other slot.
//  * Reviews: 0..25 per product, created before the epoch. Promotions: about 30% of products carry
//    1..2, ending during 2030. Recommendations: 4..8 skus per product, mostly from other categories.
//    Related skus: 4..6 from the same category.
//  * Timestamps derive from kSeedEpochUnix (2026-01-05T09:00:00Z): every sku's stock and every shelf
//    starts at version 1, stock updated_at = the epoch; product updated_at and review created_at fall
//    before it.
//  * Users: SeedDemoUsers(), password "demo-<username>", ids "u-1001".. in list order.
#pragma once

#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace bff {

inline constexpr int kSeedProductCount = 1200;
inline constexpr int kSeedFirstSkuNumber = 10001;
inline constexpr int kSeedCategoryCount = 14;
inline constexpr int kSeedStoreCount = 50;
inline constexpr int kSeedShelvesPerStore = 20;
inline constexpr int kSeedShelfCount = kSeedStoreCount * kSeedShelvesPerStore;
inline constexpr int kSeedMinSlots = 8;
inline constexpr int kSeedMaxSlots = 24;
inline constexpr std::array<const char*, 3> kSeedWarehouses = {"wh-north", "wh-south", "wh-central"};
inline constexpr int64_t kSeedEpochUnix = 1767603600;  // 2026-01-05T09:00:00Z
// Promotions end during this year (fixed, so answers stay deterministic, and far ahead).
inline constexpr int64_t kSeedPromotionYearUnix = 1893456000;  // 2030-01-01T00:00:00Z
inline constexpr char kSeedCurrency[] = "EUR";

// "SKU-10001" for i = 0; i in [0, kSeedProductCount).
std::string SeedSku(int i);
// "store-01" for store = 1; store in [1, kSeedStoreCount].
std::string SeedStoreId(int store);
// "shelf-01-01" for (1, 1); store in [1, kSeedStoreCount], shelf in [1, kSeedShelvesPerStore].
std::string SeedShelfId(int store, int shelf);
// Shelf by number n in [0, kSeedShelfCount): store n / 20 + 1, shelf n % 20 + 1.
std::string SeedShelfIdByNumber(int n);

bool IsShelfOnlySkuIndex(int i);
bool IsOutOfStockSkuIndex(int i);
inline constexpr int kSeedShelfOnlyCount = 24;
inline constexpr int kSeedOutOfStockCount = 12;

// Where a special sku lives: its one shelf slot.
struct SeedSlotRef {
  std::string sku;
  std::string shelf_id;
  int slot = 0;
};

// The n-th shelf-only sku (n in [0, kSeedShelfOnlyCount)) with its shelf and slot.
SeedSlotRef SeedShelfOnlyProduct(int n = 0);
// The n-th out-of-stock sku (n in [0, kSeedOutOfStockCount)) with its shelf and slot (qty 0 there).
SeedSlotRef SeedOutOfStockProduct(int n = 0);
// Convenience: SeedOutOfStockProduct(n).sku.
std::string SeedOutOfStockSku(int n = 0);

struct SeedUser {
  std::string user_id;
  std::string username;
  std::string password;
  std::string display_name;
  std::string email;
};
const std::vector<SeedUser>& SeedDemoUsers();

// ---- The generated data set (used by the store to fill an empty database) ----

struct SeedProduct {
  std::string sku;
  std::string category;
  int64_t price_cents = 0;
  nlohmann::json doc;  // the catalog answer for this sku
};

struct SeedReview {
  std::string id;
  std::string sku;
  std::string author;
  int rating = 0;
  std::string title;
  std::string body;
  int64_t created_unix = 0;
};

struct SeedSlot {
  int slot = 0;
  std::string sku;
  int qty = 0;
  int low_threshold = 0;
};

struct SeedShelf {
  std::string shelf_id;
  std::string store_id;
  std::vector<SeedSlot> slots;
};

struct SeedPromotion {
  std::string id;
  std::string sku;
  std::string label;
  int discount_pct = 0;
  std::string ends_at;
};

struct SeedData {
  std::vector<SeedProduct> products;
  std::vector<std::array<int, kSeedWarehouses.size()>> warehouse_qty;  // parallel to products
  std::vector<std::vector<std::string>> recommendations;               // parallel to products
  std::vector<SeedReview> reviews;
  std::vector<SeedShelf> shelves;
  std::vector<SeedPromotion> promotions;
};

// Builds the whole data set; pure and deterministic.
SeedData GenerateSeed();

}  // namespace bff
