// Shoppers and restocking, stepped in one-second ticks per shelf from its own seeded stream.
#include "firmware-sim/shop.h"

#include <algorithm>

namespace bff::sim {
namespace {

constexpr int64_t kTickMs = 1000;

uint64_t Fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ULL;
  return h;
}

}  // namespace

uint32_t Shop::Capacity(Rng& rng) const {
  uint32_t lo = std::min(options_.capacity_min, options_.capacity_max);
  uint32_t hi = std::max(options_.capacity_min, options_.capacity_max);
  return static_cast<uint32_t>(rng.Range(lo, hi));
}

Shop::Shelf& Shop::ShelfFor(const std::string& shelf_id, size_t slot_count) {
  auto it = shelves_.find(shelf_id);
  if (it == shelves_.end()) {
    Shelf shelf;
    shelf.rng = Rng(MixSeed(options_.seed, Fnv1a(shelf_id), 0));
    it = shelves_.emplace(shelf_id, std::move(shelf)).first;
  }
  Shelf& shelf = it->second;
  while (shelf.slots.size() < slot_count) {
    Slot s;
    bool fast = options_.demo && shelf.slots.size() < kDemoFastSlots;
    s.qty = fast ? static_cast<uint32_t>(shelf.rng.Range(2, 5)) : Capacity(shelf.rng);
    double per_minute = fast ? kDemoTakesPerMinute : options_.takes_per_slot_per_minute;
    // Each slot sells at its own pace around the average (0.5x..1.5x).
    s.rate_per_ms = per_minute * (0.5 + shelf.rng.Unit()) / 60000.0;
    shelf.slots.push_back(s);
  }
  return shelf;
}

void Shop::Advance(Shelf& shelf, int64_t to_ms) {
  while (shelf.now_ms + kTickMs <= to_ms) {
    shelf.now_ms += kTickMs;
    for (Slot& s : shelf.slots) {
      if (s.qty == 0) {
        if (s.restock_at_ms < 0) {
          auto base = std::chrono::duration_cast<std::chrono::milliseconds>(options_.restock_after).count();
          s.restock_at_ms = shelf.now_ms + static_cast<int64_t>(static_cast<double>(base) * (0.5 + shelf.rng.Unit()));
        }
        if (shelf.now_ms >= s.restock_at_ms) {
          s.qty = Capacity(shelf.rng);
          s.restock_at_ms = -1;
          s.owed = 0;
        }
        continue;
      }
      s.owed += s.rate_per_ms * kTickMs;
      // Whole takes happen; the fraction happens with its probability, so small rates still sell.
      double whole = static_cast<double>(static_cast<int64_t>(s.owed));
      double frac = s.owed - whole;
      int64_t takes = static_cast<int64_t>(whole) + (shelf.rng.Unit() < frac ? 1 : 0);
      s.owed = 0;
      s.qty = takes >= s.qty ? 0 : s.qty - static_cast<uint32_t>(takes);
    }
  }
}

std::vector<uint32_t> Shop::Observe(const std::string& shelf_id, size_t slot_count, std::chrono::milliseconds elapsed) {
  Shelf& shelf = ShelfFor(shelf_id, slot_count);
  Advance(shelf, elapsed.count());
  std::vector<uint32_t> out;
  out.reserve(slot_count);
  for (size_t i = 0; i < slot_count; ++i) out.push_back(shelf.slots[i].qty);
  return out;
}

}  // namespace bff::sim
