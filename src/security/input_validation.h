// Input checks applied before anything goes downstream: ids, JSON bodies, content types, bounds.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/http_message.h"
#include "common/status.h"

namespace bff {

inline constexpr size_t kDefaultMaxBodyBytes = 16 * 1024;
inline constexpr size_t kMaxJsonDepth = 16;
inline constexpr size_t kMaxIdLength = 64;

// SKUs, shelf ids, device ids, user ids: [A-Za-z0-9._-]{1,64} (CONTRACT.md), except "." and "..",
// which would be path traversal wherever an id becomes a path segment.
bool IsValidId(std::string_view id);
// kInvalidArgument naming `what` when `id` is not a valid id.
Status CheckId(std::string_view id, std::string_view what);

// Parses a JSON object body: kPayloadTooLarge above `max_bytes`, kUnsupportedMediaType unless
// Content-Type is application/json (parameters such as charset allowed), kInvalidArgument for malformed
// JSON, nesting deeper than kMaxJsonDepth, or a non-object top level.
StatusOr<nlohmann::json> ParseJsonObjectBody(const HttpRequest& req, size_t max_bytes = kDefaultMaxBodyBytes);

// Field accessors with type and range checks; messages name the field.
StatusOr<std::string> RequireString(const nlohmann::json& obj, std::string_view field, size_t max_len = 1024);
StatusOr<std::string> RequireId(const nlohmann::json& obj, std::string_view field);
StatusOr<int64_t> RequireInt(const nlohmann::json& obj, std::string_view field, int64_t lo, int64_t hi);

}  // namespace bff
