// Compact JWS splitting and strict segment decoding.
#include "security/compact_jws.h"

#include "common/crypto.h"

namespace bff {
namespace {

bool ParseObject(std::string_view segment, nlohmann::json* out) {
  std::string text;
  if (!DecodeBase64UrlStrict(segment, &text)) return false;
  nlohmann::json parsed = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object()) return false;  // also covers the "discarded" value of a parse error
  *out = std::move(parsed);
  return true;
}

}  // namespace

bool DecodeBase64UrlStrict(std::string_view in, std::string* out) {
  for (char c : in) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok) return false;
  }
  if (!Base64UrlDecode(in, out)) return false;
  // Unused trailing bits must be zero: re-encoding gives back the input only for the canonical form.
  return Base64UrlEncode(*out) == in;
}

std::string EncodeJsonSegment(const nlohmann::json& value) {
  return Base64UrlEncode(value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

StatusOr<CompactJws> ParseCompactJws(std::string_view token) {
  try {
    if (token.empty()) return Unauthenticated("empty token");
    if (token.size() > kMaxCompactJwsBytes) return Unauthenticated("token too large");
    size_t dot1 = token.find('.');
    if (dot1 == std::string_view::npos) return Unauthenticated("malformed token: expected three segments");
    size_t dot2 = token.find('.', dot1 + 1);
    if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
      return Unauthenticated("malformed token: expected three segments");
    }
    CompactJws jws;
    jws.signing_input = token.substr(0, dot2);
    if (!ParseObject(token.substr(0, dot1), &jws.header)) return Unauthenticated("malformed token header");
    if (!ParseObject(token.substr(dot1 + 1, dot2 - dot1 - 1), &jws.claims)) {
      return Unauthenticated("malformed token claims");
    }
    if (!DecodeBase64UrlStrict(token.substr(dot2 + 1), &jws.signature)) {
      return Unauthenticated("malformed token signature");
    }
    return jws;
  } catch (...) {
    return Unauthenticated("malformed token");  // e.g. allocation failure: refuse, never propagate
  }
}

bool AudienceMatches(const nlohmann::json& claims, std::string_view audience) {
  auto it = claims.find("aud");
  if (it == claims.end()) return false;
  if (it->is_string()) return it->get_ref<const std::string&>() == audience;
  if (!it->is_array()) return false;
  for (const auto& entry : *it) {
    if (entry.is_string() && entry.get_ref<const std::string&>() == audience) return true;
  }
  return false;
}

bool NumericClaim(const nlohmann::json& claims, const char* name, double* out) {
  auto it = claims.find(name);
  if (it == claims.end() || !it->is_number()) return false;
  *out = it->get<double>();
  return true;
}

int64_t ToUnixSeconds(double v) {
  constexpr double kLimit = 1e15;  // about 31 million years either way: past any real date, far inside int64
  if (v > kLimit) return static_cast<int64_t>(kLimit);
  if (v < -kLimit) return static_cast<int64_t>(-kLimit);
  return static_cast<int64_t>(v);
}

}  // namespace bff
