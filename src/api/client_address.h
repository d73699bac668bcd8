// Who an HTTP request comes from: the peer's address, or the client a trusted proxy names in
// X-Forwarded-For. What per-client rate limits key on.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/http_message.h"
#include "common/ip_network.h"

namespace bff {

// The client's address. With no trusted proxy, the peer. When the peer is a trusted proxy, the
// X-Forwarded-For list is read from its right end (the hop nearest us) and the first address that
// is not a trusted proxy is the client; an entry that is not an address ends the walk at the proxy
// that passed it on, so a client cannot pick its own identity by writing a header.
std::string ClientAddress(const HttpRequest& req, const std::vector<IpNetwork>& trusted_proxies);

// The rate-limit key of an address: IPv4 as it is, IPv6 by its /64 (one subscriber's network: a
// host can pick any address inside it). Empty for text that is not an address.
std::string ClientKey(std::string_view address);

}  // namespace bff
