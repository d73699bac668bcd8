// bffd's admin listener as an operator uses it: /metrics moves with real mobile and web traffic, /readyz
// follows the domain and the MQTT broker, and the log level changes at run time.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <csignal>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <tuple>

#include <nlohmann/json.hpp>

#include "domain/seed.h"
#include "support/processes.h"

namespace bff::testing {
namespace {

using nlohmann::json;

constexpr char kNoMqttConfig[] = "[iot]\ndemo_fleet = 0\n[mqtt]\nenabled = false\n[domain]\npassword_iterations = 1000\n";

std::string WriteConfig(const TempDir& dir, const std::string& toml) {
  std::string path = dir.path() + "/bffd.toml";
  std::ofstream(path) << toml;
  return path;
}

HttpRequest Req(const std::string& method, const std::string& path, const std::string& body = "") {
  HttpRequest r;
  r.method = method;
  r.path = path;
  r.body = body;
  if (!body.empty()) r.headers.Set("Content-Type", "application/json");
  return r;
}

// One scrape: series ("name{labels}" exactly as exposed) to value. Fails the test on any line that is not
// a comment or a well-formed sample, and on a sample whose family has no # TYPE before it.
std::map<std::string, double> Parse(const std::string& text) {
  static const std::regex kSample(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*")*\})? ([^ ]+)$)");
  std::map<std::string, double> out;
  std::set<std::string> typed;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream t(line.substr(7));
      std::string name;
      t >> name;
      typed.insert(name);
      continue;
    }
    if (line.rfind("# HELP ", 0) == 0) continue;
    std::smatch m;
    if (!std::regex_match(line, m, kSample)) {
      ADD_FAILURE() << "malformed exposition line: " << line;
      continue;
    }
    std::string name = m[1];
    bool has_type = typed.count(name) > 0;
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      std::string s = suffix;
      if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0) {
        has_type = has_type || typed.count(name.substr(0, name.size() - s.size())) > 0;
      }
    }
    EXPECT_TRUE(has_type) << "sample before its # TYPE: " << line;
    std::string value = m[3];
    out[name + std::string(m[2])] = value == "+Inf" ? HUGE_VAL : value == "NaN" ? NAN : std::stod(value);
  }
  return out;
}

double Value(const std::map<std::string, double>& m, const std::string& series) {
  auto it = m.find(series);
  return it == m.end() ? 0 : it->second;
}

class MetricsEndpointTest : public ::testing::Test {
 protected:
  void Start(const std::string& toml, std::vector<std::string> extra = {}) {
    extra.insert(extra.begin(), {"--config", WriteConfig(dir_, toml)});
    bffd_ = std::make_unique<BffdProcess>(dir_.path(), extra);
    ASSERT_TRUE(bffd_->ready()) << bffd_->process().Stderr();
  }

  std::map<std::string, double> Scrape() {
    auto r = http_.Get(bffd_->admin_url(), "/metrics");
    EXPECT_TRUE(r.ok());
    if (!r.ok()) return {};
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->headers.Get("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
    return Parse(r->body);
  }

  StatusOr<HttpResponse> Api(HttpRequest r) { return http_.Send(bffd_->http_url(), std::move(r)); }

  StatusOr<HttpResponse> Ready() { return http_.Get(bffd_->admin_url(), "/readyz"); }

  TempDir dir_;
  TestHttpClient http_;
  std::unique_ptr<BffdProcess> bffd_;
};

std::string HttpSeries(const std::string& suffix, const std::string& client, const std::string& method,
                       const std::string& route, int status) {
  return "bffd_http_request" + suffix + "{client=\"" + client + "\",method=\"" + method + "\",route=\"" + route +
         "\",status=\"" + std::to_string(status) + "\"}";
}

TEST_F(MetricsEndpointTest, CountersAndHistogramsMoveWithMobileAndWebTraffic) {
  Start(kNoMqttConfig);
  auto before = Scrape();

  const std::string sku = SeedSku(0);
  auto miss = Api(Req("GET", "/mobile/v1/products/" + sku));
  ASSERT_TRUE(miss.ok());
  EXPECT_EQ(miss->status, 200) << miss->body;
  auto hit = Api(Req("GET", "/mobile/v1/products/" + sku));
  ASSERT_TRUE(hit.ok());
  EXPECT_EQ(hit->status, 200);
  auto unknown = Api(Req("GET", "/mobile/v1/products/SKU-99999"));
  ASSERT_TRUE(unknown.ok());
  EXPECT_EQ(unknown->status, 404);
  HttpRequest add = Req("POST", "/mobile/v1/cart/items", R"({"sku":")" + sku + R"(","qty":1})");
  add.headers.Set("Authorization", "Bearer not-a-token");
  auto bad_token = Api(add);
  ASSERT_TRUE(bad_token.ok());
  EXPECT_EQ(bad_token->status, 401);
  auto page = Api(Req("GET", "/web/v1/products/" + sku));
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->status, 200) << page->body;
  auto nowhere = Api(Req("GET", "/web/v1/nowhere/" + std::string(40, 'x')));
  ASSERT_TRUE(nowhere.ok());
  EXPECT_EQ(nowhere->status, 404);

