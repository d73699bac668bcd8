// Compact JWS parsing shared by the HS256 internal credential and ES256 access tokens; no signature checks.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace bff {

// Tokens travel in headers; anything larger is refused before any decoding work.
inline constexpr size_t kMaxCompactJwsBytes = 16 * 1024;

struct CompactJws {
  std::string_view signing_input;  // "header.payload", what the signature covers (points into the token)
  nlohmann::json header;           // always an object
  nlohmann::json claims;           // always an object
  std::string signature;           // raw bytes
};

// Splits and decodes `token` (three base64url segments, canonical, unpadded; JSON objects). Never throws.
StatusOr<CompactJws> ParseCompactJws(std::string_view token);

// Base64url without padding, rejecting every other spelling of the same bytes so a token has one form.
bool DecodeBase64UrlStrict(std::string_view in, std::string* out);

// Serialises a header or claims object for signing; invalid UTF-8 is replaced instead of throwing.
std::string EncodeJsonSegment(const nlohmann::json& value);

// "aud" may be a string or an array of strings (RFC 7519 4.1.3).
bool AudienceMatches(const nlohmann::json& claims, std::string_view audience);

// Reads a NumericDate claim; false when absent or not a number.
bool NumericClaim(const nlohmann::json& claims, const char* name, double* out);

// A NumericDate as whole seconds; far-out values are clamped instead of overflowing the conversion.
int64_t ToUnixSeconds(double v);

}  // namespace bff
