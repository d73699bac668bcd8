// PBKDF2-HMAC-SHA256 password hashes in a self-describing text form.
#include "security/password.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <charconv>
#include <climits>
#include <cstdlib>
#include <vector>

#include "common/crypto.h"
#include "security/compact_jws.h"

namespace bff {
namespace {

constexpr std::string_view kScheme = "pbkdf2-sha256";
constexpr size_t kSaltBytes = 16;
constexpr size_t kHashBytes = 32;
// Bounds on what an encoded hash may ask for, so a corrupt record cannot stall a login thread.
constexpr int kMaxIterations = 10'000'000;
constexpr size_t kMinHashBytes = 16;
constexpr size_t kMaxHashBytes = 64;

bool Derive(std::string_view password, std::string_view salt, int iterations, size_t out_len, std::string* out) {
  if (password.size() > static_cast<size_t>(INT_MAX)) return false;
  out->assign(out_len, '\0');
  return PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                           reinterpret_cast<const unsigned char*>(salt.data()), static_cast<int>(salt.size()),
                           iterations, EVP_sha256(), static_cast<int>(out_len),
                           reinterpret_cast<unsigned char*>(out->data())) == 1;
}

std::vector<std::string_view> SplitDollar(std::string_view s) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t pos = s.find('$', start);
    if (pos == std::string_view::npos) {
      parts.push_back(s.substr(start));
      return parts;
    }
    parts.push_back(s.substr(start, pos - start));
    start = pos + 1;
  }
}

}  // namespace

std::string HashPassword(std::string_view password, int iterations) {
  if (iterations < 1) iterations = 1;
  if (iterations > kMaxIterations) iterations = kMaxIterations;  // VerifyPassword would refuse more
  std::string salt = RandomBytes(kSaltBytes);
  std::string hash;
  if (!Derive(password, salt, iterations, kHashBytes, &hash)) std::abort();  // only on allocation failure
  std::string out;
  out.append(kScheme).append("$").append(std::to_string(iterations)).append("$");
  out.append(Base64UrlEncode(salt)).append("$").append(Base64UrlEncode(hash));
  OPENSSL_cleanse(hash.data(), hash.size());
  return out;
}

bool VerifyPassword(std::string_view password, std::string_view encoded) {
  std::vector<std::string_view> parts = SplitDollar(encoded);
  if (parts.size() != 4 || parts[0] != kScheme) return false;

  int iterations = 0;
  std::string_view digits = parts[1];
  if (digits.empty() || digits[0] == '0') return false;  // one spelling per number
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), iterations);
  if (ec != std::errc() || end != digits.data() + digits.size()) return false;
  if (iterations < 1 || iterations > kMaxIterations) return false;

  std::string salt, expected;
  if (!DecodeBase64UrlStrict(parts[2], &salt) || salt.empty()) return false;
  if (!DecodeBase64UrlStrict(parts[3], &expected)) return false;
  if (expected.size() < kMinHashBytes || expected.size() > kMaxHashBytes) return false;

  std::string actual;
  if (!Derive(password, salt, iterations, expected.size(), &actual)) return false;
  bool match = ConstantTimeEquals(actual, expected);
  OPENSSL_cleanse(actual.data(), actual.size());
  return match;
}

}  // namespace bff
