// Every bad-input case of docs/iot.md's table, sent to a real bffd over both protocols by outside
// clients (mosquitto_pub/sub through a real mosquitto, libcoap's coap-client over UDP and DTLS): each
// gets the documented answer in the protocol's own terms, and the daemon goes on serving.
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
constexpr char kShelfA[] = "shelf-01-01";
constexpr char kShelfB[] = "shelf-01-02";
constexpr uint64_t kTs = 1790000000;

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

// msgpack by hand, so a case can hold exactly the bytes it is about.
std::string Str(const std::string& s) {
  if (s.size() < 32) return std::string(1, static_cast<char>(0xa0 | s.size())) + s;
  return std::string("\xd9", 1) + static_cast<char>(s.size()) + s;
}
std::string U64(uint64_t v) {
  std::string out("\xcf", 1);
  for (int shift = 56; shift >= 0; shift -= 8) out += static_cast<char>((v >> shift) & 0xff);
  return out;
}
using Entries = std::vector<std::pair<std::string, std::string>>;  // key → encoded value
std::string Map(const Entries& entries) {
  std::string out(1, static_cast<char>(0x80 | entries.size()));
  for (const auto& [k, v] : entries) out += Str(k) + v;
  return out;
}

// A valid reading's entries ("k" only when the key travels in the payload, as on MQTT).
Entries Reading(const std::string& device, const std::string& shelf, uint64_t seq, const std::string& key = "") {
  Entries e = {{"d", Str(device)}, {"sh", Str(shelf)}, {"q", U64(seq)}, {"t", U64(kTs + seq)},
               {"r", std::string("\x91\x92\x00\x05", 4)}, {"b", std::string("\x57", 1)}};
  if (!key.empty()) e.emplace_back("k", Str(key));
  return e;
}
Entries Without(Entries e, const std::string& key) {
  std::erase_if(e, [&](const auto& kv) { return kv.first == key; });
  return e;
}
Entries With(Entries e, const std::string& key, const std::string& value) {
  e = Without(std::move(e), key);
  e.emplace_back(key, value);
  return e;
}

// The "e" of an error map, -1 when the bytes are not one.
int ErrorCode(const std::string& bytes) { return ErrorCodeOf(bytes); }

class IotBadInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access("/usr/sbin/mosquitto", X_OK) != 0 || access(kCoapClient, X_OK) != 0) {
      GTEST_SKIP() << "mosquitto or coap-client-openssl is not installed";
    }
    key_a_ = AddKey("sensor-a", kShelfA, "--rate 100 --burst 200");
    key_b_ = AddKey("sensor-b", kShelfB, "--rate 100 --burst 200");
    key_r_ = AddKey("sensor-r", kShelfA, "--rate 100 --burst 200");
    key_slow_ = AddKey("sensor-slow", kShelfA, "--rate 0.01 --burst 1");
    broker_ = std::make_unique<MosquittoProcess>(dir_.path(), dir_.path() + "/broker");
    ASSERT_TRUE(broker_->ready());
    std::ofstream(dir_.path() + "/bffd.toml")
        << "[iot]\ndemo_fleet = 0\ninventory_timeout_ms = 500\n[domain]\npassword_iterations = 1000\n";
    bffd_ = std::make_unique<BffdProcess>(
        dir_.path(), std::vector<std::string>{"--config", dir_.path() + "/bffd.toml", "--mqtt", broker_->uri()});
    ASSERT_TRUE(bffd_->ready()) << bffd_->process().Stderr();
    ASSERT_NE(bffd_->coap_port(), 0);
    ASSERT_NE(bffd_->coaps_port(), 0);
    ASSERT_TRUE(WaitFor([&] { return Log().find("mqtt: connected and subscribed") != std::string::npos; }, 20s)) << Log();
  }

  std::string Log() { return bffd_->process().Stderr(); }

  std::string AddKey(const std::string& device, const std::string& shelf, const std::string& flags) {
    std::string out;
    EXPECT_EQ(RunCommand(BinPath("bffd") + " keys add " + device + " --shelf " + shelf + " " + flags + " --data " + dir_.path(), &out), 0);
    return Trim(out);
  }

  std::string File(const std::string& bytes) {
    std::string path = dir_.path() + "/payload-" + std::to_string(++files_) + ".bin";
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }

  // --- MQTT: a device publishes on its own telemetry topic and reads its own replies.

  // Every reply to `device` (topic and payload), one per line as "topic hex".
  std::unique_ptr<ChildProcess> Replies(const std::string& device, const std::string& key) {
    return std::make_unique<ChildProcess>(
        "/usr/bin/mosquitto_sub",
        std::vector<std::string>{"-h", "127.0.0.1", "-p", std::to_string(broker_->port()), "-u", device, "-P", key, "-t",
                                 "iot/v1/" + device + "/#", "-q", "1", "-F", "%t %x", "-V", "mqttv5"},
        dir_.path());
  }

  int Publish(const std::string& device, const std::string& key, const std::string& subtopic, const std::string& bytes) {
    return RunCommand("/usr/bin/mosquitto_pub -h 127.0.0.1 -p " + std::to_string(broker_->port()) + " -u " + device + " -P " + key +
                          " -q 1 -V mqttv5 -t iot/v1/" + device + "/" + subtopic + " -f " + File(bytes) + " 2>&1",
                      nullptr);
  }

  // Publishes and returns the next reply's (topic suffix, payload); publishing again while nothing
  // came (the subscriber may still be connecting; every case here is safe to repeat).
  std::pair<std::string, std::string> Exchange(ChildProcess& replies, const std::string& device, const std::string& key,
                                               const std::string& subtopic, const std::string& bytes) {
    size_t seen = Lines(replies).size();
    for (int attempt = 0; attempt < 20; ++attempt) {
      Publish(device, key, subtopic, bytes);
      if (WaitFor([&] { return Lines(replies).size() > seen; }, 1s)) break;
    }
    std::vector<std::string> lines = Lines(replies);
    if (lines.size() <= seen) return {};
    const std::string& line = lines[seen];
    std::string topic = line.substr(0, line.find(' '));
    std::string payload;
    HexDecode(line.substr(line.find(' ') + 1), &payload);
    return {topic.substr(topic.rfind('/') + 1), payload};
  }

  static std::vector<std::string> Lines(ChildProcess& p) {
    std::vector<std::string> out;
    std::istringstream in(p.Stdout());
    for (std::string line; std::getline(in, line);) {
      if (!Trim(line).empty()) out.push_back(Trim(line));
    }
    return out;
  }

  // --- CoAP: coap-client as the device.

  Response Coap(std::vector<std::string> args) {
    args.insert(args.begin(), {"-v", "7", "-B", "10"});
    ChildProcess p(kCoapClient, args, dir_.path());
    EXPECT_EQ(p.Wait(60s), 0);
    std::vector<Response> responses = ParseResponses(p.Stdout());
    EXPECT_EQ(responses.size(), 1u) << p.Stdout();
    return responses.empty() ? Response{} : responses.back();
  }
  Response CoapPost(const std::string& bytes, const std::string& key) {
    return Coap({"-m", "post", "-f", File(bytes), "coap://127.0.0.1:" + std::to_string(bffd_->coap_port()) + "/t?k=" + key});
  }
  Response CoapsPost(const std::string& bytes, const std::string& identity, const std::string& key) {
    return Coap({"-m", "post", "-u", identity, "-k", key, "-f", File(bytes),
                 "coaps://127.0.0.1:" + std::to_string(bffd_->coaps_port()) + "/t"});
  }
  Response CoapGet(const std::string& path) {
    return Coap({"-m", "get", "coap://127.0.0.1:" + std::to_string(bffd_->coap_port()) + path});
  }

  TempDir dir_;
  std::string key_a_, key_b_, key_r_, key_slow_;
  std::unique_ptr<MosquittoProcess> broker_;
  std::unique_ptr<BffdProcess> bffd_;
  int files_ = 0;
};

// One row of the table: bytes that must be refused with `code` on both protocols.
struct BadPayload {
  const char* what;
  std::string mqtt;  // as sensor-a publishes it (key inside)
  std::string coap;  // as sensor-a posts it (key in the query)
  int code;
};

