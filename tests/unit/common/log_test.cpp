// Log lines: their shape, the request scope they carry, and secrets redacted whatever the caller passed.
#include "common/log.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace bff::log {
namespace {

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SetSink([this](std::string_view line) { lines_.emplace_back(line); });
  }
  void TearDown() override {
    SetSink(nullptr);
    SetLevel(Level::kInfo);
  }
  nlohmann::json Last() const { return lines_.empty() ? nlohmann::json() : nlohmann::json::parse(lines_.back()); }
  std::vector<std::string> lines_;
};

TEST_F(LogTest, ALineCarriesItsRequestsTraceAndClientKind) {
  Info("degraded", {{"part", "reviews"}}, Scope("4bf92f3577b34da6a3ce929d0e0e4736", "web"));
  nlohmann::json j = Last();
  EXPECT_EQ(j["msg"], "degraded");
  EXPECT_EQ(j["level"], "info");
  EXPECT_EQ(j["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(j["client"], "web");
  EXPECT_EQ(j["part"], "reviews");
  Info("started", {{"port", 8080}});
  EXPECT_FALSE(Last().contains("trace_id"));
  EXPECT_FALSE(Last().contains("client"));
}

TEST_F(LogTest, SecretFieldsAreRedactedAtAnyDepth) {
  const std::string secret = "0123456789abcdef0123456789abcdef";
  Warn("oops",
       {{"k", secret},
        {"api_key", secret},
        {"Password", secret},
        {"refresh_token", secret},
        {"Authorization", "Bearer " + secret},
        {"request", {{"headers", {{"Cookie", "bffd_session=" + secret}, {"Accept", "*/*"}}}}},
        {"attempts", nlohmann::json::array({{{"psk", secret}}})},
        {"device", "sensor-01-01"}});
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_EQ(lines_[0].find(secret), std::string::npos) << lines_[0];
  nlohmann::json j = Last();
  EXPECT_EQ(j["k"], "[redacted]");
  EXPECT_EQ(j["Password"], "[redacted]");
  EXPECT_EQ(j["request"]["headers"]["Cookie"], "[redacted]");
  EXPECT_EQ(j["request"]["headers"]["Accept"], "*/*") << "other fields stay as they are";
  EXPECT_EQ(j["attempts"][0]["psk"], "[redacted]");
  EXPECT_EQ(j["device"], "sensor-01-01");
}

TEST_F(LogTest, LevelChangesTakeEffectAtOnce) {
  Debug("hidden");
  EXPECT_TRUE(lines_.empty());
  SetLevel(Level::kDebug);
  Debug("shown");
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_EQ(Last()["msg"], "shown");
  SetLevel(Level::kError);
  Warn("hidden too");
  EXPECT_EQ(lines_.size(), 1u);
}

}  // namespace
}  // namespace bff::log
