// Tests for edge input checks: ids, JSON object bodies (size, media type, syntax, depth) and field accessors.
#include "security/input_validation.h"

#include <limits>

#include <gtest/gtest.h>

namespace bff {
namespace {

using nlohmann::json;

HttpRequest JsonRequest(std::string body, std::string content_type = "application/json") {
  HttpRequest req;
  req.method = "POST";
  req.path = "/mobile/v1/cart/items";
  if (!content_type.empty()) req.headers.Set("Content-Type", std::move(content_type));
  req.body = std::move(body);
  return req;
}

std::string Nested(size_t depth) {
  std::string s;
  for (size_t i = 0; i < depth; ++i) s += "{\"a\":";
  s += "1";
  for (size_t i = 0; i < depth; ++i) s += "}";
  return s;
}

TEST(IdTest, AcceptsTheContractAlphabetUpTo64) {
  EXPECT_TRUE(IsValidId("SKU-1"));
  EXPECT_TRUE(IsValidId("a.b_c-D9"));
  EXPECT_TRUE(IsValidId(".a")) << "dots are fine beside other characters";
  EXPECT_TRUE(IsValidId(std::string(64, 'x')));
  EXPECT_TRUE(CheckId("shelf-1", "shelf_id").ok());
}

TEST(IdTest, RejectsEmptyLongAndForeignCharacters) {
  for (std::string_view bad : {std::string_view(""), std::string_view("a/b"), std::string_view("../etc"),
                               std::string_view("a b"), std::string_view("a%2Fb"), std::string_view("caf\xc3\xa9"),
                               std::string_view("a\0b", 3), std::string_view("a?b"), std::string_view("a\nb"),
                               std::string_view("."), std::string_view(".."), std::string_view("...")}) {
    EXPECT_FALSE(IsValidId(bad)) << bad;
  }
  const std::string long_id(65, 'x');
  EXPECT_FALSE(IsValidId(long_id));
  Status s = CheckId(long_id, "sku");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("sku"), std::string::npos) << s.message();
  EXPECT_EQ(s.message().find(long_id), std::string::npos) << "the rejected value is not echoed";
}

TEST(JsonBodyTest, ParsesAnObject) {
  auto doc = ParseJsonObjectBody(JsonRequest(R"({"sku":"SKU-1","qty":2})"));
  ASSERT_TRUE(doc.ok()) << doc.status().ToString();
  EXPECT_EQ((*doc)["sku"], "SKU-1");
  EXPECT_EQ((*doc)["qty"], 2);
}

TEST(JsonBodyTest, TooLargeIsPayloadTooLarge) {
  std::string body = R"({"pad":")" + std::string(kDefaultMaxBodyBytes, 'x') + "\"}";
  auto doc = ParseJsonObjectBody(JsonRequest(body));
  ASSERT_FALSE(doc.ok());
  EXPECT_EQ(doc.status().code(), StatusCode::kPayloadTooLarge);

  std::string exact = R"({"p":")" + std::string(100 - 8, 'x') + "\"}";
  ASSERT_EQ(exact.size(), 100u);
  EXPECT_TRUE(ParseJsonObjectBody(JsonRequest(exact), 100).ok());
  EXPECT_EQ(ParseJsonObjectBody(JsonRequest(exact), 99).status().code(), StatusCode::kPayloadTooLarge);
}

TEST(JsonBodyTest, ContentTypeMustBeJson) {
  for (const char* ok : {"application/json", "application/json; charset=utf-8", "Application/JSON; Charset=UTF-8",
                         "application/json;charset=\"utf-8\"", "application/json ; charset=utf-8"}) {
    EXPECT_TRUE(ParseJsonObjectBody(JsonRequest("{}", ok)).ok()) << ok;
  }
  for (const char* bad : {"", "text/plain", "application/x-www-form-urlencoded", "text/json", "application/jsonx",
                          "application/json-patch+json", "application/json; charset=latin1", "application/json; junk",
                          "multipart/form-data; boundary=x"}) {
    auto doc = ParseJsonObjectBody(JsonRequest("{}", bad));
    ASSERT_FALSE(doc.ok()) << bad;
    EXPECT_EQ(doc.status().code(), StatusCode::kUnsupportedMediaType) << bad;
  }
}