TEST_F(IotBadInputTest, EachBadPayloadGetsItsErrorOnBothProtocolsAndTheDaemonGoesOn) {
  std::string big(2000, '\x90');
  std::string bomb = std::string(40, '\x91') + "\x01";
  auto both = [&](const char* what, const std::function<Entries(Entries)>& change, int code) {
    return BadPayload{what, Map(change(Reading("sensor-a", kShelfA, 7, key_a_))), Map(change(Reading("sensor-a", kShelfA, 7))), code};
  };
  std::vector<BadPayload> cases = {
      {"malformed msgpack", "\xc1", "\xc1", 400},
      {"trailing bytes", Map(Reading("sensor-a", kShelfA, 7, key_a_)) + '\0', Map(Reading("sensor-a", kShelfA, 7)) + '\0', 400},
      {"not a map", "\x93\x01\x02\x03", "\x93\x01\x02\x03", 400},
      both("wrong type: seq as a string", [](Entries e) { return With(e, "q", Str("seven")); }, 400),
      both("out of range: battery 200 %", [](Entries e) { return With(e, "b", "\xcc\xc8"); }, 400),
      both("missing key: no readings", [](Entries e) { return Without(e, "r"); }, 400),
      both("bad id: shelf a/b", [](Entries e) { return With(e, "sh", Str("a/b")); }, 400),
      both("nesting deeper than 4 in an unknown key", [&](Entries e) { return With(e, "x", bomb); }, 400),
      both("wrong key", [](Entries e) { return With(e, "k", Str(std::string(32, '0'))); }, 401),
      both("shelf not allowed", [](Entries e) { return With(e, "sh", Str(kShelfB)); }, 403),
      {"over 1 KiB", big, big, 413},
      // Length prefixes that promise more than the datagram holds: refused without allocating them.
      {"map32 of 4 billion entries", std::string("\xdf\xff\xff\xff\xff\xa1q", 7), std::string("\xdf\xff\xff\xff\xff\xa1q", 7), 400},
      both("str32 of 4 GiB as the shelf", [](Entries e) { return With(e, "sh", std::string("\xdb\xff\xff\xff\xff" "ab", 7)); }, 400),
      both("array32 of 4 billion readings", [](Entries e) { return With(e, "r", std::string("\xdd\xff\xff\xff\xff\x90", 6)); }, 400),
      both("invalid UTF-8 in the shelf id", [](Entries e) { return With(e, "sh", Str("shelf-\xc3\x28")); }, 400),
  };
  // On CoAP the wrong key travels in the query, not the payload.
  cases[8].coap = Map(Reading("sensor-a", kShelfA, 7));
  auto replies = Replies("sensor-a", key_a_);
  for (const BadPayload& c : cases) {
    auto [topic, payload] = Exchange(*replies, "sensor-a", key_a_, "telemetry", c.mqtt);
    EXPECT_EQ(topic, "error") << c.what;
    EXPECT_EQ(ErrorCode(payload), c.code) << c.what << ": " << HexEncode(payload);
    Response r = CoapPost(c.coap, c.code == 401 ? std::string(32, '0') : key_a_);
    EXPECT_EQ(r.code, std::to_string(c.code / 100) + "." + std::to_string(c.code % 100 / 10) + std::to_string(c.code % 10))
        << c.what;
    EXPECT_EQ(ErrorCodeOf(r.body), c.code) << c.what << ": the body is the error map";
  }
  // Unknown keys are ignored, and after all of that the same device is served as usual.
  auto [topic, ack] = Exchange(*replies, "sensor-a", key_a_, "telemetry", Map(With(Reading("sensor-a", kShelfA, 8, key_a_), "zz", Str("new"))));
  EXPECT_EQ(topic, "ack") << HexEncode(ack);
  Response ok = CoapPost(Map(With(Reading("sensor-a", kShelfA, 9), "zz", Str("new"))), key_a_);
  EXPECT_EQ(ok.code, "2.04");
  EXPECT_TRUE(bffd_->process().running());
}

