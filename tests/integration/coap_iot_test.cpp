// The IoT BFF over CoAP in a real bffd, with libcoap's coap-client as the device: readings reach the
// web page, an MQTT device's reading reaches a CoAP observer, DTLS-PSK end to end.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <sstream>
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

// A confirmable CoAP GET built by hand: one Uri-Path option per segment, then Uri-Query options.
std::string CoapGetDatagram(uint16_t message_id, const std::vector<std::string>& path,
                            const std::vector<std::string>& query) {
  std::string d;
  d += static_cast<char>(0x40);  // version 1, CON, no token
  d += static_cast<char>(0x01);  // 0.01 GET
  d += static_cast<char>(message_id >> 8);
  d += static_cast<char>(message_id & 0xff);
  int last = 0;
  auto option = [&](int number, const std::string& value) {
    int delta = number - last;
    last = number;
    // Every value here is shorter than 13 bytes... except query strings: use the 1-byte extension.
    if (value.size() < 13) {
      d += static_cast<char>((delta << 4) | static_cast<int>(value.size()));
    } else {
      d += static_cast<char>((delta << 4) | 13);
      d += static_cast<char>(value.size() - 13);
    }
    d += value;
  };
  for (const auto& p : path) option(11, p);
  for (const auto& q : query) option(15, q);
  return d;
}

// Thousands of datagrams from 200 source addresses that never read an answer (as spoofed ones do):
// garbage, wrong keys, unknown devices. A real device is still answered and bffd counts the refusals.
TEST_F(CoapIotTest, AFloodFromManySourcesNeverStopsARealDevice) {
  constexpr int kSources = 200;
  constexpr int kPerSource = 25;
  std::vector<int> socks;
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(bffd_->coap_port());
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < kSources; ++i) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in from{};
    from.sin_family = AF_INET;
    from.sin_addr.s_addr = htonl(0x7f000002 + i);  // 127.0.0.2 ...
    ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from), 0) << std::strerror(errno);
    socks.push_back(fd);
  }
  uint16_t mid = 1;
  for (int round = 0; round < kPerSource; ++round) {
    for (int i = 0; i < kSources; ++i) {
      std::string d;
      switch (round % 3) {
        case 0: d = std::string("\xff\x00garbage", 9); break;
        case 1: d = CoapGetDatagram(mid, {"s", shelf_only_.shelf_id}, {"d=sensor-c", "k=" + std::string(32, '0')}); break;
        default: d = CoapGetDatagram(mid, {"s", shelf_only_.shelf_id}, {"d=ghost-" + std::to_string(i), "k=" + coap_key_}); break;
      }
      ++mid;
      sendto(socks[i], d.data(), d.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
    }
  }
  // The real device, while the flood's retransmissions are still in flight.
  auto t0 = std::chrono::steady_clock::now();
  std::vector<Response> r = Coap({"-m", "get", CoapUri("/s/" + shelf_only_.shelf_id + "?d=sensor-c&k=" + coap_key_)});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].code, "2.05");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
  std::vector<Response> post = Coap({"-m", "post", "-f", ReadingFile("sensor-c", 1, 3), CoapUri("/t?k=" + coap_key_)});
  ASSERT_EQ(post.size(), 1u);
  EXPECT_EQ(post[0].code, "2.04");
  for (int fd : socks) close(fd);

  // Every refused request was counted as 4.01, none crashed the daemon.
  bool counted = WaitFor(
      [&] {
        auto m = http_.Get(bffd_->admin_url(), "/metrics");
        if (!m.ok()) return false;
        double refused = 0;
        std::istringstream in(m->body);
        for (std::string line; std::getline(in, line);) {
          if (line.rfind("bffd_coap_requests_total{", 0) == 0 && line.find("code=\"4.01\"") != std::string::npos) {
            refused += std::stod(line.substr(line.rfind(' ') + 1));
          }
        }
        return refused >= kSources * (kPerSource / 3) * 2 * 0.9;  // lost datagrams aside
      },
      20s);
  EXPECT_TRUE(counted) << "the flood's wrong keys and unknown devices are counted as 4.01";
  EXPECT_TRUE(bffd_->process().running());
}

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
