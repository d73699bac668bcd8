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
  EXPECT_TRUE(c->embedded());
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
                      BadCase{"[server\nthreads = 2\n", "bffd.toml:1"}));

}  // namespace
}  // namespace bff
