// The IoT BFF over MQTT with a real mosquitto (ACLs from the key store) and real mosquitto_pub/sub devices.
#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/crypto.h"
#include "domain/seed.h"
#include "protocols/msgpack/iot_codec.h"
#include "support/processes.h"

namespace bff::testing {
namespace {

using nlohmann::json;

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

class MqttIotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access("/usr/sbin/mosquitto", X_OK) != 0) GTEST_SKIP() << "mosquitto is not installed";
    shelf_only_ = SeedShelfOnlyProduct(0);  // one slot holds all of this sku's stock
    key_a_ = AddKey("sensor-a", shelf_only_.shelf_id);
    key_b_ = AddKey("sensor-b", "shelf-01-02");
    broker_dir_ = dir_.path() + "/broker";
    broker_ = std::make_unique<MosquittoProcess>(dir_.path(), broker_dir_);
    ASSERT_TRUE(broker_->ready()) << ReadFile(broker_dir_ + "/mosquitto.conf");
    std::ofstream(dir_.path() + "/bffd.toml") << "[iot]\ndemo_fleet = 0\n[domain]\npassword_iterations = 1000\n[web]\ncookie_secure = false\n";
    bffd_ = std::make_unique<BffdProcess>(dir_.path(), std::vector<std::string>{"--config", dir_.path() + "/bffd.toml", "--mqtt", broker_->uri()});
    ASSERT_TRUE(bffd_->ready()) << bffd_->process().Stderr();
    ASSERT_TRUE(WaitFor([&] { return bffd_->process().Stderr().find("mqtt: connected and subscribed") != std::string::npos; },
                        std::chrono::seconds(20)))
        << bffd_->process().Stderr();
  }

  std::string AddKey(const std::string& device, const std::string& shelf) {
    std::string out;
    EXPECT_EQ(RunCommand(BinPath("bffd") + " keys add " + device + " --shelf " + shelf + " --rate 50 --burst 100 --data " + dir_.path(), &out), 0);
    return Trim(out);
  }

  std::string Mosq(const std::string& tool, const std::string& user, const std::string& pass) {
    return "/usr/bin/" + tool + " -h 127.0.0.1 -p " + std::to_string(broker_->port()) + " -u " + user + " -P " + pass + " ";
  }

  // A device-side subscriber printing each message as hex on its own line.
  std::unique_ptr<ChildProcess> Subscribe(const std::string& user, const std::string& pass, const std::string& topic) {
    std::vector<std::string> args = {"-h", "127.0.0.1", "-p", std::to_string(broker_->port()), "-u", user, "-P", pass,
                                     "-t", topic, "-q", "1", "-F", "%x", "-V", "mqttv5"};
    return std::make_unique<ChildProcess>("/usr/bin/mosquitto_sub", args, dir_.path());
  }

  // Publishes (retrying: the subscriber may not be subscribed yet; a repeated reading is idempotent)
  // until `sub` printed a message; returns that message's bytes.
  std::string PublishUntilAnswered(const std::string& user, const std::string& pass, const std::string& topic,
                                   const std::string& payload, ChildProcess& sub) {
    std::string file = dir_.path() + "/payload-" + std::to_string(++files_);
    std::ofstream(file, std::ios::binary) << payload;
    for (int attempt = 0; attempt < 30; ++attempt) {
      RunCommand(Mosq("mosquitto_pub", user, pass) + "-q 1 -V mqttv5 -t " + topic + " -f " + file, nullptr);
      if (WaitFor([&] { return !Trim(sub.Stdout()).empty(); }, std::chrono::milliseconds(700))) break;
    }
    std::string hex = Trim(sub.Stdout());
    hex = hex.substr(0, hex.find('\n'));
    std::string bytes;
    HexDecode(hex, &bytes);
    return bytes;
  }

  Telemetry Reading(const std::string& device, const std::string& shelf, uint64_t seq, uint32_t slot, uint32_t qty,
                    const std::string& key) {
    Telemetry t;
    t.device_id = device;
    t.shelf_id = shelf;
    t.seq = seq;
    t.ts = 1790000000 + seq;
    t.readings = {{slot, qty}};
    t.battery_pct = 90;
    t.temp_decicelsius = 215;
    t.api_key = key;
    return t;
  }

  TempDir dir_;
  SeedSlotRef shelf_only_;
  std::string key_a_, key_b_, broker_dir_;
  std::unique_ptr<MosquittoProcess> broker_;
  std::unique_ptr<BffdProcess> bffd_;
  TestHttpClient http_;
  int files_ = 0;
};

