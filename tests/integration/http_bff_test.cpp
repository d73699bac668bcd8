// Mobile and web BFFs over real HTTP, in front of a real bff-domain process (faults injected there),
// or the embedded domain. Outside clients (curl) for part of it.
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/crypto.h"
#include "domain/seed.h"
#include "security/jwt.h"
#include "support/processes.h"

namespace bff::testing {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

HttpRequest Req(const std::string& method, const std::string& target, const std::string& body = "",
                const std::string& content_type = "application/json") {
  HttpRequest r;
  r.method = method;
  size_t q = target.find('?');
  r.path = target.substr(0, q);
  if (q != std::string::npos) r.query = target.substr(q + 1);
  r.body = body;
  if (!body.empty() && !content_type.empty()) r.headers.Set("Content-Type", content_type);
  return r;
}

json Body(const HttpResponse& r) { return json::parse(r.body, nullptr, false); }

// Every answer carries trace context and Server-Timing; errors have the contract's shape.
void ExpectCommonHeaders(const HttpResponse& r) {
  EXPECT_FALSE(r.headers.Get("traceparent").empty());
  EXPECT_NE(r.headers.Get("Server-Timing").find("total;dur="), std::string_view::npos) << r.headers.Get("Server-Timing");
}

void ExpectError(const HttpResponse& r, int status, const std::string& code = "") {
  EXPECT_EQ(r.status, status) << r.body;
  json b = Body(r);
  ASSERT_TRUE(b.is_object()) << r.body;
  ASSERT_TRUE(b["error"].is_object()) << r.body;
  EXPECT_TRUE(b["error"]["code"].is_string());
  EXPECT_TRUE(b["error"]["message"].is_string());
  EXPECT_EQ(b["error"]["trace_id"].get<std::string>().size(), 32u);
  if (!code.empty()) {
    EXPECT_EQ(b["error"]["code"], code) << r.body;
  }
  ExpectCommonHeaders(r);
}

std::string WriteConfig(const std::string& dir, const std::string& toml) {
  std::string path = dir + "/bffd.toml";
  std::ofstream(path) << toml;
  return path;
}

// bffd in front of a separate bff-domain process that records what it receives.
class HttpBffTest : public ::testing::Test {
 protected:
  void Start(const std::string& extra_toml = "") {
    record_ = dir_.path() + "/received.jsonl";
    domain_ = std::make_unique<DomainProcess>(dir_.path(), std::vector<std::string>{"--record-requests", record_});
    ASSERT_TRUE(domain_->ready()) << domain_->process().Stderr();
    std::string cfg = WriteConfig(dir_.path(), "[iot]\ndemo_fleet = 0\n[web]\ncookie_secure = true\n"
                                               "reviews_timeout_ms = 150\n" + extra_toml);
    bffd_ = std::make_unique<BffdProcess>(dir_.path(), std::vector<std::string>{"--config", cfg, "--domain", domain_->base_url()});
    ASSERT_TRUE(bffd_->ready()) << bffd_->process().Stderr();
  }

  StatusOr<HttpResponse> Send(HttpRequest r) { return http_.Send(bffd_->http_url(), std::move(r)); }
  StatusOr<HttpResponse> Get(const std::string& target) { return Send(Req("GET", target)); }

  void Fault(const std::string& service, const std::string& body) {
    auto r = http_.Send(domain_->base_url(), Req("PUT", "/admin/v1/faults/" + service, body));
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(r->status, 200) << r->body;
  }
  void ClearFaults() {
    auto r = http_.Send(domain_->base_url(), Req("DELETE", "/admin/v1/faults"));
    ASSERT_TRUE(r.ok());
  }

  // Logs in as a demo user; returns {cookie header value, csrf token}.
  std::pair<std::string, std::string> Login(const std::string& user = "alice") {
    auto r = Send(Req("POST", "/web/v1/session", json{{"username", user}, {"password", "demo-" + user}}.dump()));
    EXPECT_TRUE(r.ok());
    EXPECT_EQ(r->status, 201) << r->body;
    std::string set_cookie(r->headers.Get("Set-Cookie"));
    std::string cookie = set_cookie.substr(0, set_cookie.find(';'));
    return {cookie, Body(*r)["csrf_token"].get<std::string>()};
  }

  std::string AccessToken(const std::string& user = "bob") {
    auto r = Send(Req("POST", "/mobile/v1/auth/token",
                      json{{"grant_type", "password"}, {"username", user}, {"password", "demo-" + user}}.dump()));
    EXPECT_TRUE(r.ok());
    EXPECT_EQ(r->status, 200) << r->body;
    return Body(*r).value("access_token", "");
  }

