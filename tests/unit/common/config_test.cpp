// Configuration: the shipped file loads, and every kind of mistake is refused with the key named.
#include "common/config.h"

#include <gtest/gtest.h>

namespace bff {
namespace {

TEST(ConfigTest, DefaultsAreValid) { EXPECT_TRUE(ValidateConfig(Config{}).ok()); }

TEST(ConfigTest, ShippedConfigFileLoadsWithDocumentedDefaults) {
  auto c = LoadConfigFile(std::string(BFF_SOURCE_DIR) + "/config/bffd.toml");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  Config d;
  EXPECT_EQ(c->server.admin, d.server.admin);
  EXPECT_EQ(c->server.http, d.server.http);
  EXPECT_EQ(c->server.threads, d.server.threads);
  EXPECT_EQ(c->domain.mode, "embedded");
  EXPECT_EQ(c->domain.timeout_ms, d.domain.timeout_ms);
  EXPECT_EQ(c->iot.demo_fleet, d.iot.demo_fleet);
  EXPECT_EQ(c->tracing.collector_url, "") << "tracing is off unless asked for";
  EXPECT_EQ(c->tracing.max_queue, d.tracing.max_queue);
  EXPECT_EQ(c->tracing.max_batch, d.tracing.max_batch);
  EXPECT_EQ(c->tracing.service_name, "bffd");
  EXPECT_TRUE(c->embedded());
}

TEST(ConfigTest, ParsesTracing) {
  auto c = ParseConfig("[tracing]\ncollector_url = \"http://127.0.0.1:4318\"\nlog_spans = true\nmax_queue = 64\n"
                       "max_batch = 8\nmax_delay_ms = 20\ntimeout_ms = 300\nservice_name = \"edge-bffd\"\n");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->tracing.collector_url, "http://127.0.0.1:4318");
  EXPECT_TRUE(c->tracing.log_spans);
  EXPECT_EQ(c->tracing.max_queue, 64);
  EXPECT_EQ(c->tracing.max_batch, 8);
  EXPECT_EQ(c->tracing.max_delay_ms, 20);
  EXPECT_EQ(c->tracing.timeout_ms, 300);
  EXPECT_EQ(c->tracing.service_name, "edge-bffd");
}

TEST(ConfigTest, ParsesRateLimits) {
  auto c = ParseConfig("[rate_limit]\nclient_rps = 0\nclient_burst = 5\nuser_rps = 3\nuser_burst = 6\n"
                       "logins_per_minute = 4\nlogin_burst = 2\nmax_tracked = 500\n"
                       "trusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\", \"fd00::/8\"]\n");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->rate_limit.client_rps, 0);
  EXPECT_EQ(c->rate_limit.client_burst, 5);
  EXPECT_EQ(c->rate_limit.user_rps, 3);
  EXPECT_EQ(c->rate_limit.user_burst, 6);
  EXPECT_EQ(c->rate_limit.logins_per_minute, 4);
  EXPECT_EQ(c->rate_limit.login_burst, 2);
  EXPECT_EQ(c->rate_limit.max_tracked, 500);
  EXPECT_EQ(c->rate_limit.trusted_proxies, (std::vector<std::string>{"127.0.0.1", "10.0.0.0/8", "fd00::/8"}));
}

TEST(ConfigTest, ParsesEverySection) {
  auto c = ParseConfig(R"(
data_dir = "/var/lib/bffd"
log_level = "debug"
[server]
http = "0.0.0.0:8080"
admin = "127.0.0.1:9999"
threads = 4
[domain]
mode = "http://127.0.0.1:8090"
timeout_ms = 500
[domain.services]
reviews = "http://reviews.internal:9000/base"
[domain.faults]
reviews = { latency_ms = 200 }
[security]
credential_ttl_s = 30
[iot]
demo_fleet = 10
)");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->data_dir, "/var/lib/bffd");
  EXPECT_EQ(c->server.threads, 4);
  EXPECT_FALSE(c->embedded());
  EXPECT_EQ(c->BaseUrlFor("catalog"), "http://127.0.0.1:8090");
  EXPECT_EQ(c->BaseUrlFor("reviews"), "http://reviews.internal:9000/base");
  EXPECT_EQ(c->domain.faults["reviews"]["latency_ms"], 200);
  EXPECT_EQ(c->security.credential_ttl_s, 30);
}

struct BadCase {
  const char* toml;
  const char* must_name;
};

class ConfigRejectTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(ConfigRejectTest, NamesTheBadKey) {
  auto c = ParseConfig(GetParam().toml, "bffd.toml");
  ASSERT_FALSE(c.ok()) << GetParam().toml;
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find(GetParam().must_name), std::string::npos) << c.status().message();
  EXPECT_NE(c.status().message().find("bffd.toml"), std::string::npos) << c.status().message();
}

INSTANTIATE_TEST_SUITE_P(
    Mistakes, ConfigRejectTest,
    ::testing::Values(BadCase{"[server]\nthreds = 2\n", "server.threds"},
                      BadCase{"[server]\nthreads = \"two\"\n", "server.threads"},
                      BadCase{"[server]\nthreads = 0\n", "server.threads"},
                      BadCase{"[server]\nadmin = \"localhost\"\n", "server.admin"},
                      BadCase{"[server]\nhttp = \"127.0.0.1:99999\"\n", "server.http"},
                      BadCase{"[domain]\nmode = \"ftp://x\"\n", "domain.mode"},
                      BadCase{"[domain.services]\nbilling = \"http://x\"\n", "domain.services.billing"},
                      BadCase{"[domain.faults]\nshipping = { down = true }\n", "domain.faults.shipping"},
                      BadCase{"log_level = \"loud\"\n", "log_level"},
                      BadCase{"colour = \"blue\"\n", "colour"},
                      BadCase{"[mqtt]\nuri = \"localhost:1883\"\n", "mqtt.uri"},
                      BadCase{"[server\nthreads = 2\n", "bffd.toml:1"},
                      BadCase{"[tracing]\ncollector_url = \"grpc://x:4317\"\n", "tracing.collector_url"},
                      BadCase{"[tracing]\nmax_queue = 0\n", "tracing.max_queue"},
                      BadCase{"[tracing]\nmax_queue = 10\nmax_batch = 11\n", "tracing.max_batch"},
                      BadCase{"[tracing]\nmax_delay_ms = 0\n", "tracing.max_delay_ms"},
                      BadCase{"[tracing]\ntimeout_ms = 0\n", "tracing.timeout_ms"},
                      BadCase{"[tracing]\nservice_name = \"\"\n", "tracing.service_name"},
                      BadCase{"[tracing]\nlog_spans = \"yes\"\n", "tracing.log_spans"},
                      BadCase{"[tracing]\ncolector_url = \"http://x\"\n", "tracing.colector_url"},
                      BadCase{"[rate_limit]\nclient_rps = -1\n", "rate_limit.client_rps"},
                      BadCase{"[rate_limit]\nuser_burst = 0\n", "rate_limit.user_burst"},
                      BadCase{"[rate_limit]\ntrusted_proxies = \"10.0.0.1\"\n", "rate_limit.trusted_proxies"},
                      BadCase{"[rate_limit]\ntrusted_proxies = [\"10.0.0.0/40\"]\n", "rate_limit.trusted_proxies"},
                      BadCase{"[rate_limit]\ntrusted_proxies = [\"proxy.internal\"]\n", "rate_limit.trusted_proxies"},
                      BadCase{"[rate_limit]\ntrusted_proxies = [1]\n", "rate_limit.trusted_proxies"}));

}  // namespace
}  // namespace bff