TEST_F(MqttIotTest, ReadingIsAcknowledgedWithFlagsAndReachesWebStock) {
  auto before = http_.Get(bffd_->http_url(), "/web/v1/products/" + shelf_only_.sku);
  ASSERT_TRUE(before.ok());
  ASSERT_EQ(json::parse(before->body)["stock"]["in_stock"], true) << before->body;

  auto sub = Subscribe("sensor-a", key_a_, "iot/v1/sensor-a/ack");
  Telemetry t = Reading("sensor-a", shelf_only_.shelf_id, 1, static_cast<uint32_t>(shelf_only_.slot), 0, key_a_);
  std::string ack = PublishUntilAnswered("sensor-a", key_a_, "iot/v1/sensor-a/telemetry", EncodeTelemetry(t, true), *sub);
  ASSERT_FALSE(ack.empty());
  // {"q": 1, "f": [version, slots, bits]} with the slot now out of stock.
  ASSERT_EQ(static_cast<unsigned char>(ack[0]), 0x82);
  size_t f_at = ack.find("\xa1" "f");
  ASSERT_NE(f_at, std::string::npos);
  auto flags = DecodeShelfFlags(ack.substr(f_at + 2));
  ASSERT_TRUE(flags.ok()) << flags.status().ToString();
  EXPECT_FALSE(flags->second.at(static_cast<size_t>(shelf_only_.slot)));

  // End to end: the web page now says out of stock.
  auto after = http_.Get(bffd_->http_url(), "/web/v1/products/" + shelf_only_.sku);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(json::parse(after->body)["stock"]["in_stock"], false) << after->body;
  EXPECT_EQ(json::parse(after->body)["stock"]["available"], 0);
}

TEST_F(MqttIotTest, BadKeyGetsAnErrorMapOnTheErrorTopic) {
  auto sub = Subscribe("sensor-a", key_a_, "iot/v1/sensor-a/error");
  Telemetry t = Reading("sensor-a", shelf_only_.shelf_id, 1, 0, 3, std::string(32, 'f'));
  std::string err = PublishUntilAnswered("sensor-a", key_a_, "iot/v1/sensor-a/telemetry", EncodeTelemetry(t, true), *sub);
  ASSERT_FALSE(err.empty());
  EXPECT_NE(err.find("\xa1" "e\xcd\x01\x91"), std::string::npos) << "e = 401";
  Telemetry other_shelf = Reading("sensor-a", "shelf-01-02", 2, 0, 3, key_a_);
  auto sub2 = Subscribe("sensor-a", key_a_, "iot/v1/sensor-a/error");
  std::string forbidden = PublishUntilAnswered("sensor-a", key_a_, "iot/v1/sensor-a/telemetry", EncodeTelemetry(other_shelf, true), *sub2);
  EXPECT_NE(forbidden.find("\xa1" "e\xcd\x01\x93"), std::string::npos) << "e = 403";
  auto sub3 = Subscribe("sensor-a", key_a_, "iot/v1/sensor-a/error");
  std::string junk = PublishUntilAnswered("sensor-a", key_a_, "iot/v1/sensor-a/telemetry", "\xc1\x00garbage", *sub3);
  EXPECT_NE(junk.find("\xa1" "e\xcd\x01\x90"), std::string::npos) << "e = 400";
}