  std::vector<json> Received() {
    std::vector<json> out;
    std::istringstream in(ReadFile(record_));
    std::string line;
    while (std::getline(in, line)) out.push_back(json::parse(line));
    return out;
  }

  TempDir dir_;
  TestHttpClient http_;
  std::string record_;
  std::unique_ptr<DomainProcess> domain_;
  std::unique_ptr<BffdProcess> bffd_;
};

TEST_F(HttpBffTest, MobileProductIsExactlyFiveFieldsWithStrongEtagAndCaching) {
  Start();
  auto r = Get("/mobile/v1/products/SKU-10001");
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->status, 200) << r->body;
  ExpectCommonHeaders(*r);
  EXPECT_LT(r->body.size(), 300u);
  json p = Body(*r);
  std::set<std::string> keys;
  for (auto it = p.begin(); it != p.end(); ++it) keys.insert(it.key());
  EXPECT_EQ(keys, (std::set<std::string>{"id", "name", "price", "currency", "thumbnail_url"}));
  EXPECT_EQ(p["id"], "SKU-10001");
  EXPECT_TRUE(p["price"].is_string());
  // The bytes start with the fields in contract order.
  EXPECT_EQ(r->body.rfind("{\"id\":\"SKU-10001\",\"name\":", 0), 0u) << r->body;
  std::string etag(r->headers.Get("ETag"));
  ASSERT_GE(etag.size(), 3u);
  EXPECT_EQ(etag.front(), '"') << "strong ETag expected, got " << etag;
  EXPECT_EQ(r->headers.Get("Cache-Control"), "public, max-age=3600, stale-while-revalidate=600");

  HttpRequest cond = Req("GET", "/mobile/v1/products/SKU-10001");
  cond.headers.Set("If-None-Match", etag);
  auto nm = Send(cond);
  ASSERT_TRUE(nm.ok());
  EXPECT_EQ(nm->status, 304);
  EXPECT_TRUE(nm->body.empty());
  EXPECT_EQ(nm->headers.Get("ETag"), etag);
  EXPECT_NE(nm->headers.Get("Server-Timing").find("cache;desc=hit"), std::string_view::npos);

  // Served from the cache: the catalog was asked once for this sku.
  int catalog_reads = 0;
  for (auto& req : Received()) catalog_reads += req["path"] == "/catalog/v1/products/SKU-10001";
  EXPECT_EQ(catalog_reads, 1);

  auto missing = Get("/mobile/v1/products/SKU-99999");
  ASSERT_TRUE(missing.ok());
  ExpectError(*missing, 404, "not_found");
  auto bad = Get("/mobile/v1/products/bad%20sku");
  ASSERT_TRUE(bad.ok());
  ExpectError(*bad, 400);
}

TEST_F(HttpBffTest, MobileBatchIsOneDownstreamCall) {
  Start();
  auto r = Get("/mobile/v1/products?ids=SKU-10002,SKU-10003,NOPE-1,SKU-10002");
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->status, 200) << r->body;
  json b = Body(*r);
  ASSERT_EQ(b["products"].size(), 2u);
  EXPECT_EQ(b["products"][0]["id"], "SKU-10002");
  EXPECT_EQ(b["products"][1]["id"], "SKU-10003");
  EXPECT_EQ(b["missing"], json::array({"NOPE-1"}));
  int batch_calls = 0, single_calls = 0;
  for (auto& req : Received()) {
    batch_calls += req["path"] == "/catalog/v1/products:batchGet";
    single_calls += req["path"].get<std::string>().rfind("/catalog/v1/products/", 0) == 0;
  }
  EXPECT_EQ(batch_calls, 1);
  EXPECT_EQ(single_calls, 0);

  std::string many = "/mobile/v1/products?ids=";
  for (int i = 0; i < 51; ++i) many += (i ? "," : "") + SeedSku(i);
  auto over = Get(many);
  ASSERT_TRUE(over.ok());
  ExpectError(*over, 400);
  auto bad = Get("/mobile/v1/products?ids=SKU-10001,bad/id");
  ASSERT_TRUE(bad.ok());
  ExpectError(*bad, 400);
}

