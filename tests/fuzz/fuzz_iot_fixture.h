// IotBff over the embedded domain, with one device whose key inputs name by a placeholder of the same
// length; the target swaps in the real (random) key, so seeds and mutations get past authentication.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "clients/iot/iot_bff.h"
#include "fuzz_fixture.h"
#include "security/api_key_store.h"
#include "security/key_registry.h"
#include "security/rate_limiter.h"

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

struct IotFixture {
  IotFixture() {
    key = AddFuzzDevice(*domain.keys);
    registry = std::make_unique<KeyRegistry>(*domain.keys, domain.data_dir + "/keys.db", domain.sched,
                                             std::chrono::milliseconds(0));
    limiter = std::make_unique<TokenBucketLimiter>(domain.sched);
    iot = std::make_unique<IotBff>(Config{}, *domain.clients, domain.sched, *registry, *limiter);
  }
  DomainFixture domain;
  std::string key;
  std::unique_ptr<KeyRegistry> registry;
  std::unique_ptr<TokenBucketLimiter> limiter;
  std::unique_ptr<IotBff> iot;
};

}  // namespace bff::fuzz
