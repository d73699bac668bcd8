// The IoT BFF over CoAP in a real bffd, with libcoap's coap-client as the device: readings reach the
// web page, an MQTT device's reading reaches a CoAP observer, DTLS-PSK end to end.
#include <gtest/gtest.h>

#include <csignal>
#include <fstream>

#include <nlohmann/json.hpp>

#include "common/crypto.h"
#include "domain/seed.h"
#include "protocols/msgpack/iot_codec.h"
#include "support/coap_client_output.h"
#include "support/processes.h"

namespace bff::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr char kCoapClient[] = "/usr/bin/coap-client-openssl";

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

class CoapIotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access("/usr/sbin/mosquitto", X_OK) != 0 || access(kCoapClient, X_OK) != 0) {
      GTEST_SKIP() << "mosquitto or coap-client-openssl is not installed";
    }
    shelf_only_ = SeedShelfOnlyProduct(1);  // one slot holds all of this sku's stock
    coap_key_ = AddKey("sensor-c", shelf_only_.shelf_id);
    mqtt_key_ = AddKey("sensor-m", shelf_only_.shelf_id);
    broker_ = std::make_unique<MosquittoProcess>(dir_.path(), dir_.path() + "/broker");
    ASSERT_TRUE(broker_->ready());
    std::ofstream(dir_.path() + "/bffd.toml") << "[iot]\ndemo_fleet = 0\n[domain]\npassword_iterations = 1000\n";
    bffd_ = std::make_unique<BffdProcess>(
        dir_.path(), std::vector<std::string>{"--config", dir_.path() + "/bffd.toml", "--mqtt", broker_->uri()});
    ASSERT_TRUE(bffd_->ready()) << bffd_->process().Stderr();
    ASSERT_TRUE(WaitFor([&] { return bffd_->process().Stderr().find("mqtt: connected and subscribed") != std::string::npos; }, 20s));
  }

  std::string AddKey(const std::string& device, const std::string& shelf) {
    std::string out;
    EXPECT_EQ(RunCommand(BinPath("bffd") + " keys add " + device + " --shelf " + shelf + " --rate 50 --burst 100 --data " + dir_.path(), &out), 0);
    return Trim(out);
  }

  std::string ReadingFile(const std::string& device, uint64_t seq, uint32_t qty, const std::string& key = "") {
    Telemetry t;
    t.device_id = device;
    t.shelf_id = shelf_only_.shelf_id;
    t.seq = seq;
    t.ts = 1790000000 + seq;
    t.readings = {{static_cast<uint32_t>(shelf_only_.slot), qty}};
    t.battery_pct = 80;
    t.api_key = key;
    std::string path = dir_.path() + "/reading-" + device + "-" + std::to_string(seq) + ".bin";
    std::ofstream(path, std::ios::binary) << EncodeTelemetry(t, !key.empty());
    return path;
  }

  std::vector<Response> Coap(std::vector<std::string> args) {
    args.insert(args.begin(), {"-v", "7", "-B", "10"});
    ChildProcess p(kCoapClient, args, dir_.path());
    EXPECT_EQ(p.Wait(60s), 0);
    return ParseResponses(p.Stdout());
  }

  std::string CoapUri(const std::string& path) const { return "coap://127.0.0.1:" + std::to_string(bffd_->coap_port()) + path; }
  std::string CoapsUri(const std::string& path) const {
    return "coaps://127.0.0.1:" + std::to_string(bffd_->coaps_port()) + path;
  }

  json WebStock() {
    auto page = http_.Get(bffd_->http_url(), "/web/v1/products/" + shelf_only_.sku);
    EXPECT_TRUE(page.ok() && page->status == 200);
    return page.ok() ? json::parse(page->body)["stock"] : json();
  }

  TempDir dir_;
  SeedSlotRef shelf_only_;
  std::string coap_key_, mqtt_key_;
  std::unique_ptr<MosquittoProcess> broker_;
  std::unique_ptr<BffdProcess> bffd_;
  TestHttpClient http_;
};