TEST_F(HttpBffTest, WebProductIsTheWholePageWithOneBatchLookupForRelated) {
  Start();
  auto r = Get("/web/v1/products/SKU-10001");
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->status, 200) << r->body;
  ExpectCommonHeaders(*r);
  json p = Body(*r);
  for (const char* f : {"id", "name", "description", "specs", "price", "currency", "images", "promotions", "stock", "reviews",
                        "related", "degraded"}) {
    EXPECT_TRUE(p.contains(f)) << f;
  }
  EXPECT_EQ(p["degraded"], json::array());
  EXPECT_TRUE(p["stock"]["in_stock"].is_boolean());
  EXPECT_TRUE(p["stock"]["available"].is_number_integer());
  EXPECT_LE(p["reviews"]["top"].size(), 3u);
  ASSERT_FALSE(p["related"].empty());
  for (auto& rel : p["related"]) {
    std::set<std::string> keys;
    for (auto it = rel.begin(); it != rel.end(); ++it) keys.insert(it.key());
    EXPECT_EQ(keys, (std::set<std::string>{"id", "name", "price", "thumbnail_url"}));
  }
  EXPECT_EQ(r->headers.Get("Cache-Control"), "private, no-cache");
  std::string etag(r->headers.Get("ETag"));
  EXPECT_FALSE(etag.empty());
  std::string timing(r->headers.Get("Server-Timing"));
  for (const char* part : {"catalog;dur=", "inventory;dur=", "reviews;dur=", "recommendations;dur=", "promotions;dur="}) {
    EXPECT_NE(timing.find(part), std::string::npos) << timing;
  }
  HttpRequest cond = Req("GET", "/web/v1/products/SKU-10001");
  cond.headers.Set("If-None-Match", etag);
  auto nm = Send(cond);
  ASSERT_TRUE(nm.ok());
  EXPECT_EQ(nm->status, 304);

  // One batch lookup per page for the related names, never one call per related sku.
  int batch_calls = 0, related_single = 0;
  std::set<std::string> related_ids;
  for (auto& rel : p["related"]) related_ids.insert(rel["id"]);
  for (auto& req : Received()) {
    batch_calls += req["path"] == "/catalog/v1/products:batchGet";
    std::string path = req["path"];
    for (auto& id : related_ids) related_single += path == "/catalog/v1/products/" + id;
  }
  EXPECT_EQ(batch_calls, 2);  // two page views
  EXPECT_EQ(related_single, 0);
}

TEST_F(HttpBffTest, WebDegradesHangingReviewsWithinItsTimeout) {
  Start();
  Fault("reviews", R"({"hang": true})");
  auto t0 = std::chrono::steady_clock::now();
  auto r = Get("/web/v1/products/SKU-10001");
  auto elapsed = std::chrono::steady_clock::now() - t0;
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->status, 200) << r->body;
  json p = Body(*r);
  EXPECT_EQ(p["degraded"], json::array({"reviews"}));
  EXPECT_EQ(p["reviews"]["top"], json::array());
  EXPECT_TRUE(p["stock"].is_object());
  // reviews_timeout_ms is 150: the page must not wait for the hanging service (generous margin for noisy machines).
  EXPECT_LT(elapsed, milliseconds(150 + 1500));
  ClearFaults();
}

TEST_F(HttpBffTest, WebAllOptionalServicesDownStillServesThePage) {
  Start();
  for (const char* s : {"inventory", "reviews", "recommendations", "promotions"}) Fault(s, R"({"down": true})");
  auto r = Get("/web/v1/products/SKU-10001");
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->status, 200) << r->body;
  json p = Body(*r);
  std::set<std::string> degraded(p["degraded"].begin(), p["degraded"].end());
  EXPECT_EQ(degraded, (std::set<std::string>{"inventory", "reviews", "recommendations", "promotions"}));
  EXPECT_TRUE(p["stock"].is_null());
  EXPECT_EQ(p["related"], json::array());
  EXPECT_EQ(p["promotions"], json::array());
  EXPECT_EQ(p["id"], "SKU-10001");
  ClearFaults();
}

TEST_F(HttpBffTest, CatalogDownGives503JsonErrorOnWebAndMobile) {
  Start();
  Fault("catalog", R"({"down": true})");
  auto web = Get("/web/v1/products/SKU-10001");
  ASSERT_TRUE(web.ok());
  ExpectError(*web, 503, "unavailable");
  EXPECT_FALSE(web->headers.Get("Retry-After").empty());
  auto mobile = Get("/mobile/v1/products/SKU-10007");
  ASSERT_TRUE(mobile.ok());
  ExpectError(*mobile, 503, "unavailable");
  EXPECT_FALSE(mobile->headers.Get("Retry-After").empty());
  auto unknown = Get("/web/v1/products/NOPE-1");
  ASSERT_TRUE(unknown.ok());
  EXPECT_EQ(unknown->status, 503);  // no catalog, no page, even for an unknown sku
  ClearFaults();
  auto web_unknown = Get("/web/v1/products/NOPE-1");
  ASSERT_TRUE(web_unknown.ok());
  ExpectError(*web_unknown, 404, "not_found");
}

