// Small OpenSSL-backed primitives: secure randomness, hashing, HMAC, encodings, constant-time compare.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace bff {

// Cryptographically secure random bytes (OpenSSL RAND_bytes); aborts if the CSPRNG fails.
std::string RandomBytes(size_t n);
std::string RandomHex(size_t n_bytes);
std::string HexEncode(std::string_view bytes);
// Returns false on malformed input.
bool HexDecode(std::string_view hex, std::string* out);
std::string Base64UrlEncode(std::string_view bytes);  // no padding
bool Base64UrlDecode(std::string_view in, std::string* out);
std::string Sha256(std::string_view data);                          // raw 32 bytes
std::string HmacSha256(std::string_view key, std::string_view data);  // raw 32 bytes
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace bff
