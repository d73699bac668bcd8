// Internal credential checks, request logging hygiene, and hostile or malformed input.
#include <mutex>

#include "common/log.h"
#include "domain/seed.h"
#include "domain_harness.h"

namespace bff::testing {
namespace {

TEST(Auth, MissingOrBadCredentialIs401) {
  DomainHarness h;
  auto r = h.Send(MakeRequest("GET", "/catalog/v1/products/SKU-10001"), /*authenticate=*/false);
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(ErrorCode(r), "unauthenticated");

  CredentialMinter stranger(std::string(64, 'a'));
  const std::vector<std::string> bad = {
      "Bearer " + stranger.Mint("", "bffd"),  // signed with another secret
      "Bearer not-a-jwt",
      "Bearer ",
      "Basic dXNlcjpwYXNz",
      h.Credential(),  // no scheme
      "Bearer " + h.Credential() + "x",
  };
  for (const auto& value : bad) {
    auto req = MakeRequest("GET", "/catalog/v1/products/SKU-10001");
    req.headers.Set("Authorization", value);
    EXPECT_EQ(h.Send(std::move(req), false).status, 401) << value;
  }
  auto req = MakeRequest("GET", "/catalog/v1/products/SKU-10001");
  req.headers.Set("authorization", "bearer " + h.Credential());
  EXPECT_EQ(h.Send(std::move(req), false).status, 200);
  // Every service checks it.
  for (const char* path : {"/inventory/v1/stock/SKU-10001", "/reviews/v1/products/SKU-10001/reviews",
                           "/recommendations/v1/products/SKU-10001", "/promotions/v1/products/SKU-10001",
                           "/cart/v1/carts/u-1001", "/identity/v1/jwks"}) {
    EXPECT_EQ(h.Send(MakeRequest("GET", path), false).status, 401) << path;
  }
  EXPECT_EQ(h.Send(MakeRequest("POST", "/analytics/v1/events", "{}"), false).status, 401);
}

TEST(Auth, AllowUnauthenticated) {
  DomainHarness h([](DomainOptions& o) { o.allow_unauthenticated = true; });
  EXPECT_EQ(h.Send(MakeRequest("GET", "/catalog/v1/products/SKU-10001"), false).status, 200);
  EXPECT_EQ(h.Send(MakeRequest("GET", "/cart/v1/carts/u-1001"), false).status, 200);
  // A credential that is present is still checked, and its subject still scopes carts.
  auto req = MakeRequest("GET", "/catalog/v1/products/SKU-10001");
  req.headers.Set("Authorization", "Bearer junk");
  EXPECT_EQ(h.Send(std::move(req), false).status, 401);
  EXPECT_EQ(h.Get("/cart/v1/carts/u-1001", "u-1002").status, 403);
}

TEST(Logging, DebugLinesCarryTheTraceIdAndNoSecrets) {
  DomainHarness h;
  std::mutex mu;
  std::vector<std::string> lines;
  log::SetLevel(log::Level::kDebug);
  log::SetSink([&](std::string_view line) {
    std::lock_guard<std::mutex> lock(mu);
    lines.emplace_back(line);
  });
  const std::string credential = h.Credential("u-1001");
  const std::string trace = "4bf92f3577b34da6a3ce929d0e0e4736";
  auto req = MakeRequest("POST", "/identity/v1/verify-password", R"({"username":"alice","password":"demo-alice"})");
  req.headers.Set("traceparent", "00-" + trace + "-00f067aa0ba902b7-01");
  req.headers.Set("Authorization", "Bearer " + credential);
  EXPECT_EQ(h.Send(std::move(req), false).status, 200);
  log::SetSink(nullptr);
  log::SetLevel(log::Level::kInfo);
  bool found = false;
  for (const auto& line : lines) {
    EXPECT_EQ(line.find(credential), std::string::npos) << line;
    EXPECT_EQ(line.find("demo-alice"), std::string::npos) << line;
    if (line.find(trace) != std::string::npos && line.find("verify-password") != std::string::npos) found = true;
  }
  EXPECT_TRUE(found);
}

// Odd input of every kind: each request is answered exactly once, with a JSON error or success.
TEST(Robustness, MalformedInputNeverCrashes) {
  DomainHarness h;
  const std::vector<std::string> bodies = {
      "",
      "null",
      "[]",
      "{}",
      "{",
      "}",
      "\"str\"",
      "12",
      "{\"skus\": null}",
      "{\"skus\": [null, {}, [], 1e400]}",
      "{\"skus\": [\"\\u0000\"]}",
      "{\"sku\": {\"a\": 1}, \"qty\": [1]}",
      "{\"sku\": \"SKU-10001\", \"qty\": 1e308}",
      "{\"sku\": \"SKU-10001\", \"qty\": -9223372036854775809}",
      "{\"sku\": \"SKU-10001\", \"qty\": 18446744073709551616}",
      "{\"device_id\": \"d\", \"shelf_id\": \"shelf-01-01\", \"seq\": 9223372036854775807, \"ts\": 1, "
      "\"readings\": [{\"slot\": 9223372036854775807, \"qty\": 1}]}",
      "{\"device_id\": \"d\", \"shelf_id\": \"shelf-01-01\", \"seq\": 1, \"ts\": 1, \"readings\": {}}",
      "{\"type\": \"\\ud800\", \"at\": \"2026-01-05T10:00:00Z\"}",
      "{\"username\": [], \"password\": {}}",
      std::string(300, '[') + std::string(300, ']'),
      std::string(100000, '{'),
      "{\"a\":\"" + std::string(300 * 1024, 'x') + "\"}",
      std::string("{\"sku\": \"\xff\xfe\", \"qty\": 1}"),
      "grant_type=password&username=%ZZ&password=%",
      "grant_type=refresh_token&refresh_token=" + std::string(5000, 'r'),
      "\x00\x01\x02",
  };
  const std::vector<std::pair<std::string, std::string>> targets = {
      {"POST", "/catalog/v1/products:batchGet"}, {"POST", "/cart/v1/carts/u-1001/items"},
      {"POST", "/inventory/v1/shelf-readings"},  {"POST", "/analytics/v1/events"},
      {"POST", "/identity/v1/verify-password"},  {"POST", "/identity/v1/token"},
      {"PUT", "/admin/v1/faults/catalog"},
  };
  int answered = 0;
  for (const auto& [method, path] : targets) {
    for (const auto& body : bodies) {
      for (const char* type : {"application/json", "application/x-www-form-urlencoded", "text/plain"}) {
        auto r = h.Send(MakeRequest(method, path, body, type));
        ++answered;
        EXPECT_GE(r.status, 200);
        EXPECT_LT(r.status, 600);
        EXPECT_NE(r.status, 500) << method << " " << path << " " << body.substr(0, 80);
        if (r.status >= 400) {
          EXPECT_FALSE(BodyJson(r).is_discarded()) << r.body;
        }
      }
    }
  }
  // Odd paths, methods, queries and headers.
  const std::vector<std::string> paths = {
      "",
      "/",
      "//",
      "/catalog",
      "/catalog/",
      "/catalog/v1/products/",
      "/catalog/v1/products//SKU-10001",
      "/catalog/v1/products/SKU-10001/",
      "/catalog/v1/products/..",
      "/catalog/v1/products/%00",
      "/catalog/v1/products/" + std::string(5000, 'A'),
      "/inventory/v1/shelves/\xff",
      "/admin/v1/faults/",
      "/admin/v1/faults//catalog",
      "/admin/v1/faultsX",
      "relative/path",
      "/reviews/v1/products/SKU-10001/reviews/x",
  };
  for (const auto& path : paths) {
    for (const char* method : {"GET", "POST", "PUT", "DELETE", "PATCH", "", "G\nET"}) {
      HttpRequest req;
      req.method = method;
      req.path = path;
      req.query = "limit=%FF&cursor=\xff&limit=2";
      req.headers.Set("X-Request-Budget-Ms", "12abc");
      auto r = h.Send(std::move(req));
      ++answered;
      EXPECT_GE(r.status, 200);
      EXPECT_NE(r.status, 500) << method << " " << path;
    }
  }
  // Odd budget headers.
  for (const char* budget : {"", " ", "+5", "1e3", "-", "--1", "0x10", "99999999999999999999999"}) {
    auto req = MakeRequest("GET", "/catalog/v1/products/SKU-10001");
    req.headers.Set("X-Request-Budget-Ms", budget);
    auto r = h.Send(std::move(req));
    EXPECT_TRUE(r.status == 400 || r.status == 200 || r.status == 504) << budget << " -> " << r.status;
  }
  EXPECT_GT(answered, 500);
  // Still healthy and consistent afterwards.
  EXPECT_EQ(h.Get("/catalog/v1/products/SKU-10001").status, 200);
  EXPECT_TRUE(BodyJson(h.Get("/cart/v1/carts/u-1001"))["items"].empty());
}

}  // namespace
}  // namespace bff::testing
