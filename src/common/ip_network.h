// IP addresses and address blocks as text: parsing, and whether a block holds an address.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "common/status.h"

namespace bff {

// An IPv4 or IPv6 address as 16 bytes (IPv4 in the first four). An IPv4-mapped IPv6 address
// (::ffff:a.b.c.d) is read as the IPv4 address it maps. False when `text` is not an address.
bool ParseIpAddress(std::string_view text, bool& v6, std::array<uint8_t, 16>& out);

// An address block, "10.0.0.0/8", "fd00::/8", or one address ("127.0.0.1" is 127.0.0.1/32).
class IpNetwork {
 public:
  static StatusOr<IpNetwork> Parse(std::string_view text);
  bool Contains(std::string_view address) const;

 private:
  bool v6_ = false;
  std::array<uint8_t, 16> bytes_{};
  int prefix_bits_ = 0;
};

}  // namespace bff
