// Shared HTTP value types: case-insensitive headers, query and form decoding.
#include "common/http_message.h"

#include <gtest/gtest.h>

namespace bff {
namespace {

TEST(HeadersTest, CaseInsensitiveLookupAndReplace) {
  Headers h;
  h.Add("Content-Type", "text/plain");
  EXPECT_EQ(h.Get("content-type"), "text/plain");
  h.Set("CONTENT-TYPE", "application/json");
  EXPECT_EQ(h.Get("Content-Type"), "application/json");
  EXPECT_EQ(h.entries().size(), 1u);
  h.Remove("content-TYPE");
  EXPECT_FALSE(h.Has("Content-Type"));
  EXPECT_EQ(h.Get("Content-Type"), "");
}

TEST(HttpRequestTest, QueryParamsAreDecoded) {
  HttpRequest r;
  r.query = "limit=10&cursor=a%2Fb%3D&name=two+words&flag";
  EXPECT_EQ(r.QueryParam("limit"), "10");
  EXPECT_EQ(r.QueryParam("cursor"), "a/b=");
  EXPECT_EQ(r.QueryParam("name"), "two words");
  EXPECT_TRUE(r.HasQueryParam("flag"));
  EXPECT_FALSE(r.HasQueryParam("missing"));
  EXPECT_EQ(r.Target(), "?limit=10&cursor=a%2Fb%3D&name=two+words&flag");
}

TEST(FormTest, ParsesAndKeepsFirstDuplicate) {
  auto f = ParseForm("grant_type=password&username=alice&password=p%26ss&username=mallory");
  ASSERT_EQ(f.size(), 3u);
  EXPECT_EQ(f[1].second, "alice");
  EXPECT_EQ(f[2].second, "p&ss");
}

TEST(PercentTest, EncodeDecodeRoundTrip) {
  std::string s = "a b/c?d=e&f%";
  EXPECT_EQ(PercentDecode(PercentEncode(s)), s);
  EXPECT_EQ(PercentDecode("%zz%4"), "%zz%4");  // malformed escapes stay as they are
}

}  // namespace
}  // namespace bff
