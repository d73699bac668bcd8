// IP address and address-block parsing over inet_pton, and prefix matching.
#include "common/ip_network.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>
#include <string>

namespace bff {

bool ParseIpAddress(std::string_view text, bool& v6, std::array<uint8_t, 16>& out) {
  constexpr size_t kMaxAddressText = INET6_ADDRSTRLEN;
  if (text.empty() || text.size() >= kMaxAddressText) return false;
  char buf[kMaxAddressText];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  out.fill(0);
  if (::inet_pton(AF_INET, buf, out.data()) == 1) {
    v6 = false;
    return true;
  }
  if (::inet_pton(AF_INET6, buf, out.data()) == 1) {
    // An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is the IPv4 client it maps.
    static constexpr uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(out.data(), kMappedPrefix, sizeof kMappedPrefix) == 0) {
      std::memmove(out.data(), out.data() + 12, 4);
      std::memset(out.data() + 4, 0, 12);
      v6 = false;
      return true;
    }
    v6 = true;
    return true;
  }
  return false;
}

StatusOr<IpNetwork> IpNetwork::Parse(std::string_view text) {
  IpNetwork n;
  std::string_view address = text;
  int bits = -1;
  if (size_t slash = text.find('/'); slash != std::string_view::npos) {
    address = text.substr(0, slash);
    std::string_view b = text.substr(slash + 1);
    auto [end, ec] = std::from_chars(b.data(), b.data() + b.size(), bits);
    if (ec != std::errc() || end != b.data() + b.size()) return InvalidArgument("not an address block: " + std::string(text));
  }
  if (!ParseIpAddress(address, n.v6_, n.bytes_)) return InvalidArgument("not an IP address: " + std::string(text));
  const int max_bits = n.v6_ ? 128 : 32;
  if (bits < 0) bits = max_bits;
  if (bits > max_bits) return InvalidArgument("prefix longer than the address: " + std::string(text));
  n.prefix_bits_ = bits;
  return n;
}

bool IpNetwork::Contains(std::string_view address) const {
  bool v6 = false;
  std::array<uint8_t, 16> a{};
  if (!ParseIpAddress(address, v6, a) || v6 != v6_) return false;
  int bits = prefix_bits_;
  for (size_t i = 0; bits > 0; ++i, bits -= 8) {
    const uint8_t mask = bits >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - bits));
    if ((a[i] & mask) != (bytes_[i] & mask)) return false;
  }
  return true;
}

}  // namespace bff