TEST_F(CoapIotTest, AReadingOverCoapReachesTheWebPageAndTheSkuAnswer) {
  ASSERT_EQ(WebStock()["in_stock"], true);
  std::vector<Response> r = Coap({"-m", "post", "-f", ReadingFile("sensor-c", 1, 0), CoapUri("/t?k=" + coap_key_)});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].code, "2.04");
  EXPECT_EQ(r[0].type, "ACK") << "piggybacked on the acknowledgement";
  auto flags = DecodeShelfFlags(r[0].body);
  ASSERT_TRUE(flags.ok()) << HexEncode(r[0].body);
  EXPECT_FALSE(flags->second.at(static_cast<size_t>(shelf_only_.slot))) << "the acknowledgement carries the new flags";
  json stock = WebStock();
  EXPECT_EQ(stock["in_stock"], false) << stock.dump();
  EXPECT_EQ(stock["available"], 0);

  // The device's sku question over DTLS-PSK agrees.
  std::vector<Response> sku = Coap({"-m", "get", "-u", "sensor-c", "-k", coap_key_, CoapsUri("/p/" + shelf_only_.sku)});
  ASSERT_EQ(sku.size(), 1u);
  EXPECT_EQ(sku[0].code, "2.05");
  EXPECT_EQ(sku[0].body, std::string("\xc2", 1)) << "false: out of stock";
}

TEST_F(CoapIotTest, AnMqttDevicesReadingNotifiesACoapObserverOverDtls) {
  // The CoAP device observes its shelf over DTLS for up to 60 s.
  ChildProcess observer(kCoapClient,
                        {"-v", "7", "-B", "60", "-s", "60", "-m", "get", "-u", "sensor-c", "-k", coap_key_,
                         CoapsUri("/s/" + shelf_only_.shelf_id)},
                        dir_.path());
  auto responses = [&] { return ParseResponses(observer.Stdout()); };
  ASSERT_TRUE(WaitFor([&] { return !responses().empty(); }, 20s)) << observer.Stdout();
  Response first = responses()[0];
  EXPECT_EQ(first.code, "2.05");
  EXPECT_FALSE(first.Option("Observe").empty()) << "registered: " << first.options;
  auto before = DecodeShelfFlags(first.body);
  ASSERT_TRUE(before.ok());
  ASSERT_TRUE(before->second.at(static_cast<size_t>(shelf_only_.slot)));

  // Another device empties the slot over MQTT.
  std::string file = ReadingFile("sensor-m", 1, 0, mqtt_key_);
  std::string pub = "/usr/bin/mosquitto_pub -h 127.0.0.1 -p " + std::to_string(broker_->port()) +
                    " -u sensor-m -P " + mqtt_key_ + " -q 1 -t iot/v1/sensor-m/telemetry -f " + file;
  ASSERT_EQ(RunCommand(pub, nullptr), 0);
  ASSERT_TRUE(WaitFor([&] { return responses().size() >= 2; }, 20s)) << observer.Stdout();
  Response note = responses()[1];
  EXPECT_EQ(note.code, "2.05");
  EXPECT_NE(note.Option("ETag"), first.Option("ETag")) << "a new version";
  auto after = DecodeShelfFlags(note.body);
  ASSERT_TRUE(after.ok());
  EXPECT_FALSE(after->second.at(static_cast<size_t>(shelf_only_.slot)));

  // The same count again changes nothing: no notification (told by a later change arriving as the third).
  ASSERT_EQ(RunCommand(pub, nullptr), 0);
  ASSERT_EQ(RunCommand("/usr/bin/mosquitto_pub -h 127.0.0.1 -p " + std::to_string(broker_->port()) + " -u sensor-m -P " +
                           mqtt_key_ + " -q 1 -t iot/v1/sensor-m/telemetry -f " + ReadingFile("sensor-m", 2, 0, mqtt_key_),
                       nullptr),
            0);
  ASSERT_EQ(RunCommand("/usr/bin/mosquitto_pub -h 127.0.0.1 -p " + std::to_string(broker_->port()) + " -u sensor-m -P " +
                           mqtt_key_ + " -q 1 -t iot/v1/sensor-m/telemetry -f " + ReadingFile("sensor-m", 3, 9, mqtt_key_),
                       nullptr),
            0);
  ASSERT_TRUE(WaitFor([&] { return responses().size() >= 3; }, 20s)) << observer.Stdout();
  auto restocked = DecodeShelfFlags(responses()[2].body);
  ASSERT_TRUE(restocked.ok());
  EXPECT_TRUE(restocked->second.at(static_cast<size_t>(shelf_only_.slot))) << "the third notification is the restock";
  observer.Signal(SIGTERM);
}

}  // namespace
}  // namespace bff::testing
