// Tests for PBKDF2 password hashing: round trip, wrong passwords and malformed encodings.
#include "security/password.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/crypto.h"

namespace bff {
namespace {

// Few iterations keep the suite fast; the algorithm is the same.
constexpr int kTestIterations = 1000;

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> parts;
  size_t start = 0, pos;
  while ((pos = s.find('$', start)) != std::string::npos) {
    parts.push_back(s.substr(start, pos - start));
    start = pos + 1;
  }
  parts.push_back(s.substr(start));
  return parts;
}

TEST(PasswordTest, CorrectPasswordVerifiesAndWrongOnesDoNot) {
  std::string encoded = HashPassword("correct horse battery staple", kTestIterations);
  EXPECT_TRUE(VerifyPassword("correct horse battery staple", encoded));
  EXPECT_FALSE(VerifyPassword("correct horse battery stapl", encoded));
  EXPECT_FALSE(VerifyPassword("Correct horse battery staple", encoded));
  EXPECT_FALSE(VerifyPassword("", encoded));
}

TEST(PasswordTest, EncodingNamesSchemeIterationsSaltAndHash) {
  std::string encoded = HashPassword("pw", kTestIterations);
  std::vector<std::string> parts = Split(encoded);
  ASSERT_EQ(parts.size(), 4u) << encoded;
  EXPECT_EQ(parts[0], "pbkdf2-sha256");
  EXPECT_EQ(parts[1], std::to_string(kTestIterations));
  std::string salt, hash;
  ASSERT_TRUE(Base64UrlDecode(parts[2], &salt));
  ASSERT_TRUE(Base64UrlDecode(parts[3], &hash));
  EXPECT_EQ(salt.size(), 16u);
  EXPECT_EQ(hash.size(), 32u);
}

TEST(PasswordTest, DefaultIterationCountIsUsed) {
  std::string encoded = HashPassword("pw");
  EXPECT_EQ(Split(encoded)[1], std::to_string(kDefaultPasswordIterations));
  EXPECT_TRUE(VerifyPassword("pw", encoded));
}

TEST(PasswordTest, SamePasswordGetsADifferentSaltEachTime) {
  std::string a = HashPassword("same", kTestIterations);
  std::string b = HashPassword("same", kTestIterations);
  EXPECT_NE(a, b);
  EXPECT_TRUE(VerifyPassword("same", a));
  EXPECT_TRUE(VerifyPassword("same", b));
}

TEST(PasswordTest, EmptyAndBinaryPasswordsRoundTrip) {
  EXPECT_TRUE(VerifyPassword("", HashPassword("", kTestIterations)));
  std::string binary("a\0b\xff", 4);
  std::string encoded = HashPassword(binary, kTestIterations);
  EXPECT_TRUE(VerifyPassword(binary, encoded));
  EXPECT_FALSE(VerifyPassword("a", encoded));  // the NUL does not truncate the password
}

TEST(PasswordTest, MalformedEncodingsAreFalse) {
  std::vector<std::string> parts = Split(HashPassword("pw", kTestIterations));
  auto join = [](const std::vector<std::string>& p) {
    std::string s;
    for (size_t i = 0; i < p.size(); ++i) s += (i ? "$" : "") + p[i];
    return s;
  };
  auto with = [&](size_t i, const std::string& v) {
    std::vector<std::string> p = parts;
    p[i] = v;
    return join(p);
  };
  const std::vector<std::string> bad = {
      "",
      "pw",
      "$$$",
      join({parts[0], parts[1], parts[2]}),
      join({parts[0], parts[1], parts[2], parts[3], "extra"}),
      with(0, "pbkdf2-sha1"),
      with(0, "PBKDF2-SHA256"),
      with(1, ""),
      with(1, "0"),
      with(1, "-1000"),
      with(1, "01000"),
      with(1, "1000x"),
      with(1, "99999999999999999999"),
      with(2, ""),
      with(2, "!!!!"),
      with(3, ""),
      with(3, parts[3] + "="),
      with(3, parts[3].substr(0, 10)),
      with(3, "%%%"),
  };
  for (const auto& encoded : bad) EXPECT_FALSE(VerifyPassword("pw", encoded)) << encoded;
  EXPECT_TRUE(VerifyPassword("pw", join(parts)));  // the control
}

}  // namespace
}  // namespace bff