TEST_F(HttpBffTest, MobileServesAStaleCopyWithWarningWhenTheCatalogFails) {
  // max_age 0: every copy is immediately past its freshness, so the next read asks the catalog.
  Start("[mobile]\nmax_age_s = 0\nstale_while_revalidate_s = 0\nstale_if_error_s = 3600\n");
  auto first = Get("/mobile/v1/products/SKU-10010");
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->status, 200);
  Fault("catalog", R"({"down": true})");
  auto stale = Get("/mobile/v1/products/SKU-10010");
  ASSERT_TRUE(stale.ok());
  ASSERT_EQ(stale->status, 200) << stale->body;
  EXPECT_EQ(stale->body, first->body);
  EXPECT_NE(stale->headers.Get("Warning").find("110"), std::string_view::npos);
  EXPECT_TRUE(stale->headers.Has("Age") || stale->headers.Has("age"));
  auto never_seen = Get("/mobile/v1/products/SKU-10011");
  ASSERT_TRUE(never_seen.ok());
  ExpectError(*never_seen, 503);
  ClearFaults();
}

TEST_F(HttpBffTest, MobileTokenGrantsAndBearerProtectedCart) {
  Start();
  auto tok = Send(Req("POST", "/mobile/v1/auth/token", json{{"grant_type", "password"}, {"username", "bob"}, {"password", "demo-bob"}}.dump()));
  ASSERT_TRUE(tok.ok());
  ASSERT_EQ(tok->status, 200) << tok->body;
  json t = Body(*tok);
  EXPECT_EQ(t["token_type"], "Bearer");
  EXPECT_TRUE(t["expires_in"].is_number_integer());
  EXPECT_EQ(tok->headers.Get("Cache-Control"), "no-store");
  std::string access = t["access_token"];

  auto refreshed = Send(Req("POST", "/mobile/v1/auth/token", "grant_type=refresh_token&refresh_token=" + t["refresh_token"].get<std::string>(),
                            "application/x-www-form-urlencoded"));
  ASSERT_TRUE(refreshed.ok());
  EXPECT_EQ(refreshed->status, 200) << refreshed->body;
  auto reused = Send(Req("POST", "/mobile/v1/auth/token", "grant_type=refresh_token&refresh_token=" + t["refresh_token"].get<std::string>(),
                         "application/x-www-form-urlencoded"));
  ASSERT_TRUE(reused.ok());
  ExpectError(*reused, 401, "invalid_grant");
  auto wrong = Send(Req("POST", "/mobile/v1/auth/token", json{{"grant_type", "password"}, {"username", "bob"}, {"password", "nope"}}.dump()));
  ASSERT_TRUE(wrong.ok());
  ExpectError(*wrong, 401, "invalid_grant");
  auto badgrant = Send(Req("POST", "/mobile/v1/auth/token", json{{"grant_type", "client_credentials"}}.dump()));
  ASSERT_TRUE(badgrant.ok());
  ExpectError(*badgrant, 400);

  HttpRequest add = Req("POST", "/mobile/v1/cart/items", R"({"sku":"SKU-10001","qty":2})");
  auto anon = Send(add);
  ASSERT_TRUE(anon.ok());
  ExpectError(*anon, 401);
  EXPECT_EQ(anon->headers.Get("WWW-Authenticate"), "Bearer");
  add.headers.Set("Authorization", "Bearer " + access.substr(0, access.size() - 4) + "AAAA");
  auto forged = Send(add);
  ASSERT_TRUE(forged.ok());
  ExpectError(*forged, 401);
  add.headers.Set("Authorization", "Bearer " + access);
  auto ok = Send(add);
  ASSERT_TRUE(ok.ok());
  ASSERT_EQ(ok->status, 200) << ok->body;
  json cart = Body(*ok);
  ASSERT_TRUE(cart["cart"].is_object());
  EXPECT_EQ(cart["cart"]["items"][0]["sku"], "SKU-10001");
  EXPECT_EQ(cart["cart"]["items"][0]["qty"], 2);
  EXPECT_TRUE(cart["cart"]["total"].is_string());
  EXPECT_EQ(cart["cart"]["currency"], "EUR");

  // Out of stock → 409; unknown sku → 404; bad input → 400/413/415, all before anything goes downstream.
  HttpRequest oos = Req("POST", "/mobile/v1/cart/items", json{{"sku", SeedOutOfStockSku()}, {"qty", 1}}.dump());
  oos.headers.Set("Authorization", "Bearer " + access);
  auto conflict = Send(oos);
  ASSERT_TRUE(conflict.ok());
  ExpectError(*conflict, 409);
  size_t before = Received().size();
  struct Bad {
    std::string body;
    std::string content_type;
    int status;
  };
  std::vector<Bad> bad = {
      {R"({"sku":"SKU-10001","qty":0})", "application/json", 400},
      {R"({"sku":"SKU-10001","qty":100})", "application/json", 400},
      {R"({"sku":"SKU-10001","qty":"2"})", "application/json", 400},
      {R"({"sku":"SKU-10001","qty":1.5})", "application/json", 400},
      {R"({"sku":"bad sku!","qty":1})", "application/json", 400},
      {R"({"qty":1})", "application/json", 400},
      {R"([1,2])", "application/json", 400},
      {R"({"sku":)", "application/json", 400},
      {R"({"sku":"SKU-10001","qty":1})", "text/plain", 415},
      {"{\"sku\":\"SKU-10001\",\"pad\":\"" + std::string(17 * 1024, 'x') + "\",\"qty\":1}", "application/json", 413},
  };
  for (auto& b : bad) {
    HttpRequest req = Req("POST", "/mobile/v1/cart/items", b.body, b.content_type);
    req.headers.Set("Authorization", "Bearer " + access);
    auto resp = Send(req);
    ASSERT_TRUE(resp.ok());
    ExpectError(*resp, b.status);
  }
  // Only token-validation traffic (none: keys are cached) may have reached the domain for these.
  for (size_t i = before; i < Received().size(); ++i) {
    EXPECT_NE(Received()[i]["path"].get<std::string>().rfind("/cart/", 0), 0u) << Received()[i].dump();
  }
}