  auto after = Scrape();
  auto delta = [&](const std::string& series) { return Value(after, series) - Value(before, series); };

  // Requests per client, method, route pattern (never the raw path) and status.
  const std::string product = "/mobile/v1/products/{sku}";
  EXPECT_EQ(delta(HttpSeries("s_total", "mobile", "GET", product, 200)), 2);
  EXPECT_EQ(delta(HttpSeries("s_total", "mobile", "GET", product, 404)), 1);
  EXPECT_EQ(delta(HttpSeries("s_total", "mobile", "POST", "/mobile/v1/cart/items", 401)), 1);
  EXPECT_EQ(delta(HttpSeries("s_total", "web", "GET", "/web/v1/products/{sku}", 200)), 1);
  EXPECT_EQ(delta(HttpSeries("s_total", "web", "GET", "unmatched", 404)), 1);
  for (const auto& [series, value] : after) {
    EXPECT_EQ(series.find(sku), std::string::npos) << "a raw path became a label: " << series;
    EXPECT_EQ(series.find("nowhere"), std::string::npos) << "a raw path became a label: " << series;
  }
  // Each answer was timed once: the histograms' counts match the request counters, bucket by bucket up to +Inf.
  for (const auto& [client, method, route, status] :
       std::vector<std::tuple<std::string, std::string, std::string, int>>{{"mobile", "GET", product, 200},
                                                                          {"mobile", "GET", product, 404},
                                                                          {"mobile", "POST", "/mobile/v1/cart/items", 401},
                                                                          {"web", "GET", "/web/v1/products/{sku}", 200}}) {
    std::string counter = HttpSeries("s_total", client, method, route, status);
    std::string count = HttpSeries("_duration_seconds_count", client, method, route, status);
    EXPECT_EQ(Value(after, count), Value(after, counter)) << count;
    std::string inf = "bffd_http_request_duration_seconds_bucket{client=\"" + client + "\",method=\"" + method + "\",route=\"" +
                      route + "\",status=\"" + std::to_string(status) + "\",le=\"+Inf\"}";
    EXPECT_EQ(Value(after, inf), Value(after, counter)) << inf;
    EXPECT_GT(Value(after, HttpSeries("_duration_seconds_sum", client, method, route, status)), 0) << route;
  }

  // The bad token is an authentication failure of the mobile client.
  EXPECT_EQ(delta("bffd_auth_failures_total{client=\"mobile\",reason=\"unauthenticated\"}"), 1);
  EXPECT_EQ(delta("bffd_auth_failures_total{client=\"web\",reason=\"unauthenticated\"}"), 0);

  // Mobile cache: the first read and the unknown sku missed, the second read hit; one product is held.
  EXPECT_EQ(delta("bffd_cache_requests_total{client=\"mobile\",result=\"miss\"}"), 2);
  EXPECT_EQ(delta("bffd_cache_requests_total{client=\"mobile\",result=\"hit\"}"), 1);
  EXPECT_EQ(delta("bffd_cache_requests_total{client=\"mobile\",result=\"stale\"}"), 0);
  EXPECT_EQ(Value(after, "bffd_cache_entries{client=\"mobile\"}"), 1);
  EXPECT_GT(Value(after, "bffd_cache_bytes{client=\"mobile\"}"), 0);