TEST_F(IotBadInputTest, WhoIsAskingIsCheckedOnBothProtocols) {
  auto replies = Replies("sensor-a", key_a_);
  // A payload naming another device than the sender: MQTT knows the sender from its topic, CoAPS from
  // the DTLS identity.
  auto [topic, err] = Exchange(*replies, "sensor-a", key_a_, "telemetry", Map(Reading("sensor-b", kShelfA, 1, key_a_)));
  EXPECT_EQ(topic, "error");
  EXPECT_EQ(ErrorCode(err), 403);
  Response dtls = CoapsPost(Map(Reading("sensor-b", kShelfA, 1)), "sensor-a", key_a_);
  EXPECT_EQ(dtls.code, "4.03");
  // An unknown device: the broker does not let it in at all; over CoAP the answer is 4.01.
  EXPECT_NE(Publish("sensor-ghost", key_a_, "telemetry", Map(Reading("sensor-ghost", kShelfA, 1, key_a_))), 0)
      << "mosquitto refuses an unknown user";
  Response ghost = CoapPost(Map(Reading("sensor-ghost", kShelfA, 1)), key_a_);
  EXPECT_EQ(ghost.code, "4.01");
  EXPECT_EQ(ErrorCodeOf(ghost.body), 401);

  // A revoked key, without restart: refused by bffd on both (the broker's passwd was not re-exported).
  auto revoked = Replies("sensor-r", key_r_);
  auto [before, ack] = Exchange(*revoked, "sensor-r", key_r_, "telemetry", Map(Reading("sensor-r", kShelfA, 1, key_r_)));
  ASSERT_EQ(before, "ack");
  std::string out;
  ASSERT_EQ(RunCommand(BinPath("bffd") + " keys revoke sensor-r --data " + dir_.path() + " 2>&1", &out), 0) << out;
  bffd_->process().Signal(SIGHUP);
  ASSERT_TRUE(WaitFor([&] { return Log().find("reloading device keys") != std::string::npos; }));
  auto [after, refused] = Exchange(*revoked, "sensor-r", key_r_, "telemetry", Map(Reading("sensor-r", kShelfA, 2, key_r_)));
  EXPECT_EQ(after, "error");
  EXPECT_EQ(ErrorCode(refused), 401);
  EXPECT_EQ(CoapPost(Map(Reading("sensor-r", kShelfA, 3)), key_r_).code, "4.01");
  // A revoked device cannot even finish a DTLS handshake: coap-client gets no response at all.
  ChildProcess handshake(kCoapClient,
                         {"-v", "7", "-B", "3", "-m", "post", "-u", "sensor-r", "-k", key_r_, "-f",
                          File(Map(Reading("sensor-r", kShelfA, 4))),
                          "coaps://127.0.0.1:" + std::to_string(bffd_->coaps_port()) + "/t"},
                         dir_.path());
  handshake.Wait(60s);
  EXPECT_TRUE(ParseResponses(handshake.Stdout()).empty()) << handshake.Stdout();
  // Keys never reach the log.
  for (const std::string& k : {key_a_, key_b_, key_r_}) EXPECT_EQ(Log().find(k), std::string::npos);
}

TEST_F(IotBadInputTest, SeqGoingBackwardsIsRefusedButALateRetryIsTaken) {
  auto replies = Replies("sensor-a", key_a_);
  ASSERT_EQ(Exchange(*replies, "sensor-a", key_a_, "telemetry", Map(Reading("sensor-a", kShelfA, 5000, key_a_))).first, "ack");
  EXPECT_EQ(Exchange(*replies, "sensor-a", key_a_, "telemetry", Map(Reading("sensor-a", kShelfA, 4990, key_a_))).first, "ack")
      << "an earlier reading retried late";
  auto [topic, err] = Exchange(*replies, "sensor-a", key_a_, "telemetry", Map(Reading("sensor-a", kShelfA, 1, key_a_)));
  EXPECT_EQ(topic, "error");
  EXPECT_EQ(ErrorCode(err), 400);
  Response r = CoapPost(Map(Reading("sensor-a", kShelfA, 2)), key_a_);
  EXPECT_EQ(r.code, "4.00");
  EXPECT_NE(r.body.find("backwards"), std::string::npos);
}