// Hostile input on the HTTP fronts (docs/SECURITY.md): each is refused with the contract's JSON
// error before anything reaches the domain.
TEST_F(HttpBffTest, HostileIdsListsBodiesAndTokensAreRefusedBeforeTheDomain) {
  Start();
  const std::string access = AccessToken();
  size_t before = Received().size();
  struct Case {
    const char* what;
    HttpRequest req;
    std::set<int> statuses;  // what the contract allows for it
  };
  std::string many_ids = "ids=";
  for (int i = 0; i < 51; ++i) many_ids += (i ? "," : "") + SeedSku(i);
  std::vector<Case> cases = {
      {"path traversal as an id", Req("GET", "/mobile/v1/products/.."), {400}},
      {"path traversal as a web id", Req("GET", "/web/v1/products/."), {400}},
      {"encoded traversal", Req("GET", "/web/v1/products/..%2F..%2Fadmin%2Fv1%2Ffaults"), {400, 404}},
      {"51 ids", Req("GET", "/mobile/v1/products?" + many_ids), {400}},
      {"an id of 10,000 characters in the list", Req("GET", "/mobile/v1/products?ids=" + std::string(10000, 'x')), {400, 414, 431}},
      {"invalid UTF-8 in a JSON body",
       Req("POST", "/web/v1/session", "{\"username\":\"al\xff\xfeice\",\"password\":\"demo-alice\"}"), {400}},
      {"a JSON depth bomb", Req("POST", "/web/v1/session", std::string(5000, '[') + std::string(5000, ']')), {400}},
  };
  for (auto& c : cases) {
    auto r = Send(c.req);
    ASSERT_TRUE(r.ok()) << c.what;
    EXPECT_TRUE(c.statuses.count(r->status)) << c.what << ": " << r->status << " " << r->body;
    ExpectError(*r, r->status);
  }
  for (size_t i = before; i < Received().size(); ++i) {
    const std::string path = Received()[i]["path"];
    EXPECT_EQ(path.find(".."), std::string::npos) << "a traversal reached the domain: " << path;
    EXPECT_NE(path.rfind("/identity/", 0), 0u) << "a refused login reached identity: " << path;
  }

  // Tokens: one signed by the identity's own key but expired and one with alg "none" are 401 with
  // WWW-Authenticate (a replayed refresh token: MobileTokenGrantsAndBearerProtectedCart).
  auto key = EcSigningKey::LoadOrCreate(dir_.path() + "/identity-es256.pem");
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  auto decoded = DecodeJwtUnverified(access);
  ASSERT_TRUE(decoded.ok());
  json claims = decoded->second;
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  claims["iat"] = now - 7200;
  claims["exp"] = now - 3600;
  const std::string expired = key->Sign(claims);
  claims["exp"] = now + 3600;
  const std::string unsigned_token = Base64UrlEncode(R"({"alg":"none","typ":"JWT"})") + "." + Base64UrlEncode(claims.dump()) + ".";
  for (const auto& [what, token] : std::vector<std::pair<std::string, std::string>>{{"expired", expired}, {"alg none", unsigned_token}}) {
    HttpRequest add = Req("POST", "/mobile/v1/cart/items", R"({"sku":"SKU-10001","qty":1})");
    add.headers.Set("Authorization", "Bearer " + token);
    auto r = Send(add);
    ASSERT_TRUE(r.ok());
    ExpectError(*r, 401);
    EXPECT_EQ(r->headers.Get("WWW-Authenticate"), "Bearer") << what;
  }
  HttpRequest fresh = Req("POST", "/mobile/v1/cart/items", R"({"sku":"SKU-10001","qty":1})");
  fresh.headers.Set("Authorization", "Bearer " + key->Sign(claims));
  auto ok = Send(fresh);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->status, 200) << "the same claims, signed and current, are accepted: " << ok->body;
}