TEST_F(MqttIotTest, ADeviceCannotReadAnotherDevicesReplies) {
  auto own = Subscribe("sensor-a", key_a_, "iot/v1/sensor-a/ack");
  auto spy = Subscribe("sensor-b", key_b_, "iot/v1/sensor-a/ack");
  auto spy_all = Subscribe("sensor-b", key_b_, "iot/v1/#");
  Telemetry t = Reading("sensor-a", shelf_only_.shelf_id, 5, 0, 9, key_a_);
  std::string ack = PublishUntilAnswered("sensor-a", key_a_, "iot/v1/sensor-a/telemetry", EncodeTelemetry(t, true), *own);
  ASSERT_FALSE(ack.empty());
  // A second exchange after the first makes sure the spies had every chance to receive the first.
  Telemetry t2 = Reading("sensor-a", shelf_only_.shelf_id, 6, 0, 8, key_a_);
  std::ofstream(dir_.path() + "/second", std::ios::binary) << EncodeTelemetry(t2, true);
  RunCommand(Mosq("mosquitto_pub", "sensor-a", key_a_) + "-q 1 -t iot/v1/sensor-a/telemetry -f " + dir_.path() + "/second", nullptr);
  ASSERT_TRUE(WaitFor([&] { return Trim(own->Stdout()).find('\n') != std::string::npos; }, std::chrono::seconds(20)));
  EXPECT_TRUE(Trim(spy->Stdout()).empty()) << "sensor-b read sensor-a's ack";
  EXPECT_TRUE(Trim(spy_all->Stdout()).empty()) << "sensor-b read other devices' topics";
  // And it cannot publish in another device's name: the broker drops it, bffd never answers.
  EXPECT_EQ(bffd_->process().Stderr().find("\"device\":\"sensor-b\""), std::string::npos);
}

// Topics a device should not be able to use: wildcards (refused by the client library and the broker),
// another device's tree (dropped by the broker's ACL), odd bytes and extra levels under its own tree
// (outside bffd's subscriptions). None of them reaches bffd; the device is served as usual afterwards.
TEST_F(MqttIotTest, TopicsWithWildcardsOddBytesOrAnotherDevicesNameNeverReachBffd) {
  auto received = [&]() {
    auto m = http_.Get(bffd_->admin_url(), "/metrics");
    double total = 0;
    if (!m.ok()) return -1.0;
    std::istringstream in(m->body);
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("bffd_mqtt_messages_received_total{", 0) == 0) total += std::stod(line.substr(line.rfind(' ') + 1));
    }
    return total;
  };
  const double before = received();
  ASSERT_GE(before, 0);
  Telemetry t = Reading("sensor-a", shelf_only_.shelf_id, 11, 0, 4, key_a_);
  std::string file = dir_.path() + "/odd-topics";
  std::ofstream(file, std::ios::binary) << EncodeTelemetry(t, true);
  std::string out;
  for (const char* wildcard : {"iot/v1/+/telemetry", "iot/v1/#", "iot/v1/sensor-a/+"}) {
    EXPECT_NE(RunCommand(Mosq("mosquitto_pub", "sensor-a", key_a_) + "-q 1 -t '" + wildcard + "' -f " + file + " 2>&1", &out), 0)
        << wildcard << " was published: " << out;
  }
  for (const std::string& topic : std::vector<std::string>{"iot/v1/sensor-b/telemetry", "iot/v1/sensor-a/telemetry/extra",
                                  "iot/v1/sensor-a/tele\x01metry", "iot/v1/sensor-a/..", "iot/v1/sensor-a/" + std::string(5000, 'x')}) {
    RunCommand(Mosq("mosquitto_pub", "sensor-a", key_a_) + "-q 1 -t '" + topic + "' -f " + file + " 2>&1", &out);
  }
  // The same device's proper reading afterwards: acknowledged, and the only message bffd received.
  auto own = Subscribe("sensor-a", key_a_, "iot/v1/sensor-a/ack");
  std::string ack = PublishUntilAnswered("sensor-a", key_a_, "iot/v1/sensor-a/telemetry", EncodeTelemetry(t, true), *own);
  ASSERT_FALSE(ack.empty()) << "the device is still served";
  const double after = received();
  EXPECT_GE(after - before, 1);
  // PublishUntilAnswered may publish more than once while the subscriber connects; every one of those
  // is the good topic. The odd ones would add at least 5 more.
  EXPECT_LT(after - before, 5) << "a message on an odd topic reached bffd";
  EXPECT_TRUE(bffd_->process().running());
}

