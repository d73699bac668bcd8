// Client addresses: the peer, or what trusted proxies say in X-Forwarded-For; rate-limit keys.
#include "api/client_address.h"

#include <gtest/gtest.h>

namespace bff {
namespace {

std::vector<IpNetwork> Networks(std::initializer_list<const char*> texts) {
  std::vector<IpNetwork> out;
  for (const char* t : texts) {
    auto n = IpNetwork::Parse(t);
    EXPECT_TRUE(n.ok()) << t;
    if (n.ok()) out.push_back(*n);
  }
  return out;
}

HttpRequest From(const char* peer, std::initializer_list<const char*> forwarded_for = {}) {
  HttpRequest r;
  r.peer = peer;
  for (const char* v : forwarded_for) r.headers.Add("X-Forwarded-For", v);
  return r;
}

TEST(ClientAddressTest, WithoutTrustedProxiesThePeerIsTheClientWhateverTheHeaderSays) {
  EXPECT_EQ(ClientAddress(From("203.0.113.9", {"198.51.100.1"}), {}), "203.0.113.9");
  // A peer that is not a trusted proxy cannot name someone else either.
  EXPECT_EQ(ClientAddress(From("203.0.113.9", {"198.51.100.1"}), Networks({"10.0.0.0/8"})), "203.0.113.9");
}

TEST(ClientAddressTest, TheFirstUntrustedHopFromTheRightIsTheClient) {
  auto trusted = Networks({"10.0.0.0/8", "127.0.0.1"});
  // client -> 10.0.0.5 (edge) -> 127.0.0.1 (local proxy) -> bffd
  EXPECT_EQ(ClientAddress(From("127.0.0.1", {"198.51.100.7, 10.0.0.5"}), trusted), "198.51.100.7");
  // Whatever the client wrote at the left is ignored: the edge appended the real address.
  EXPECT_EQ(ClientAddress(From("127.0.0.1", {"6.6.6.6, 198.51.100.7, 10.0.0.5"}), trusted), "198.51.100.7");
  // Headers given several times read as one list, in order.
  EXPECT_EQ(ClientAddress(From("127.0.0.1", {"6.6.6.6", "198.51.100.7"}), trusted), "198.51.100.7");
  // Only trusted hops: the leftmost is as close to the client as we can know.
  EXPECT_EQ(ClientAddress(From("127.0.0.1", {"10.0.0.9, 10.0.0.5"}), trusted), "10.0.0.9");
  // No header: the proxy itself.
  EXPECT_EQ(ClientAddress(From("127.0.0.1"), trusted), "127.0.0.1");
}

TEST(ClientAddressTest, AnEntryThatIsNotAnAddressStopsAtTheProxyThatPassedItOn) {
  auto trusted = Networks({"10.0.0.0/8"});
  EXPECT_EQ(ClientAddress(From("10.0.0.1", {"198.51.100.7, unknown"}), trusted), "10.0.0.1");
  EXPECT_EQ(ClientAddress(From("10.0.0.1", {"garbage, 10.0.0.2"}), trusted), "10.0.0.2");
}

TEST(ClientKeyTest, Ipv4IsItselfAndIpv6IsItsSlash64) {
  EXPECT_EQ(ClientKey("198.51.100.7"), "198.51.100.7");
  EXPECT_EQ(ClientKey("::ffff:198.51.100.7"), "198.51.100.7");
  EXPECT_EQ(ClientKey("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
  EXPECT_EQ(ClientKey("2001:db8:1:2:bbbb::99"), "2001:db8:1:2::/64");
  EXPECT_NE(ClientKey("2001:db8:1:3::1"), ClientKey("2001:db8:1:2::1"));
  EXPECT_EQ(ClientKey(""), "");
  EXPECT_EQ(ClientKey("1..2"), "");
}

}  // namespace
}  // namespace bff
