// bffd as a process: command line, start-up with embedded or remote domain, admin port, drain on SIGTERM.
#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "support/processes.h"

namespace bff::testing {
namespace {

using nlohmann::json;

std::string Bffd() { return BinPath("bffd"); }

// Readiness also waits for the MQTT broker when MQTT is on; these tests have no broker.
std::string NoMqttConfig(const TempDir& dir) {
  std::string path = dir.path() + "/no-mqtt.toml";
  std::ofstream(path) << "[mqtt]\nenabled = false\n";
  return path;
}

TEST(BffdCommandLineTest, VersionAndHelp) {
  std::string out;
  EXPECT_EQ(RunCommand(Bffd() + " --version", &out), 0);
  EXPECT_EQ(out.rfind("bffd ", 0), 0u) << out;
  EXPECT_EQ(RunCommand(Bffd() + " --help", &out), 0);
  for (const char* flag : {"--config", "--http", "--coap", "--coaps", "--admin", "--mqtt", "--domain", "--data",
                           "--log-level", "--check-config", "--version"}) {
    EXPECT_NE(out.find(flag), std::string::npos) << flag;
  }
}

TEST(BffdCommandLineTest, CheckConfigAcceptsShippedFileAndNamesBadSettings) {
  std::string out;
  EXPECT_EQ(RunCommand(Bffd() + " --check-config --config " + std::string(BFF_SOURCE_DIR) + "/config/bffd.toml", &out), 0);
  EXPECT_NE(out.find("configuration OK"), std::string::npos);

  TempDir dir;
  std::ofstream(dir.path() + "/bad.toml") << "[server]\nthreads = 2\nadmn = \"127.0.0.1:1\"\n";
  EXPECT_EQ(RunCommand(Bffd() + " --check-config --config " + dir.path() + "/bad.toml 2>&1", &out), 2);
  EXPECT_NE(out.find("server.admn"), std::string::npos) << out;

  EXPECT_EQ(RunCommand(Bffd() + " --check-config --admin nonsense 2>&1", &out), 2);
  EXPECT_NE(out.find("server.admin"), std::string::npos) << out;
  EXPECT_EQ(RunCommand(Bffd() + " --check-config --domain ftp://x 2>&1", &out), 2);
  EXPECT_NE(out.find("domain.mode"), std::string::npos) << out;
  EXPECT_EQ(RunCommand(Bffd() + " --check-config --log-level chatty 2>&1", &out), 2);
  EXPECT_NE(out.find("log_level"), std::string::npos) << out;
}

TEST(BffdProcessTest, EmbeddedDomainServesAdminProvisionsDemoFleetAndDrainsOnSigterm) {
  TempDir dir;
  BffdProcess bffd(dir.path(), {"--config", NoMqttConfig(dir)});
  ASSERT_TRUE(bffd.ready()) << bffd.process().Stderr();
  std::string admin = "http://127.0.0.1:" + std::to_string(bffd.admin_port());
  TestHttpClient http;

  HttpRequest health;
  health.path = "/healthz";
  health.headers.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  auto h = http.Send(admin, health);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->status, 200);
  // The incoming trace is continued, not replaced.
  EXPECT_NE(std::string(h->headers.Get("traceparent")).find("4bf92f3577b34da6a3ce929d0e0e4736"), std::string::npos);
  EXPECT_FALSE(h->headers.Get("Server-Timing").empty());

  auto ready = http.Get(admin, "/readyz");
  ASSERT_TRUE(ready.ok());
  EXPECT_EQ(ready->status, 200) << ready->body;

  HttpRequest put;
  put.method = "PUT";
  put.path = "/admin/v1/faults/reviews";
  put.headers.Set("Content-Type", "application/json");
  put.body = R"({"latency_ms": 200})";
  auto p = http.Send(admin, put);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->status, 200) << p->body;
  auto faults = http.Get(admin, "/admin/v1/faults");
  ASSERT_TRUE(faults.ok());
  EXPECT_EQ(json::parse(faults->body)["reviews"]["latency_ms"], 200);

