// The IoT side of /metrics in a real bffd: readings over a real mosquitto and a CoAP question from
// coap-client move the IoT, MQTT and CoAP families by exactly what was sent.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include "domain/seed.h"
#include "protocols/msgpack/iot_codec.h"
#include "support/coap_client_output.h"
#include "support/processes.h"

namespace bff::testing {
namespace {

using namespace std::chrono_literals;

constexpr char kCoapClient[] = "/usr/bin/coap-client-openssl";

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

// "name{labels} value" lines to series -> value (comments skipped).
std::map<std::string, double> ParseSamples(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    size_t space = line.rfind(' ');
    if (space == std::string::npos) continue;
    out[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return out;
}

class IotMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access("/usr/sbin/mosquitto", X_OK) != 0 || access(kCoapClient, X_OK) != 0) {
      GTEST_SKIP() << "mosquitto or coap-client-openssl is not installed";
    }
    shelf_only_ = SeedShelfOnlyProduct(0);
    key_ = AddKey("sensor-m", shelf_only_.shelf_id);
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

  std::map<std::string, double> Scrape() {
    auto r = http_.Get(bffd_->admin_url(), "/metrics");
    EXPECT_TRUE(r.ok() && r->status == 200);
    return r.ok() ? ParseSamples(r->body) : std::map<std::string, double>{};
  }

  // Publishes once at QoS 1 as the device (the broker then holds it for bffd's persistent session).
  void Publish(const std::string& payload) {
    std::string file = dir_.path() + "/payload-" + std::to_string(++files_);
    std::ofstream(file, std::ios::binary) << payload;
    std::string cmd = "/usr/bin/mosquitto_pub -h 127.0.0.1 -p " + std::to_string(broker_->port()) + " -u sensor-m -P " +
                      key_ + " -q 1 -V mqttv5 -t iot/v1/sensor-m/telemetry -f " + file;
    ASSERT_EQ(RunCommand(cmd, nullptr), 0);
  }

  Telemetry Reading(uint64_t seq, const std::string& key) {
    Telemetry t;
    t.device_id = "sensor-m";
    t.shelf_id = shelf_only_.shelf_id;
    t.seq = seq;
    t.ts = 1790000000 + seq;
    t.readings = {{static_cast<uint32_t>(shelf_only_.slot), 2}};
    t.battery_pct = 90;
    t.api_key = key;
    return t;
  }

