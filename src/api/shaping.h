// Allow-list shaping: client-facing JSON is built field by field from what a client may see, so a new
// downstream field (or an internal one such as wholesale_cost) never leaks by default.
#pragma once

#include <initializer_list>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

namespace bff {

using OrderedJson = nlohmann::ordered_json;

// One allowed field: output name, input name. Missing input fields become null.
struct Allowed {
  const char* out;
  const char* in;
};

// Builds an object with exactly the allowed fields, in the order given.
OrderedJson Pick(const nlohmann::json& src, std::initializer_list<Allowed> fields);
// Maps Pick over an array (non-objects are skipped); at most `limit` items.
OrderedJson PickEach(const nlohmann::json& array, std::initializer_list<Allowed> fields, size_t limit = SIZE_MAX);

}  // namespace bff
