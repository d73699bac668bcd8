// A tiny deterministic PRNG (splitmix64) whose output is the same on every platform and library: seed
// data, fault rolls and the firmware simulator draw from it.
#pragma once

#include <cstdint>

namespace bff {

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}

  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  // Uniform-enough integer in [lo, hi] (modulo bias is irrelevant for demo data and fault rolls).
  int64_t Range(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(Next() % static_cast<uint64_t>(hi - lo + 1));
  }
  // In [0, 1), from the top 53 bits.
  double Unit() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  bool Chance(int percent) { return Range(0, 99) < percent; }

 private:
  uint64_t state_;
};

// Derives an independent stream seed from (base, purpose, index) so that adding data for one purpose
// never shifts the values of another.
inline uint64_t MixSeed(uint64_t base, uint64_t purpose, uint64_t index) {
  Rng r(base ^ (purpose * 0xD1B54A32D192ED03ULL) ^ (index * 0x8CB92BA72F3D8DD7ULL));
  r.Next();
  return r.Next();
}

}  // namespace bff