  // Catalog: the unknown sku is the one call it refused; the mobile miss and the web page read the product.
  EXPECT_EQ(delta("bffd_downstream_requests_total{service=\"catalog\",outcome=\"client_error\"}"), 1);
  EXPECT_GE(delta("bffd_downstream_requests_total{service=\"catalog\",outcome=\"ok\"}"), 2);
  EXPECT_EQ(delta("bffd_downstream_requests_total{service=\"catalog\",outcome=\"error\"}"), 0);
  for (const char* outcome : {"ok", "client_error"}) {
    std::string labels = std::string("{service=\"catalog\",outcome=\"") + outcome + "\"}";
    EXPECT_EQ(Value(after, "bffd_downstream_request_duration_seconds_count" + labels),
              Value(after, "bffd_downstream_requests_total" + labels))
        << outcome;
  }
  // The web page asked every part once; each ended either well or in its fallback.
  EXPECT_EQ(delta("bffd_fanout_calls_total{call=\"catalog\",outcome=\"ok\"}"), 1);
  for (const char* part : {"inventory", "reviews", "recommendations", "promotions"}) {
    std::string p = std::string("{call=\"") + part + "\",outcome=\"";
    EXPECT_EQ(delta("bffd_fanout_calls_total" + p + "ok\"}") + delta("bffd_fanout_calls_total" + p + "fallback\"}"), 1) << part;
  }

  // The process and the HTTP front describe themselves.
  EXPECT_GT(Value(after, "process_resident_memory_bytes"), 1 << 20);
  EXPECT_GT(Value(after, "process_open_fds"), 3);
  EXPECT_GT(Value(after, "process_start_time_seconds"), 1.6e9);
  EXPECT_EQ(Value(after, "bffd_http_requests_in_flight"), 0);
  EXPECT_GT(after.count("bffd_http_connections_open"), 0u);
  EXPECT_EQ(Value(after, "bffd_http_connections_refused_total"), 0);
  EXPECT_EQ(Value(after, "bffd_http_timeouts_total{kind=\"handler\"}"), 0);
  EXPECT_GT(after.count("bffd_http_timeouts_total{kind=\"header\"}"), 0u);
  EXPECT_EQ(after.count("bffd_mqtt_connected"), 0u) << "MQTT is off in this configuration";

  // Everything this configuration needs is up.
  auto ready = Ready();
  ASSERT_TRUE(ready.ok());
  EXPECT_EQ(ready->status, 200) << ready->body;
}

TEST_F(MetricsEndpointTest, ADegradedPartIsCountedAsAFallbackAndItsServiceAsFailing) {
  Start(kNoMqttConfig);
  auto fault = http_.Send(bffd_->admin_url(), Req("PUT", "/admin/v1/faults/reviews", R"({"down":true})"));
  ASSERT_TRUE(fault.ok());
  ASSERT_EQ(fault->status, 200) << fault->body;
  auto before = Scrape();
  auto page = Api(Req("GET", "/web/v1/products/" + SeedSku(2)));
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->status, 200) << page->body;
  EXPECT_EQ(json::parse(page->body)["degraded"], json::array({"reviews"}));
  auto after = Scrape();
  auto delta = [&](const std::string& series) { return Value(after, series) - Value(before, series); };
  EXPECT_EQ(delta("bffd_fanout_calls_total{call=\"reviews\",outcome=\"fallback\"}"), 1);
  EXPECT_EQ(delta("bffd_fanout_calls_total{call=\"reviews\",outcome=\"ok\"}"), 0);
  EXPECT_EQ(delta("bffd_downstream_requests_total{service=\"reviews\",outcome=\"error\"}"), 1);
  EXPECT_EQ(delta("bffd_downstream_requests_total{service=\"reviews\",outcome=\"ok\"}"), 0);
  // The page itself was a success.
  EXPECT_EQ(delta(HttpSeries("s_total", "web", "GET", "/web/v1/products/{sku}", 200)), 1);
}

TEST_F(MetricsEndpointTest, NotReadyWithTheMqttReasonWhileNoBrokerListens) {
  uint16_t port = FreeTcpPort();  // nothing listens here
  std::string uri = "tcp://127.0.0.1:" + std::to_string(port);
  Start("[iot]\ndemo_fleet = 0\n[domain]\npassword_iterations = 1000\n", {"--mqtt", uri});
  auto ready = Ready();
  ASSERT_TRUE(ready.ok());
  EXPECT_EQ(ready->status, 503) << ready->body;
  json body = json::parse(ready->body, nullptr, false);
  ASSERT_TRUE(body.is_object()) << ready->body;
  EXPECT_EQ(body["status"], "not_ready");
  // The domain is fine, so the broker is the one reason.
  EXPECT_EQ(body["reasons"], json::array({"mqtt: not connected to " + uri})) << ready->body;
  EXPECT_EQ(Value(Scrape(), "bffd_mqtt_connected"), 0);
  // Not ready is not unhealthy: the process still answers its liveness probe.
  auto health = http_.Get(bffd_->admin_url(), "/healthz");
  ASSERT_TRUE(health.ok());
  EXPECT_EQ(health->status, 200);
}