TEST_F(HttpBffTest, AnalyticsOutageNeverFailsAddToCart) {
  Start();
  std::string access = AccessToken("carol");
  Fault("analytics", R"({"down": true})");
  HttpRequest add = Req("POST", "/mobile/v1/cart/items", R"({"sku":"SKU-10003","qty":1})");
  add.headers.Set("Authorization", "Bearer " + access);
  auto r = Send(add);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 200) << r->body;
  Fault("analytics", R"({"hang": true})");
  auto t0 = std::chrono::steady_clock::now();
  auto slow = Send(add);
  ASSERT_TRUE(slow.ok());
  EXPECT_EQ(slow->status, 200) << slow->body;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2)) << "the answer waited for analytics";
  ClearFaults();
}

TEST_F(HttpBffTest, WebSessionsCookiesAndCsrf) {
  Start();
  auto bad = Send(Req("POST", "/web/v1/session", json{{"username", "alice"}, {"password", "wrong"}}.dump()));
  ASSERT_TRUE(bad.ok());
  ExpectError(*bad, 401);

  auto login = Send(Req("POST", "/web/v1/session", json{{"username", "alice"}, {"password", "demo-alice"}}.dump()));
  ASSERT_TRUE(login.ok());
  ASSERT_EQ(login->status, 201) << login->body;
  std::string set_cookie(login->headers.Get("Set-Cookie"));
  EXPECT_NE(set_cookie.find("HttpOnly"), std::string::npos) << set_cookie;
  EXPECT_NE(set_cookie.find("SameSite=Lax"), std::string::npos) << set_cookie;
  EXPECT_NE(set_cookie.find("Secure"), std::string::npos) << set_cookie;
  std::string cookie = set_cookie.substr(0, set_cookie.find(';'));
  std::string csrf = Body(*login)["csrf_token"];
  EXPECT_GE(csrf.size(), 32u);

  HttpRequest me = Req("GET", "/web/v1/me");
  auto anon = Send(me);
  ASSERT_TRUE(anon.ok());
  ExpectError(*anon, 401);
  me.headers.Set("Cookie", "other=1; " + cookie);
  auto who = Send(me);
  ASSERT_TRUE(who.ok());
  ASSERT_EQ(who->status, 200) << who->body;
  EXPECT_EQ(Body(*who)["user"]["id"], "u-1001");

  HttpRequest add = Req("POST", "/web/v1/cart/items", R"({"sku":"SKU-10004","qty":1})");
  add.headers.Set("Cookie", cookie);
  auto no_csrf = Send(add);
  ASSERT_TRUE(no_csrf.ok());
  ExpectError(*no_csrf, 403);
  EXPECT_NE(no_csrf->headers.Get("Server-Timing").find("auth;dur="), std::string_view::npos)
      << no_csrf->headers.Get("Server-Timing");
  add.headers.Set("X-CSRF-Token", "wrong");
  auto wrong_csrf = Send(add);
  ASSERT_TRUE(wrong_csrf.ok());
  ExpectError(*wrong_csrf, 403);
  add.headers.Set("X-CSRF-Token", csrf);
  auto ok = Send(add);
  ASSERT_TRUE(ok.ok());
  ASSERT_EQ(ok->status, 200) << ok->body;
  EXPECT_EQ(Body(*ok)["cart"]["items"][0]["sku"], "SKU-10004");
  std::string timing(ok->headers.Get("Server-Timing"));
  EXPECT_NE(timing.find("auth;dur="), std::string::npos) << timing;
  EXPECT_NE(timing.find("cart;dur="), std::string::npos) << timing;

  HttpRequest logout = Req("DELETE", "/web/v1/session");
  logout.headers.Set("Cookie", cookie);
  auto logout_no_csrf = Send(logout);
  ASSERT_TRUE(logout_no_csrf.ok());
  ExpectError(*logout_no_csrf, 403);
  logout.headers.Set("X-CSRF-Token", csrf);
  auto out = Send(logout);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->status, 204);
  auto after = Send(me);
  ASSERT_TRUE(after.ok());
  ExpectError(*after, 401);
}