TEST_F(MqttIotTest, RevokedKeyIsRefusedWithoutRestart) {
  auto sub = Subscribe("sensor-a", key_a_, "iot/v1/sensor-a/ack");
  Telemetry t = Reading("sensor-a", shelf_only_.shelf_id, 10, 0, 4, key_a_);
  ASSERT_FALSE(PublishUntilAnswered("sensor-a", key_a_, "iot/v1/sensor-a/telemetry", EncodeTelemetry(t, true), *sub).empty());
  std::string out;
  ASSERT_EQ(RunCommand(BinPath("bffd") + " keys revoke sensor-a --data " + dir_.path() + " 2>&1", &out), 0) << out;
  bffd_->process().Signal(SIGHUP);
  ASSERT_TRUE(WaitFor([&] { return bffd_->process().Stderr().find("reloading device keys") != std::string::npos; }));
  // The broker still lets the device in (its passwd was not re-exported); bffd itself refuses the key.
  auto errors = Subscribe("sensor-a", key_a_, "iot/v1/sensor-a/error");
  Telemetry t2 = Reading("sensor-a", shelf_only_.shelf_id, 11, 0, 4, key_a_);
  std::string err = PublishUntilAnswered("sensor-a", key_a_, "iot/v1/sensor-a/telemetry", EncodeTelemetry(t2, true), *errors);
  EXPECT_NE(err.find("\xa1" "e\xcd\x01\x91"), std::string::npos) << "e = 401 after revocation";
}

TEST_F(MqttIotTest, StockQueryAnswersOnTheDefaultTopic) {
  auto sub = Subscribe("sensor-a", key_a_, "iot/v1/sensor-a/stock");
  std::string flags = PublishUntilAnswered("sensor-a", key_a_, "iot/v1/sensor-a/stock/get",
                                           EncodeStockQuery({key_a_, shelf_only_.shelf_id, ""}), *sub);
  auto decoded = DecodeShelfFlags(flags);
  ASSERT_TRUE(decoded.ok()) << HexEncode(flags);
  EXPECT_GE(decoded->second.size(), 8u);
  auto sku_sub = Subscribe("sensor-b", key_b_, "iot/v1/sensor-b/stock");
  std::string one = PublishUntilAnswered("sensor-b", key_b_, "iot/v1/sensor-b/stock/get",
                                         EncodeStockQuery({key_b_, "", SeedOutOfStockSku()}), *sku_sub);
  EXPECT_EQ(one, std::string("\xc2", 1)) << "out-of-stock sku answers false";
}

