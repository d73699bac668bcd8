// JSON forms of a shelf reading and of inventory's answer to it.
#include "domain/shelf_reading.h"

namespace bff {

nlohmann::json ShelfReadingToJson(const ShelfReading& r) {
  nlohmann::json slots = nlohmann::json::array();
  for (const auto& [slot, qty] : r.slots) slots.push_back({{"slot", slot}, {"qty", qty}});
  nlohmann::json j = {{"device_id", r.device_id}, {"shelf_id", r.shelf_id}, {"seq", r.seq}, {"ts", r.ts},
                      {"readings", std::move(slots)}};
  if (r.battery_pct) j["battery_pct"] = *r.battery_pct;
  if (r.temp_c) j["temp_c"] = *r.temp_c;
  return j;
}

nlohmann::json ShelfReadingAcceptedToJson(const ShelfReadingAccepted& a) {
  nlohmann::json j = {{"accepted", true}, {"duplicate", a.duplicate}, {"shelf_version", a.shelf_version}};
  if (!a.duplicate) j["changed_skus"] = a.changed_skus;
  return j;
}

StatusOr<ShelfReadingAccepted> ShelfReadingAcceptedFromJson(const nlohmann::json& j) {
  if (!j.is_object() || !j.value("accepted", false)) return Internal("inventory: not an accepted reading");
  auto version = j.find("shelf_version");
  if (version == j.end() || !version->is_number_integer() || version->get<int64_t>() < 0) {
    return Internal("inventory: shelf_version missing");
  }
  ShelfReadingAccepted a;
  a.duplicate = j.value("duplicate", false);
  a.shelf_version = version->get<uint64_t>();
  if (auto skus = j.find("changed_skus"); skus != j.end() && skus->is_array()) {
    for (const auto& s : *skus) {
      if (s.is_string()) a.changed_skus.push_back(s.get<std::string>());
    }
  }
  return a;
}

}  // namespace bff
