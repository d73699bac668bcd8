// Known answers for the digests and encodings every key, token and credential check relies on.
#include "common/crypto.h"

#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace bff {
namespace {

TEST(CryptoTest, Sha256MatchesTheStandardVectors) {
  EXPECT_EQ(HexEncode(Sha256("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(HexEncode(Sha256("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(CryptoTest, Sha256FromManyThreadsAgrees) {
  std::vector<std::thread> threads;
  std::vector<std::string> out(8);
  for (size_t i = 0; i < out.size(); ++i) {
    threads.emplace_back([&out, i] {
      for (int n = 0; n < 1000; ++n) out[i] = HexEncode(Sha256("device key"));
    });
  }
  for (auto& t : threads) t.join();
  for (const std::string& h : out) EXPECT_EQ(h, out[0]);
  EXPECT_EQ(out[0].size(), 64u);
}

TEST(CryptoTest, HmacSha256MatchesRfc4231) {
  // RFC 4231 test case 2.
  EXPECT_EQ(HexEncode(HmacSha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(CryptoTest, ConstantTimeEqualsComparesWholeStrings) {
  EXPECT_TRUE(ConstantTimeEquals("same", "same"));
  EXPECT_FALSE(ConstantTimeEquals("same", "sane"));
  EXPECT_FALSE(ConstantTimeEquals("same", "same!"));
}

}  // namespace
}  // namespace bff