TEST(JsonBodyTest, MalformedJsonIsInvalidArgument) {
  for (const char* bad : {"", "{", "{\"a\":}", "{'a':1}", "{\"a\":1,}", "{\"a\":1} trailing", "\xff",
                          "{\"a\":\"\xc3\x28\"}", "nul", "{\"a\":NaN}"}) {
    auto doc = ParseJsonObjectBody(JsonRequest(bad));
    ASSERT_FALSE(doc.ok()) << bad;
    EXPECT_EQ(doc.status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST(JsonBodyTest, NestingIsLimitedTo16) {
  EXPECT_TRUE(ParseJsonObjectBody(JsonRequest(Nested(16))).ok());
  auto doc = ParseJsonObjectBody(JsonRequest(Nested(17)));
  ASSERT_FALSE(doc.ok());
  EXPECT_EQ(doc.status().code(), StatusCode::kInvalidArgument);

  // Arrays count as levels too, and a deep part anywhere in the body is enough to refuse it.
  std::string arrays = "{\"a\":" + std::string(16, '[') + std::string(16, ']') + "}";
  EXPECT_EQ(ParseJsonObjectBody(JsonRequest(arrays)).status().code(), StatusCode::kInvalidArgument);
  std::string arrays_ok = "{\"a\":" + std::string(15, '[') + std::string(15, ']') + "}";
  EXPECT_TRUE(ParseJsonObjectBody(JsonRequest(arrays_ok)).ok());

  // Far deeper than any stack would survive with a recursive parser: still a clean refusal.
  std::string hostile = "{\"a\":" + std::string(kDefaultMaxBodyBytes - 10, '[');
  EXPECT_EQ(ParseJsonObjectBody(JsonRequest(hostile)).status().code(), StatusCode::kInvalidArgument);
}

TEST(JsonBodyTest, TopLevelMustBeAnObject) {
  for (const char* bad : {"[]", "[{\"a\":1}]", "1", "\"s\"", "null", "true"}) {
    auto doc = ParseJsonObjectBody(JsonRequest(bad));
    ASSERT_FALSE(doc.ok()) << bad;
    EXPECT_EQ(doc.status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST(FieldTest, RequireString) {
  json obj = {{"name", "Alice"}, {"n", 1}, {"b", true}, {"nul", nullptr}, {"arr", json::array()}, {"empty", ""}};
  auto name = RequireString(obj, "name");
  ASSERT_TRUE(name.ok());
  EXPECT_EQ(*name, "Alice");
  EXPECT_TRUE(RequireString(obj, "empty").ok());
  EXPECT_TRUE(RequireString(obj, "name", 5).ok());
  for (const char* field : {"n", "b", "nul", "arr", "missing"}) {
    auto r = RequireString(obj, field);
    ASSERT_FALSE(r.ok()) << field;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(field), std::string::npos) << r.status().message();
  }
  auto long_name = RequireString(obj, "name", 4);
  ASSERT_FALSE(long_name.ok());
  EXPECT_NE(long_name.status().message().find("name"), std::string::npos);
  EXPECT_FALSE(RequireString(json::array({"name"}), "name").ok()) << "not an object";
}

TEST(FieldTest, RequireId) {
  json obj = {{"sku", "SKU-1"}, {"bad", "SKU/1"}, {"long", std::string(65, 'x')}, {"num", 7}};
  auto sku = RequireId(obj, "sku");
  ASSERT_TRUE(sku.ok());
  EXPECT_EQ(*sku, "SKU-1");
  for (const char* field : {"bad", "long", "num", "missing"}) {
    auto r = RequireId(obj, field);
    ASSERT_FALSE(r.ok()) << field;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(field), std::string::npos) << r.status().message();
  }
}

TEST(FieldTest, RequireIntAcceptsOnlyIntegersInRange) {
  auto doc = ParseJsonObjectBody(JsonRequest(
      R"({"one":1,"max":99,"zero":0,"big":100,"neg":-1,"float":1.5,"round":2.0,"exp":1e1,"str":"2","bool":true,)"
      R"("nul":null,"huge":18446744073709551615})"));
  ASSERT_TRUE(doc.ok()) << doc.status().ToString();
  EXPECT_EQ(*RequireInt(*doc, "one", 1, 99), 1);
  EXPECT_EQ(*RequireInt(*doc, "max", 1, 99), 99);
  for (const char* field : {"zero", "big", "neg", "float", "round", "exp", "str", "bool", "nul", "huge"}) {
    auto r = RequireInt(*doc, field, 1, 99);
    ASSERT_FALSE(r.ok()) << field;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(r.status().message(), std::string(field) + " must be an integer between 1 and 99");
  }
  auto missing = RequireInt(*doc, "qty", 1, 99);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("qty"), std::string::npos);

  json wide = {{"n", std::numeric_limits<int64_t>::min()}, {"m", std::numeric_limits<int64_t>::max()}};
  EXPECT_EQ(*RequireInt(wide, "n", std::numeric_limits<int64_t>::min(), 0), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(*RequireInt(wide, "m", 0, std::numeric_limits<int64_t>::max()), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(*RequireInt(json{{"qty", 3}}, "qty", 1, 99), 3);
}

TEST(FieldTest, QuantityMessageNamesTheField) {
  auto r = RequireInt(json{{"qty", 0}}, "qty", 1, 99);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "qty must be an integer between 1 and 99");
}

}  // namespace
}  // namespace bff
