// Request parsing, validation and response helpers shared by the reference domain services.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "common/http_message.h"
#include "common/status.h"

namespace bff::domain {

// Caller's remaining time budget in whole milliseconds. Must match kBudgetHeader in
// src/downstream/transport.h (the domain does not depend on downstream, which depends on it).
inline constexpr char kBudgetHeader[] = "X-Request-Budget-Ms";

// Request bodies larger than this are refused with 413 before parsing.
inline constexpr size_t kMaxBodyBytes = 256 * 1024;
// JSON nesting deeper than this is refused before parsing (no request needs more than 4).
inline constexpr int kMaxJsonDepth = 32;
// Ids (skus, shelf ids, device ids, user ids) are at most this long.
inline constexpr size_t kMaxIdLength = 64;

// The contract's id rule: the BFFs' own (security/input_validation.h), so the two sides never disagree.
bool IsValidId(std::string_view id);

// Serialises without ever throwing (invalid UTF-8 from a caller is replaced, not fatal).
std::string Dump(const nlohmann::json& j);

HttpResponse JsonResponse(int status, const nlohmann::json& body);
HttpResponse RawJsonResponse(int status, std::string body);
// {"error": {"code": ..., "message": ...}}
HttpResponse ErrorResponse(int status, std::string_view code, std::string_view message);
HttpResponse ErrorResponse(const Status& status);

// Media type without parameters, lower-cased ("application/json; charset=utf-8" -> "application/json").
std::string MediaType(std::string_view content_type);

// Checks content type (415), size (413), nesting and syntax (400); the body must be a JSON object.
StatusOr<nlohmann::json> ParseJsonObjectBody(const HttpRequest& req);
// Size and nesting checks plus parsing, without the content-type check.
StatusOr<nlohmann::json> ParseJsonObject(std::string_view body);

// An integer in [min, max]; floats, strings, booleans and out-of-range values give nullopt.
std::optional<int64_t> JsonInt(const nlohmann::json& v, int64_t min, int64_t max);
// A finite number in [min, max].
std::optional<double> JsonNumber(const nlohmann::json& v, double min, double max);

// ?limit=N: absent gives `def`; anything but an integer in [1, max] is kInvalidArgument.
StatusOr<int> ParseLimit(const HttpRequest& req, int def, int max);
// Opaque pagination cursor: base64url of the last id of the previous page.
std::string EncodeCursor(std::string_view last_id);
// Empty input gives an empty id (first page); a malformed cursor is kInvalidArgument.
StatusOr<std::string> DecodeCursor(std::string_view cursor);

// 1299 -> "12.99"
std::string FormatCents(int64_t cents);

// Unix seconds -> "2026-01-05T09:00:00Z".
std::string FormatRfc3339(int64_t unix_s);
// Accepts RFC 3339 date-times (with 'T' or 't', fractional seconds, 'Z' or a numeric offset).
bool ParseRfc3339(std::string_view s, int64_t* unix_s);

// The trace id of a W3C traceparent header, or empty when absent/malformed.
std::string TraceIdOf(const HttpRequest& req);

}  // namespace bff::domain
