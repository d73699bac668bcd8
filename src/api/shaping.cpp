// Allow-list shaping helpers.
#include "api/shaping.h"

namespace bff {

OrderedJson Pick(const nlohmann::json& src, std::initializer_list<Allowed> fields) {
  OrderedJson out = OrderedJson::object();
  for (const Allowed& f : fields) {
    if (src.is_object()) {
      auto it = src.find(f.in);
      if (it != src.end()) {
        out[f.out] = OrderedJson(*it);
        continue;
      }
    }
    out[f.out] = nullptr;
  }
  return out;
}

OrderedJson PickEach(const nlohmann::json& array, std::initializer_list<Allowed> fields, size_t limit) {
  OrderedJson out = OrderedJson::array();
  if (!array.is_array()) return out;
  for (const auto& item : array) {
    if (out.size() >= limit) break;
    if (item.is_object()) out.push_back(Pick(item, fields));
  }
  return out;
}

}  // namespace bff