TEST_F(IotBadInputTest, OneBucketPerKeyAcrossMqttAndCoap) {
  // Burst 1: the MQTT reading takes the only token, the CoAP one that follows is refused.
  auto replies = Replies("sensor-slow", key_slow_);
  ASSERT_EQ(Exchange(*replies, "sensor-slow", key_slow_, "telemetry", Map(Reading("sensor-slow", kShelfA, 1, key_slow_))).first,
            "ack");
  Response r = CoapPost(Map(Reading("sensor-slow", kShelfA, 2)), key_slow_);
  EXPECT_EQ(r.code, "4.29");
  EXPECT_FALSE(r.Option("Max-Age").empty()) << r.options;
  EXPECT_EQ(ErrorCodeOf(r.body), 429);
  EXPECT_NE(r.body.find("\xa1r"), std::string::npos) << "the error map says when to retry";
  auto [topic, err] = Exchange(*replies, "sensor-slow", key_slow_, "telemetry", Map(Reading("sensor-slow", kShelfA, 3, key_slow_)));
  EXPECT_EQ(topic, "error");
  EXPECT_EQ(ErrorCode(err), 429);
}

TEST_F(IotBadInputTest, UnknownShelfOrSkuAndBadPathIds) {
  std::string q = "?d=sensor-a&k=" + key_a_;
  Response sku = CoapGet("/p/SKU-99999" + q);
  EXPECT_EQ(sku.code, "4.04");
  EXPECT_EQ(ErrorCodeOf(sku.body), 404);
  EXPECT_EQ(CoapGet("/s/shelf-99-99" + q).code, "4.03") << "a shelf the key does not list is refused before any lookup";
  EXPECT_EQ(CoapGet("/p/" + std::string(70, 'x') + q).code, "4.00") << "an id longer than 64";
  auto replies = Replies("sensor-a", key_a_);
  auto [topic, err] = Exchange(*replies, "sensor-a", key_a_, "stock/get", EncodeStockQuery({key_a_, "", "SKU-99999"}));
  EXPECT_EQ(topic, "error");
  EXPECT_EQ(ErrorCode(err), 404);
  auto [topic2, junk] = Exchange(*replies, "sensor-a", key_a_, "stock/get", "\xc1");
  EXPECT_EQ(topic2, "error");
  EXPECT_EQ(ErrorCode(junk), 400);
}

TEST_F(IotBadInputTest, InventoryUnreachableIsNotAcknowledgedAndTheRetryIs) {
  TestHttpClient http;
  HttpRequest put;
  put.method = "PUT";
  put.path = "/admin/v1/faults/inventory";
  put.body = R"({"down": true})";
  put.headers.Set("Content-Type", "application/json");
  auto set = http.Send(bffd_->admin_url(), put);
  ASSERT_TRUE(set.ok() && set->status == 200) << (set.ok() ? set->body : set.status().ToString());

  Response r = CoapPost(Map(Reading("sensor-a", kShelfA, 20)), key_a_);
  EXPECT_EQ(r.code, "5.03");
  EXPECT_FALSE(r.Option("Max-Age").empty()) << r.options;
  EXPECT_EQ(ErrorCodeOf(r.body), 503);

  // MQTT: silence. bffd logs the reading it did not acknowledge; nothing is published to the device.
  auto replies = Replies("sensor-a", key_a_);
  std::string reading = Map(Reading("sensor-a", kShelfA, 21, key_a_));
  ASSERT_TRUE(WaitFor(
      [&] {
        Publish("sensor-a", key_a_, "telemetry", reading);
        return Log().find(R"("seq":21)") != std::string::npos;
      },
      20s));
  HttpRequest clear;
  clear.method = "DELETE";
  clear.path = "/admin/v1/faults";
  ASSERT_TRUE(http.Send(bffd_->admin_url(), clear).ok());
  auto [topic, ack] = Exchange(*replies, "sensor-a", key_a_, "telemetry", reading);
  EXPECT_EQ(topic, "ack") << "the retry is acknowledged";
  for (const std::string& line : Lines(*replies)) {
    EXPECT_EQ(line.rfind("iot/v1/sensor-a/ack ", 0), 0u) << "nothing but acks reached the device: " << line;
  }
  EXPECT_EQ(CoapPost(Map(Reading("sensor-a", kShelfA, 20)), key_a_).code, "2.04") << "and the CoAP retry too";
}

}  // namespace
}  // namespace bff::testing
