// PBKDF2-SHA512 hashes in mosquitto's password_file format.
#include "security/mosquitto_password.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstdlib>

namespace bff {
namespace {

constexpr int kIterations = 101;  // mosquitto_passwd's default
constexpr size_t kSaltBytes = 12;
constexpr size_t kHashBytes = 64;

std::string Base64(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

}  // namespace

std::string MosquittoPasswordHash(std::string_view password) {
  unsigned char salt[kSaltBytes];
  if (RAND_bytes(salt, sizeof(salt)) != 1) std::abort();  // no safe way on without a CSPRNG
  unsigned char hash[kHashBytes];
  if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), salt, sizeof(salt), kIterations, EVP_sha512(),
                        sizeof(hash), hash) != 1) {
    std::abort();
  }
  return "$7$" + std::to_string(kIterations) + "$" +
         Base64(std::string_view(reinterpret_cast<const char*>(salt), sizeof(salt))) + "$" +
         Base64(std::string_view(reinterpret_cast<const char*>(hash), sizeof(hash)));
}

}  // namespace bff
