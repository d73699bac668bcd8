// The fuzzing device and its key: inputs name the key by a placeholder of the same length, which the
// target swaps for the real (random) key, so seeds and mutations get past authentication.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "security/api_key_store.h"
#include "fuzz_check.h"

namespace bff::fuzz {

inline constexpr char kFuzzDevice[] = "sensor-fuzz";
// 32 characters, like every key ApiKeyStore issues.
inline constexpr std::string_view kKeyPlaceholder = "KEYKEYKEYKEYKEYKEYKEYKEYKEYKEYKE";
// The shelves the device may report on: a full 24-slot shelf and the one holding the first shelf-only sku.
inline const std::vector<std::string> kFuzzShelves = {"shelf-01-01", "shelf-01-04"};
// No rate limit worth the name: limits are exercised by the unit tests, here they would only hide code.
inline constexpr double kFuzzKeyRate = 1e9;

inline std::string AddFuzzDevice(ApiKeyStore& store) {
  auto key = store.Add(kFuzzDevice, kFuzzShelves, kFuzzKeyRate, kFuzzKeyRate);
  if (!key.ok()) SetupFailed("device key: " + key.status().ToString());
  if (key->size() != kKeyPlaceholder.size()) SetupFailed("device keys changed length");
  return *key;
}

// `bytes` with every placeholder replaced by `key`.
inline std::string WithKey(std::string bytes, const std::string& key) {
  for (size_t at = bytes.find(kKeyPlaceholder); at != std::string::npos; at = bytes.find(kKeyPlaceholder, at + key.size())) {
    bytes.replace(at, kKeyPlaceholder.size(), key);
  }
  return bytes;
}

}  // namespace bff::fuzz