TEST_F(MqttIotTest, Mqtt5ResponseTopicAndCorrelationDataAreHonoured) {
  auto sub = std::make_unique<ChildProcess>(
      "/usr/bin/mosquitto_sub",
      std::vector<std::string>{"-h", "127.0.0.1", "-p", std::to_string(broker_->port()), "-u", "sensor-a", "-P", key_a_, "-t",
                               "iot/v1/sensor-a/reply/q1", "-q", "1", "-V", "mqttv5", "-F", "%x %D"},
      dir_.path());
  std::string file = dir_.path() + "/query";
  std::ofstream(file, std::ios::binary) << EncodeStockQuery({key_a_, "", "SKU-10001"});
  std::string got;
  for (int attempt = 0; attempt < 30 && got.empty(); ++attempt) {
    RunCommand(Mosq("mosquitto_pub", "sensor-a", key_a_) +
                   "-q 1 -V mqttv5 -t iot/v1/sensor-a/stock/get -D publish response-topic iot/v1/sensor-a/reply/q1 "
                   "-D publish correlation-data req-7 -f " + file,
               nullptr);
    if (WaitFor([&] { return !Trim(sub->Stdout()).empty(); }, std::chrono::milliseconds(700))) got = Trim(sub->Stdout());
  }
  ASSERT_FALSE(got.empty()) << "no answer on the response topic";
  EXPECT_EQ(got.substr(0, 2), "c3") << got;  // true
  EXPECT_NE(got.find("req-7"), std::string::npos) << "correlation data echoed: " << got;
  // A response topic outside the device's own tree is not used; the default topic is.
  auto fallback = Subscribe("sensor-a", key_a_, "iot/v1/sensor-a/stock");
  std::string other;
  for (int attempt = 0; attempt < 30 && other.empty(); ++attempt) {
    RunCommand(Mosq("mosquitto_pub", "sensor-a", key_a_) +
                   "-q 1 -V mqttv5 -t iot/v1/sensor-a/stock/get -D publish response-topic iot/v1/sensor-b/stock -f " + file,
               nullptr);
    if (WaitFor([&] { return !Trim(fallback->Stdout()).empty(); }, std::chrono::milliseconds(700))) other = Trim(fallback->Stdout());
  }
  EXPECT_EQ(other.substr(0, 2), "c3");
}

TEST_F(MqttIotTest, AFloodingDeviceIsRateLimitedWhileOthersAreServed) {
  // Rates are per key: give the flooder a tiny bucket.
  std::string out;
  ASSERT_EQ(RunCommand(BinPath("bffd") + " keys add sensor-flood --shelf shelf-01-03 --rate 0.01 --burst 2 --data " + dir_.path(), &out), 0);
  std::string flooder = Trim(out);
  ASSERT_EQ(RunCommand(BinPath("bffd") + " keys export-mosquitto " + broker_dir_ + " --data " + dir_.path() + " 2>&1", &out), 0);
  broker_->process().Signal(SIGHUP);
  bffd_->process().Signal(SIGHUP);
  auto errors = Subscribe("sensor-flood", flooder, "iot/v1/sensor-flood/error");
  Telemetry f = Reading("sensor-flood", "shelf-01-03", 1, 0, 1, flooder);
  std::string file = dir_.path() + "/flood";
  std::ofstream(file, std::ios::binary) << EncodeTelemetry(f, true);
  // The broker reloads its passwd on SIGHUP; retry until the flooder is let in and refused by bffd.
  std::string err;
  for (int attempt = 0; attempt < 30 && err.empty(); ++attempt) {
    RunCommand(Mosq("mosquitto_pub", "sensor-flood", flooder) + "-q 1 -t iot/v1/sensor-flood/telemetry --repeat 50 -f " + file,
               nullptr);
    if (WaitFor([&] { return !Trim(errors->Stdout()).empty(); }, std::chrono::milliseconds(700))) {
      err = Trim(errors->Stdout());
    }
  }
  ASSERT_FALSE(err.empty());
  std::string first;
  HexDecode(err.substr(0, err.find('\n')), &first);
  EXPECT_NE(first.find("\xa1" "e\xcd\x01\xad"), std::string::npos) << "e = 429: " << err.substr(0, 80);
  EXPECT_NE(first.find("\xa1r"), std::string::npos) << "a retry hint";
  // Meanwhile another device's reading is acknowledged.
  auto ack = Subscribe("sensor-a", key_a_, "iot/v1/sensor-a/ack");
  Telemetry t = Reading("sensor-a", shelf_only_.shelf_id, 100, 0, 3, key_a_);
  EXPECT_FALSE(PublishUntilAnswered("sensor-a", key_a_, "iot/v1/sensor-a/telemetry", EncodeTelemetry(t, true), *ack).empty());
}

}  // namespace
}  // namespace bff::testing
