// mosquitto 2.0 password_file hashes ("$7$101$<salt>$<hash>", PBKDF2-HMAC-SHA512), made without the broker.
#pragma once

#include <string>
#include <string_view>

namespace bff {

std::string MosquittoPasswordHash(std::string_view password);

}  // namespace bff
