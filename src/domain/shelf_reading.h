// A shelf sensor's reading as inventory takes it, and inventory's answer: the typed form of
// POST /inventory/v1/shelf-readings (CONTRACT.md section 1), shared by the domain and its typed client.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace bff {

struct ShelfReading {
  std::string device_id;
  std::string shelf_id;
  int64_t seq = 0;
  int64_t ts = 0;                               // unix seconds, as the device reports it
  std::vector<std::pair<int, int64_t>> slots;  // (slot, qty)
  std::optional<double> battery_pct;
  std::optional<double> temp_c;
};

struct ShelfReadingAccepted {
  bool duplicate = false;              // (device, seq) was recorded before; nothing changed
  uint64_t shelf_version = 0;          // the shelf's stock version after this reading
  std::vector<std::string> changed_skus;
};

using ShelfReadingCallback = std::function<void(StatusOr<ShelfReadingAccepted>)>;

// The request body and the 202 answer on the wire.
nlohmann::json ShelfReadingToJson(const ShelfReading& r);
nlohmann::json ShelfReadingAcceptedToJson(const ShelfReadingAccepted& a);
// A 202 body back into its typed form; kInternal when it is not one.
StatusOr<ShelfReadingAccepted> ShelfReadingAcceptedFromJson(const nlohmann::json& j);

}  // namespace bff