TEST_F(HttpBffTest, NoClientTokenCookieOrKeyEverReachesTheDomain) {
  Start();
  std::string access = AccessToken("dave");
  auto [cookie, csrf] = Login("erin");
  std::string refresh_probe = "k=0123456789abcdef0123456789abcdef";
  HttpRequest m = Req("POST", "/mobile/v1/cart/items", R"({"sku":"SKU-10005","qty":1})");
  m.headers.Set("Authorization", "Bearer " + access);
  m.headers.Set("X-Api-Key", refresh_probe);
  ASSERT_EQ(Send(m)->status, 200);
  HttpRequest w = Req("POST", "/web/v1/cart/items", R"({"sku":"SKU-10006","qty":1})");
  w.headers.Set("Cookie", cookie);
  w.headers.Set("X-CSRF-Token", csrf);
  ASSERT_EQ(Send(w)->status, 200);
  HttpRequest page = Req("GET", "/web/v1/products/SKU-10006");
  page.headers.Set("Cookie", cookie);
  ASSERT_EQ(Send(page)->status, 200);

  std::string session_id = cookie.substr(cookie.find('=') + 1);
  std::string client_auth_hash = HexEncode(Sha256("Bearer " + access));
  auto received = Received();
  ASSERT_GT(received.size(), 5u);
  int internal = 0;
  for (auto& req : received) {
    std::string text = req.dump();
    EXPECT_EQ(text.find(access), std::string::npos) << "client access token reached the domain: " << req["path"];
    EXPECT_EQ(text.find(session_id), std::string::npos) << "session cookie reached the domain: " << req["path"];
    EXPECT_EQ(text.find(csrf), std::string::npos) << "CSRF token reached the domain";
    EXPECT_EQ(text.find(refresh_probe), std::string::npos) << "API key header reached the domain";
    EXPECT_EQ(text.find(client_auth_hash), std::string::npos);
    EXPECT_FALSE(req["headers"].contains("Cookie"));
    if (req["headers"].contains("Authorization")) {
      EXPECT_EQ(req["headers"]["Authorization"].get<std::string>().rfind("internal-credential", 0), 0u) << text;
      ++internal;
    }
    EXPECT_TRUE(req["headers"].contains("traceparent")) << text;
  }
  EXPECT_EQ(internal, static_cast<int>(received.size()));
  // The credential names the end user and the calling BFF.
  bool saw_mobile_user = false, saw_web_user = false;
  for (auto& req : received) {
    std::string a = req["headers"].value("Authorization", "");
    saw_mobile_user |= a.find("client=mobile subject=u-1004") != std::string::npos;
    saw_web_user |= a.find("client=web subject=u-1005") != std::string::npos;
  }
  EXPECT_TRUE(saw_mobile_user);
  EXPECT_TRUE(saw_web_user);
}

TEST_F(HttpBffTest, UnknownPathsAndMethodsAndTraceContinuation) {
  Start();
  auto nf = Get("/mobile/v1/nothing");
  ASSERT_TRUE(nf.ok());
  ExpectError(*nf, 404, "not_found");
  auto root = Get("/");
  ASSERT_TRUE(root.ok());
  ExpectError(*root, 404);
  auto wrong = Send(Req("DELETE", "/mobile/v1/products/SKU-10001"));
  ASSERT_TRUE(wrong.ok());
  ExpectError(*wrong, 405);
  EXPECT_EQ(wrong->headers.Get("Allow"), "GET");
  HttpRequest traced = Req("GET", "/web/v1/products/SKU-10001");
  traced.headers.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  auto t = Send(traced);
  ASSERT_TRUE(t.ok());
  EXPECT_NE(std::string(t->headers.Get("traceparent")).find("4bf92f3577b34da6a3ce929d0e0e4736"), std::string::npos);
  int carried = 0;
  for (auto& req : Received()) carried += req["headers"].value("traceparent", "").find("4bf92f3577b34da6a3ce929d0e0e4736") != std::string::npos;
  EXPECT_EQ(carried, 6);  // catalog, inventory, reviews, recommendations, batch lookup, promotions
}

