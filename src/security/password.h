// Password hashing for the identity service: PBKDF2-HMAC-SHA256 with a per-password random salt.
#pragma once

#include <string>
#include <string_view>

namespace bff {

inline constexpr int kDefaultPasswordIterations = 100000;

// Returns "pbkdf2-sha256$<iterations>$<salt b64url>$<hash b64url>".
std::string HashPassword(std::string_view password, int iterations = kDefaultPasswordIterations);
// Constant-time check of `password` against an encoded hash; false for malformed encodings.
bool VerifyPassword(std::string_view password, std::string_view encoded);

}  // namespace bff