  auto unknown = http.Get(admin, "/nope");
  ASSERT_TRUE(unknown.ok());
  EXPECT_EQ(unknown->status, 404);
  auto err = json::parse(unknown->body, nullptr, false);
  ASSERT_TRUE(err.is_object());
  EXPECT_EQ(err["error"]["code"], "not_found");
  EXPECT_TRUE(err["error"]["trace_id"].is_string());

  // Demo fleet: one key per shelf, plaintext only in the keys file (mode 0600), never in logs or keys.db.
  std::string keys_text = ReadFile(dir.path() + "/demo-keys.txt");
  std::istringstream lines(keys_text);
  std::string device, shelf, key;
  int count = 0;
  std::vector<std::string> keys;
  while (lines >> device >> shelf >> key) {
    ++count;
    EXPECT_EQ(key.size(), 32u);
    keys.push_back(key);
  }
  EXPECT_EQ(count, 1000);
  std::string keydb = ReadFile(dir.path() + "/keys.db");
  std::string logs = bffd.process().Stderr();
  for (size_t i = 0; i < keys.size(); i += 97) {
    EXPECT_EQ(keydb.find(keys[i]), std::string::npos) << "plaintext key stored";
    EXPECT_EQ(logs.find(keys[i]), std::string::npos) << "key logged";
  }

  bffd.process().Signal(SIGTERM);
  EXPECT_EQ(bffd.process().Wait(std::chrono::seconds(30)), 0) << bffd.process().Stderr();
  EXPECT_FALSE(LogField(bffd.process().Stderr(), "drained", "abandoned").empty());
}

TEST(BffdProcessTest, RemoteDomainOverHttpAndReadinessFollowsIt) {
  TempDir dir;
  DomainProcess domain(dir.path());
  ASSERT_TRUE(domain.ready()) << domain.process().Stderr();
  // Sharing the data directory shares internal.key, the secret behind the internal credential.
  BffdProcess bffd(dir.path(), {"--domain", domain.base_url(), "--config", NoMqttConfig(dir)});
  ASSERT_TRUE(bffd.ready()) << bffd.process().Stderr();
  std::string admin = "http://127.0.0.1:" + std::to_string(bffd.admin_port());
  TestHttpClient http;
  auto ready = http.Get(admin, "/readyz");
  ASSERT_TRUE(ready.ok());
  EXPECT_EQ(ready->status, 200) << ready->body;
  // Provisioning read the shelves over HTTP from the domain process.
  EXPECT_FALSE(ReadFile(dir.path() + "/demo-keys.txt").empty());
  // Faults live in the domain process in this mode.
  auto faults = http.Get(admin, "/admin/v1/faults");
  ASSERT_TRUE(faults.ok());
  EXPECT_EQ(faults->status, 404);

  domain.process().Signal(SIGKILL);
  domain.process().Wait(std::chrono::seconds(10));
  auto down = http.Get(admin, "/readyz");
  ASSERT_TRUE(down.ok());
  EXPECT_EQ(down->status, 503) << down->body;
  // Still alive and healthy as a process.
  auto health = http.Get(admin, "/healthz");
  ASSERT_TRUE(health.ok());
  EXPECT_EQ(health->status, 200);
}

TEST(BffdProcessTest, StartupFailureNamesTheProblem) {
  TempDir dir;
  std::string out;
  // An admin port already taken: start one bffd, then a second on the same port.
  BffdProcess first(dir.path());
  ASSERT_TRUE(first.ready());
  TempDir dir2;
  int code = RunCommand(Bffd() + " --data " + dir2.path() + " --admin 127.0.0.1:" + std::to_string(first.admin_port()) +
                            " 2>&1",
                        &out);
  EXPECT_EQ(code, 1) << out;
  EXPECT_NE(out.find("server.admin"), std::string::npos) << out;
}

}  // namespace
}  // namespace bff::testing