TEST_F(HttpBffTest, CurlSeesTheContract) {
  Start();
  std::string out;
  ASSERT_EQ(RunCommand("curl -s -i " + bffd_->http_url() + "/mobile/v1/products/SKU-10001", &out), 0);
  EXPECT_NE(out.find("HTTP/1.1 200"), std::string::npos) << out;
  EXPECT_NE(out.find("ETag: \""), std::string::npos) << out;
  EXPECT_NE(out.find("Server-Timing:"), std::string::npos) << out;
  ASSERT_EQ(RunCommand("curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' --data-binary @- " +
                           bffd_->http_url() + "/mobile/v1/cart/items < /dev/null",
                       &out),
            0);
  EXPECT_EQ(out, "401");
}

// Embedded domain: walk every endpoint over every seeded sku; internal fields never leave bffd.
TEST(HttpBffLeakTest, NoResponseEverCarriesInternalFields) {
  TempDir dir;
  std::ofstream(dir.path() + "/bffd.toml") << "[iot]\ndemo_fleet = 0\n[domain]\npassword_iterations = 1000\n[web]\ncookie_secure = false\n";
  BffdProcess bffd(dir.path(), {"--config", dir.path() + "/bffd.toml"});
  ASSERT_TRUE(bffd.ready()) << bffd.process().Stderr();
  TestHttpClient http;
  auto check = [](const StatusOr<HttpResponse>& r, const std::string& what) {
    ASSERT_TRUE(r.ok()) << what;
    ASSERT_EQ(r->status, 200) << what << " " << r->body;
    EXPECT_EQ(r->body.find("wholesale_cost"), std::string::npos) << what;
    EXPECT_EQ(r->body.find("margin_pct"), std::string::npos) << what;
  };
  // The cart, token and session endpoints too, for a sample of skus.
  auto login = http.Send(bffd.http_url(), Req("POST", "/web/v1/session", R"({"username":"alice","password":"demo-alice"})"));
  ASSERT_TRUE(login.ok());
  ASSERT_EQ(login->status, 201);
  EXPECT_EQ(login->body.find("wholesale_cost"), std::string::npos);
  std::string set_cookie(login->headers.Get("Set-Cookie"));
  std::string cookie = set_cookie.substr(0, set_cookie.find(';'));
  std::string csrf = Body(*login)["csrf_token"];
  HttpRequest me = Req("GET", "/web/v1/me");
  me.headers.Set("Cookie", cookie);
  check(http.Send(bffd.http_url(), me), "me");
  auto token = http.Send(bffd.http_url(), Req("POST", "/mobile/v1/auth/token", R"({"grant_type":"password","username":"bob","password":"demo-bob"})"));
  check(token, "token");
  std::string access = Body(*token)["access_token"];
  for (int i = 0; i < kSeedProductCount; i += 97) {
    if (IsOutOfStockSkuIndex(i)) continue;
    std::string body = json{{"sku", SeedSku(i)}, {"qty", 1}}.dump();
    HttpRequest web = Req("POST", "/web/v1/cart/items", body);
    web.headers.Set("Cookie", cookie);
    web.headers.Set("X-CSRF-Token", csrf);
    check(http.Send(bffd.http_url(), web), "web cart " + SeedSku(i));
    HttpRequest mob = Req("POST", "/mobile/v1/cart/items", body);
    mob.headers.Set("Authorization", "Bearer " + access);
    check(http.Send(bffd.http_url(), mob), "mobile cart " + SeedSku(i));
  }
  std::string batch;
  for (int i = 0; i < kSeedProductCount; ++i) {
    std::string sku = SeedSku(i);
    check(http.Get(bffd.http_url(), "/mobile/v1/products/" + sku), "mobile " + sku);
    check(http.Get(bffd.http_url(), "/web/v1/products/" + sku), "web " + sku);
    batch += (batch.empty() ? "" : ",") + sku;
    if ((i + 1) % 50 == 0) {
      check(http.Get(bffd.http_url(), "/mobile/v1/products?ids=" + batch), "batch");
      batch.clear();
    }
  }
}

}  // namespace
}  // namespace bff::testing
