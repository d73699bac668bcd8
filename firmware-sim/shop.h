// The shop the sensors watch: slot quantities fall as simulated shoppers take items and jump back on
// restock events. Seeded: the same seed and the same observation times give the same quantities.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/rng.h"

namespace bff::sim {

struct ShopOptions {
  uint64_t seed = 1;
  double takes_per_slot_per_minute = 0.5;  // shoppers taking one item, on average
  uint32_t capacity_min = 8;               // a restocked slot holds capacity_min..capacity_max
  uint32_t capacity_max = 40;
  std::chrono::seconds restock_after{120};  // an empty slot is restocked after about this long
  // "demo": the first few slots of every shelf start nearly empty and sell fast, so answers visibly
  // change within a minute.
  bool demo = false;
};

class Shop {
 public:
  explicit Shop(ShopOptions options) : options_(options) {}

  // The quantities on `shelf_id` (slot_count slots) after `elapsed` since the simulation began.
  // Time only moves forward per shelf: an earlier `elapsed` returns the current state.
  std::vector<uint32_t> Observe(const std::string& shelf_id, size_t slot_count, std::chrono::milliseconds elapsed);

  static constexpr size_t kDemoFastSlots = 3;
  static constexpr double kDemoTakesPerMinute = 6.0;

 private:
  struct Slot {
    uint32_t qty = 0;
    double rate_per_ms = 0;
    double owed = 0;             // fractional takes carried over
    int64_t restock_at_ms = -1;
  };
  struct Shelf {
    Rng rng{0};
    int64_t now_ms = 0;
    std::vector<Slot> slots;
  };
  Shelf& ShelfFor(const std::string& shelf_id, size_t slot_count);
  void Advance(Shelf& shelf, int64_t to_ms);
  uint32_t Capacity(Rng& rng) const;

  ShopOptions options_;
  std::map<std::string, Shelf> shelves_;
};

}  // namespace bff::sim
