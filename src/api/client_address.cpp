// Client addresses behind trusted proxies, and the keys rate limits use for them.
#include "api/client_address.h"

#include <arpa/inet.h>

#include <cstring>

namespace bff {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Splits every X-Forwarded-For value (a header may come several times) into its entries, in order.
std::vector<std::string_view> ForwardedFor(const HttpRequest& req) {
  std::vector<std::string_view> hops;
  for (const auto& [name, value] : req.headers) {
    if (!EqualsIgnoreCase(name, "X-Forwarded-For")) continue;
    std::string_view rest = value;
    while (!rest.empty()) {
      size_t comma = rest.find(',');
      std::string_view hop = Trim(rest.substr(0, comma));
      if (!hop.empty()) hops.push_back(hop);
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  return hops;
}

bool Trusted(std::string_view address, const std::vector<IpNetwork>& trusted) {
  for (const IpNetwork& n : trusted) {
    if (n.Contains(address)) return true;
  }
  return false;
}

}  // namespace

std::string ClientAddress(const HttpRequest& req, const std::vector<IpNetwork>& trusted_proxies) {
  if (trusted_proxies.empty() || !Trusted(req.peer, trusted_proxies)) return req.peer;
  std::vector<std::string_view> hops = ForwardedFor(req);
  std::string_view client = req.peer;
  for (auto it = hops.rbegin(); it != hops.rend(); ++it) {
    bool v6 = false;
    std::array<uint8_t, 16> ignored{};
    if (!ParseIpAddress(*it, v6, ignored)) break;
    client = *it;
    if (!Trusted(*it, trusted_proxies)) break;
  }
  return std::string(client);
}

std::string ClientKey(std::string_view address) {
  bool v6 = false;
  std::array<uint8_t, 16> a{};
  if (!ParseIpAddress(address, v6, a)) return {};
  char text[INET6_ADDRSTRLEN];
  if (!v6) {
    // Dotted-quad text has one spelling (inet_pton refuses leading zeros): it is its own key.
    if (address.find(':') == std::string_view::npos) return std::string(address);
    ::inet_ntop(AF_INET, a.data(), text, sizeof text);
    return text;
  }
  constexpr size_t kSubscriberPrefixBytes = 8;  // a /64
  std::memset(a.data() + kSubscriberPrefixBytes, 0, a.size() - kSubscriberPrefixBytes);
  ::inet_ntop(AF_INET6, a.data(), text, sizeof text);
  return std::string(text) + "/64";
}

}  // namespace bff