  TempDir dir_;
  SeedSlotRef shelf_only_;
  std::string key_;
  std::unique_ptr<MosquittoProcess> broker_;
  std::unique_ptr<BffdProcess> bffd_;
  TestHttpClient http_;
  int files_ = 0;
};

double Get(const std::map<std::string, double>& m, const std::string& series) {
  auto it = m.find(series);
  return it == m.end() ? NAN : it->second;
}

TEST_F(IotMetricsTest, ReadingsAndAStockQuestionMoveTheIotFamiliesByExactlyWhatWasSent) {
  auto before = Scrape();
  // Every family is there from the start, at zero, so rates work from the first scrape.
  for (const char* s : {"bffd_iot_telemetry_received_total", "bffd_iot_telemetry_rejected_total{reason=\"auth\"}",
                        "bffd_mqtt_messages_received_total{kind=\"telemetry\",outcome=\"acknowledged\"}",
                        "bffd_mqtt_messages_published_total{kind=\"ack\",outcome=\"ok\"}",
                        "bffd_auth_failures_total{client=\"iot\",reason=\"unauthenticated\"}",
                        "bffd_rate_limited_total{client=\"iot\"}", "bffd_mqtt_messages_in_flight",
                        "bffd_coap_observers", "bffd_inventory_shelf_readings_queued"}) {
    EXPECT_FALSE(std::isnan(Get(before, s))) << s << " is missing";
  }
  EXPECT_EQ(Get(before, "bffd_mqtt_connected"), 1);
  EXPECT_GE(Get(before, "bffd_mqtt_connects_total"), 1);

  Publish(EncodeTelemetry(Reading(1, key_), true));
  Publish(EncodeTelemetry(Reading(2, std::string(32, 'f')), true));  // a key that is not the device's
  Publish(std::string("\xc1\x00garbage", 9));                        // not msgpack
  std::map<std::string, double> after;
  const std::string answered_ok = "bffd_mqtt_messages_received_total{kind=\"telemetry\",outcome=\"acknowledged\"}";
  const std::string answered_err = "bffd_mqtt_messages_received_total{kind=\"telemetry\",outcome=\"rejected\"}";
  ASSERT_TRUE(WaitFor(
      [&] {
        after = Scrape();
        return Get(after, answered_ok) + Get(after, answered_err) >= Get(before, answered_ok) + Get(before, answered_err) + 3;
      },
      20s))
      << bffd_->process().Stderr();

  std::vector<Response> get;
  {
    ChildProcess p(kCoapClient, {"-v", "7", "-B", "10", "-m", "get",
                                 "coap://127.0.0.1:" + std::to_string(bffd_->coap_port()) + "/s/" + shelf_only_.shelf_id +
                                     "?d=sensor-m&k=" + key_},
                   dir_.path());
    ASSERT_EQ(p.Wait(60s), 0);
    get = ParseResponses(p.Stdout());
  }
  ASSERT_EQ(get.size(), 1u);
  ASSERT_EQ(get[0].code, "2.05");
  after = Scrape();

  // A label set first seen in this test (a response code) starts from 0.
  auto delta = [&](const std::string& s) {
    double b = Get(before, s);
    return Get(after, s) - (std::isnan(b) ? 0 : b);
  };
  EXPECT_EQ(delta("bffd_iot_telemetry_received_total"), 3);
  EXPECT_EQ(delta("bffd_iot_telemetry_acknowledged_total"), 1);
  EXPECT_EQ(delta("bffd_iot_telemetry_rejected_total{reason=\"auth\"}"), 1);
  EXPECT_EQ(delta("bffd_iot_telemetry_rejected_total{reason=\"bad_payload\"}"), 1);
  for (const char* r : {"shelf_not_allowed", "rate_limited", "seq_backwards", "invalid", "unavailable"}) {
    EXPECT_EQ(delta(std::string("bffd_iot_telemetry_rejected_total{reason=\"") + r + "\"}"), 0) << r;
  }
  EXPECT_EQ(delta(answered_ok), 1);
  EXPECT_EQ(delta(answered_err), 2);
  EXPECT_EQ(delta("bffd_mqtt_messages_received_total{kind=\"telemetry\",outcome=\"unacknowledged\"}"), 0);
  EXPECT_EQ(delta("bffd_mqtt_messages_published_total{kind=\"ack\",outcome=\"ok\"}"), 1);
  EXPECT_EQ(delta("bffd_mqtt_messages_published_total{kind=\"error\",outcome=\"ok\"}"), 2);
  EXPECT_EQ(delta("bffd_mqtt_messages_published_total{kind=\"error\",outcome=\"failed\"}"), 0);
  EXPECT_EQ(delta("bffd_auth_failures_total{client=\"iot\",reason=\"unauthenticated\"}"), 1);
  EXPECT_EQ(delta("bffd_rate_limited_total{client=\"iot\"}"), 0);
  EXPECT_EQ(delta("bffd_iot_stock_queries_total{kind=\"shelf\"}"), 1);
  EXPECT_EQ(delta("bffd_coap_requests_total{resource=\"s\",code=\"2.05\"}"), 1);
  EXPECT_EQ(Get(after, "bffd_iot_stock_flags_cached_shelves"), 1);
  EXPECT_TRUE(WaitFor([&] { return Get(Scrape(), "bffd_mqtt_messages_in_flight") == 0; }, 10s)) << "every message is answered";
  EXPECT_EQ(Get(after, "bffd_inventory_shelf_readings_queued"), 0) << "the accepted reading was committed";
  EXPECT_EQ(delta("bffd_mqtt_connection_losses_total"), 0);
}

}  // namespace
}  // namespace bff::testing