TEST_F(MetricsEndpointTest, ReadyWithTheBrokerAndNotReadyOnceItGoes) {
  if (access("/usr/sbin/mosquitto", X_OK) != 0) GTEST_SKIP() << "mosquitto is not installed";
  MosquittoProcess broker(dir_.path(), dir_.path() + "/broker");
  ASSERT_TRUE(broker.ready());
  Start("[iot]\ndemo_fleet = 0\n[domain]\npassword_iterations = 1000\n", {"--mqtt", broker.uri()});
  ASSERT_TRUE(WaitFor([&] { return bffd_->process().Stderr().find("mqtt: connected and subscribed") != std::string::npos; },
                      std::chrono::seconds(20)))
      << bffd_->process().Stderr();
  auto ready = Ready();
  ASSERT_TRUE(ready.ok());
  EXPECT_EQ(ready->status, 200) << ready->body;
  EXPECT_EQ(Value(Scrape(), "bffd_mqtt_connected"), 1);

  broker.process().Signal(SIGKILL);
  broker.process().Wait(std::chrono::seconds(10));
  int status = 0;
  std::string body;
  EXPECT_TRUE(WaitFor(
      [&] {
        auto r = Ready();
        if (!r.ok()) return false;
        status = r->status;
        body = r->body;
        return status == 503;
      },
      std::chrono::seconds(60)))
      << status << " " << body;
  EXPECT_NE(body.find("\"mqtt: not connected to " + broker.uri() + "\""), std::string::npos) << body;
}

TEST_F(MetricsEndpointTest, LogLevelChangesAtRunTime) {
  Start(kNoMqttConfig, {"--log-level", "info"});
  std::string admin = bffd_->admin_url();
  auto level = http_.Get(admin, "/admin/v1/log-level");
  ASSERT_TRUE(level.ok());
  EXPECT_EQ(level->status, 200);
  EXPECT_EQ(json::parse(level->body, nullptr, false), json({{"level", "info"}}));

  // At info, answering a request writes no debug line.
  ASSERT_TRUE(Api(Req("GET", "/mobile/v1/products/" + SeedSku(1))).ok());
  EXPECT_EQ(LogField(bffd_->process().Stderr(), "request", "level"), "");

  auto bad = http_.Send(admin, Req("PUT", "/admin/v1/log-level", R"({"level":"chatty"})"));
  ASSERT_TRUE(bad.ok());
  EXPECT_EQ(bad->status, 400) << bad->body;
  json err = json::parse(bad->body, nullptr, false);
  ASSERT_TRUE(err.is_object()) << bad->body;
  EXPECT_EQ(err["error"]["code"], "invalid_argument");
  auto not_json = http_.Send(admin, Req("PUT", "/admin/v1/log-level", "debug"));
  ASSERT_TRUE(not_json.ok());
  EXPECT_EQ(not_json->status, 400);

  auto put = http_.Send(admin, Req("PUT", "/admin/v1/log-level", R"({"level":"debug"})"));
  ASSERT_TRUE(put.ok());
  EXPECT_EQ(put->status, 200) << put->body;
  EXPECT_EQ(json::parse(put->body, nullptr, false), json({{"level", "debug"}}));
  level = http_.Get(admin, "/admin/v1/log-level");
  ASSERT_TRUE(level.ok());
  EXPECT_EQ(json::parse(level->body, nullptr, false), json({{"level", "debug"}}));
  EXPECT_EQ(LogField(bffd_->process().Stderr(), "log level changed", "to"), "debug");

  auto r = Api(Req("GET", "/mobile/v1/products/" + SeedSku(1)));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(WaitFor([&] { return LogField(bffd_->process().Stderr(), "request", "level") == "debug"; }))
      << bffd_->process().Stderr();
  EXPECT_EQ(LogField(bffd_->process().Stderr(), "request", "path"), "/mobile/v1/products/" + SeedSku(1));
}

}  // namespace
}  // namespace bff::testing
