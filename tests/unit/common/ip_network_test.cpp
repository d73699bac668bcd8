// Address blocks: what they hold, and the text they refuse.
#include "common/ip_network.h"

#include <gtest/gtest.h>

namespace bff {
namespace {

TEST(IpNetworkTest, BlocksHoldTheirAddressesOnly) {
  auto lan = IpNetwork::Parse("10.0.0.0/8");
  ASSERT_TRUE(lan.ok());
  EXPECT_TRUE(lan->Contains("10.1.2.3"));
  EXPECT_FALSE(lan->Contains("11.0.0.1"));
  EXPECT_FALSE(lan->Contains("::ffff:11.0.0.1"));
  EXPECT_TRUE(lan->Contains("::ffff:10.9.9.9"));  // IPv4-mapped is the IPv4 address
  EXPECT_FALSE(lan->Contains("not an address"));

  auto one = IpNetwork::Parse("192.168.1.7");
  ASSERT_TRUE(one.ok());
  EXPECT_TRUE(one->Contains("192.168.1.7"));
  EXPECT_FALSE(one->Contains("192.168.1.8"));

  auto v6 = IpNetwork::Parse("fd00::/8");
  ASSERT_TRUE(v6.ok());
  EXPECT_TRUE(v6->Contains("fd12:3456::1"));
  EXPECT_FALSE(v6->Contains("fe80::1"));
  EXPECT_FALSE(v6->Contains("10.0.0.1"));

  auto odd = IpNetwork::Parse("10.0.0.0/12");
  ASSERT_TRUE(odd.ok());
  EXPECT_TRUE(odd->Contains("10.15.255.255"));
  EXPECT_FALSE(odd->Contains("10.16.0.0"));
}

TEST(IpNetworkTest, NonsenseIsRefused) {
  for (const char* bad : {"", "10.0.0.0/33", "::/129", "10.0.0.0/x", "10.0.0.0/", "host.example", "10.0.0.256", "010.0.0.1"}) {
    auto n = IpNetwork::Parse(bad);
    EXPECT_FALSE(n.ok()) << bad;
  }
}

}  // namespace
}  // namespace bff
