// Tests for firmware-sim's links (MQTT, CoAP, CoAPS) against a real mosquitto and a real bffd: every answer
// kind a device can get, several readings outstanding at once, and Stop().
#include "firmware-sim/link.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "protocols/msgpack/iot_codec.h"
#include "support/test_support.h"

namespace bff::sim {
namespace {

using namespace std::chrono_literals;
using bff::testing::BinPath;
using bff::testing::ChildProcess;
using bff::testing::ReadFile;
using bff::testing::TempDir;
using bff::testing::WaitFor;
using Clock = std::chrono::steady_clock;

constexpr char kShelf[] = "shelf-01-01";
constexpr char kMosquitto[] = "/usr/sbin/mosquitto";
// One device per protocol and test, so that no test sees another's seqs, rate limit or session.
const char* const kDeviceRoles[] = {"ack", "key", "junk", "down", "many", "stop"};
const char* const kProtocols[] = {"mqtt", "coap", "coaps"};
constexpr auto kAnswerWait = 10s;

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

int RunCommand(const std::string& cmd, std::string* out) {
  FILE* f = popen(cmd.c_str(), "r");
  if (f == nullptr) return -1;
  char buf[4096];
  size_t n;
  out->clear();
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0) out->append(buf, n);
  int st = pclose(f);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

sockaddr_in Loopback(uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  return a;
}

uint16_t FreeTcpPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a = Loopback(0);
  socklen_t len = sizeof(a);
  uint16_t port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  close(fd);
  return port;
}

bool TcpPortOpen(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a = Loopback(port);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  close(fd);
  return ok;
}

// A UDP socket that receives and never answers: a CoAP server that is gone.
class SilentUdpPort {
 public:
  SilentUdpPort() : fd_(socket(AF_INET, SOCK_DGRAM, 0)) {
    sockaddr_in a = Loopback(0);
    socklen_t len = sizeof(a);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
        getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
      port_ = ntohs(a.sin_port);
    }
  }
  ~SilentUdpPort() { close(fd_); }
  SilentUdpPort(const SilentUdpPort&) = delete;
  SilentUdpPort& operator=(const SilentUdpPort&) = delete;
  uint16_t port() const { return port_; }

 private:
  int fd_;
  uint16_t port_ = 0;
};

// A CoAP server reduced to one answer: every confirmable message gets a piggybacked 2.04 with no body.
class TinyCoapServer {
 public:
  explicit TinyCoapServer(uint16_t port) : fd_(socket(AF_INET, SOCK_DGRAM, 0)) {
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in a = Loopback(port);
    bound_ = bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    if (bound_) thread_ = std::thread([this] { Serve(); });
  }
  ~TinyCoapServer() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
    close(fd_);
  }
  TinyCoapServer(const TinyCoapServer&) = delete;
  TinyCoapServer& operator=(const TinyCoapServer&) = delete;
  bool bound() const { return bound_; }
  int requests() const { return requests_.load(); }

 private:
  void Serve() {
    while (!stop_.load()) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      uint8_t buf[1500];
      sockaddr_in from{};
      socklen_t len = sizeof(from);
      ssize_t n = recvfrom(fd_, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &len);
      if (n < 4 || (buf[0] >> 6) != 1 || ((buf[0] >> 4) & 3) != 0) continue;
      size_t tkl = buf[0] & 0x0f;
      if (tkl > 8 || static_cast<size_t>(n) < 4 + tkl) continue;
      ++requests_;
      uint8_t reply[12];
      reply[0] = static_cast<uint8_t>(0x60 | tkl);  // version 1, ACK
      reply[1] = 0x44;                              // 2.04 Changed
      reply[2] = buf[2];
      reply[3] = buf[3];
      std::memcpy(reply + 4, buf + 4, tkl);
      sendto(fd_, reply, 4 + tkl, 0, reinterpret_cast<sockaddr*>(&from), len);
    }
  }

  int fd_;
  bool bound_ = false;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::thread thread_;
};

// Status code of one HTTP/1.1 request to 127.0.0.1:port (the admin listener), or -1.
int HttpStatus(uint16_t port, const std::string& method, const std::string& path, const std::string& body) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a = Loopback(port);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  if (!body.empty()) req += "Content-Type: application/json\r\n";
  req += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  for (size_t sent = 0; sent < req.size();) {
    ssize_t n = send(fd, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) {
      close(fd);
      return -1;
    }
    sent += static_cast<size_t>(n);
  }
  std::string response;
  char buf[4096];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) response.append(buf, static_cast<size_t>(n));
  close(fd);
  if (response.compare(0, 5, "HTTP/") != 0) return -1;
  size_t sp = response.find(' ');
  return sp == std::string::npos ? -1 : std::atoi(response.c_str() + sp + 1);
}

// The first JSON log line whose "msg" is `msg`, or null.
nlohmann::json LogLine(const std::string& log, const std::string& msg) {
  std::istringstream in(log);
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && j.value("msg", "") == msg) return j;
  }
  return nullptr;
}

uint16_t PortOf(const nlohmann::json& line, const char* field) {
  if (!line.is_object() || !line.contains(field) || !line[field].is_string()) return 0;
  std::string s = line[field].get<std::string>();
  return static_cast<uint16_t>(std::atoi(s.c_str() + s.rfind(':') + 1));
}

// mosquitto (config/mosquitto.conf, passwd and acl from the key store) and bffd on free loopback ports,
// with one provisioned device per protocol and role.
class Services {
 public:
  Services() {
    for (const char* proto : kProtocols) {
      for (const char* role : kDeviceRoles) {
        std::string device = DeviceName(proto, role);
        std::string out;
        if (RunCommand(BinPath("bffd") + " keys add " + device + " --shelf " + kShelf +
                           " --rate 100 --burst 200 --data " + dir_.path() + " 2>/dev/null",
                       &out) != 0) {
          error_ = "bffd keys add " + device + " failed: " + out;
          return;
        }
        keys_[device] = Trim(out);
      }
    }
    std::string broker = dir_.path() + "/broker";
    std::string out;
    if (RunCommand(BinPath("bffd") + " keys export-mosquitto " + broker + " --data " + dir_.path() + " 2>&1", &out) != 0) {
      error_ = "bffd keys export-mosquitto failed: " + out;
      return;
    }
    mqtt_port_ = FreeTcpPort();
    std::string conf = ReadFile(std::string(BFF_SOURCE_DIR) + "/config/mosquitto.conf");
    for (auto [from, to] : {std::pair<std::string, std::string>{"@PORT@", std::to_string(mqtt_port_)}, {"@DIR@", broker}}) {
      for (size_t p = conf.find(from); p != std::string::npos; p = conf.find(from)) conf.replace(p, from.size(), to);
    }
    // As root mosquitto would switch to its own user, which cannot read the temp dir.
    if (geteuid() == 0) conf += "\nuser root\n";
    std::ofstream(broker + "/mosquitto.conf") << conf;
    mosquitto_ = std::make_unique<ChildProcess>(kMosquitto, std::vector<std::string>{"-c", broker + "/mosquitto.conf"}, broker);
    if (!WaitFor([&] { return TcpPortOpen(mqtt_port_) || !mosquitto_->running(); }, 20s) || !mosquitto_->running()) {
      error_ = "mosquitto did not start: " + mosquitto_->Stderr();
      return;
    }
    std::ofstream(dir_.path() + "/bffd.toml")
        << "[iot]\ndemo_fleet = 0\ninventory_timeout_ms = 300\n[domain]\npassword_iterations = 1000\n";
    bffd_ = std::make_unique<ChildProcess>(
        BinPath("bffd"),
        std::vector<std::string>{"--config", dir_.path() + "/bffd.toml", "--data", dir_.path(), "--http", "127.0.0.1:0",
                                 "--admin", "127.0.0.1:0", "--coap", "127.0.0.1:0", "--coaps", "127.0.0.1:0", "--mqtt",
                                 "tcp://127.0.0.1:" + std::to_string(mqtt_port_)},
        dir_.path());
    bool ready = WaitFor(
        [&] {
          std::string log = bffd_->Stderr();
          nlohmann::json line = LogLine(log, "bffd ready");
          if (line.is_object()) {
            admin_port_ = PortOf(line, "admin");
            coap_port_ = PortOf(line, "coap");
            coaps_port_ = PortOf(line, "coaps");
          }
          bool mqtt = log.find("mqtt: connected and subscribed") != std::string::npos;
          return (admin_port_ != 0 && mqtt) || !bffd_->running();
        },
        60s);
    if (!ready || admin_port_ == 0 || coap_port_ == 0 || coaps_port_ == 0 || !bffd_->running()) {
      error_ = "bffd did not become ready: " + bffd_->Stderr();
    }
  }

  static std::string DeviceName(const std::string& proto, const std::string& role) { return "sim-" + proto + "-" + role; }

  const std::string& error() const { return error_; }
  DeviceIdentity Device(const std::string& proto, const std::string& role) const {
    std::string name = DeviceName(proto, role);
    auto it = keys_.find(name);
    return DeviceIdentity{name, kShelf, it == keys_.end() ? "" : it->second};
  }
  LinkOptions Options() const {
    LinkOptions o;
    o.mqtt_uri = "tcp://127.0.0.1:" + std::to_string(mqtt_port_);
    o.coap_address = "127.0.0.1:" + std::to_string(coap_port_);
    o.coaps_address = "127.0.0.1:" + std::to_string(coaps_port_);
    return o;
  }
  uint16_t admin_port() const { return admin_port_; }
  std::string bffd_log() const { return bffd_ ? bffd_->Stderr() : ""; }

 private:
  TempDir dir_;
  std::map<std::string, std::string> keys_;
  std::unique_ptr<ChildProcess> mosquitto_, bffd_;
  uint16_t mqtt_port_ = 0, admin_port_ = 0, coap_port_ = 0, coaps_port_ = 0;
  std::string error_;
};

// What one exchange's `done` saw: how often it ran, the first answer and when.
struct Outcome {
  std::mutex mu;
  std::condition_variable cv;
  int calls = 0;
  Answer answer;
  Clock::duration elapsed{};

  bool Wait(std::chrono::milliseconds timeout = kAnswerWait) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, timeout, [&] { return calls > 0; });
  }
  int Calls() {
    std::lock_guard<std::mutex> lock(mu);
    return calls;
  }
  std::chrono::milliseconds Elapsed() {
    std::lock_guard<std::mutex> lock(mu);
    return std::chrono::duration_cast<std::chrono::milliseconds>(elapsed);
  }
};

std::shared_ptr<Outcome> Send(Link& link, size_t index, uint64_t seq, std::string payload,
                              std::chrono::milliseconds timeout) {
  auto o = std::make_shared<Outcome>();
  Clock::time_point start = Clock::now();
  link.SendTelemetry(index, seq, std::move(payload), timeout, [o, start](Answer a) {
    std::lock_guard<std::mutex> lock(o->mu);
    if (++o->calls == 1) {
      o->answer = std::move(a);
      o->elapsed = Clock::now() - start;
    }
    o->cv.notify_all();
  });
  return o;
}

std::string Reading(const Link& link, const DeviceIdentity& d, uint64_t seq, std::optional<uint64_t> version = std::nullopt,
                    const std::string& key = "") {
  Telemetry t;
  t.device_id = d.device_id;
  t.shelf_id = d.shelf_id;
  t.seq = seq;
  t.ts = 1790000000 + seq;
  t.readings = {{0, 5}};
  t.battery_pct = 80;
  t.temp_decicelsius = 215;
  t.version = version;
  t.api_key = key.empty() ? d.key : key;
  return EncodeTelemetry(t, link.key_in_payload());
}

const char* KindName(AnswerKind k) {
  switch (k) {
    case AnswerKind::kAcknowledged: return "acknowledged";
    case AnswerKind::kRejected: return "rejected";
    case AnswerKind::kRetryLater: return "retry-later";
    case AnswerKind::kNoAnswer: return "no-answer";
  }
  return "?";
}

std::string Describe(const Answer& a) {
  return std::string(KindName(a.kind)) + " code=" + std::to_string(a.code) + " flags=" + std::to_string(a.flags.size()) +
         "B retry_after=" + std::to_string(a.retry_after_s);
}

StatusOr<std::unique_ptr<Link>> MakeLink(const std::string& proto, const LinkOptions& options) {
  if (proto == "mqtt") return MakeMqttLink(options);
  return MakeCoapLink(options, proto == "coaps");
}

// Inventory unreachable inside bffd's embedded domain until the guard goes.
class InventoryDown {
 public:
  explicit InventoryDown(uint16_t admin_port) : admin_port_(admin_port) {
    status_ = HttpStatus(admin_port_, "PUT", "/admin/v1/faults/inventory", R"({"down":true})");
  }
  ~InventoryDown() { Clear(); }
  InventoryDown(const InventoryDown&) = delete;
  InventoryDown& operator=(const InventoryDown&) = delete;
  int status() const { return status_; }
  // True once the faults are gone (bffd answers 204).
  bool Clear() {
    if (cleared_) return true;
    cleared_ = true;
    int status = HttpStatus(admin_port_, "DELETE", "/admin/v1/faults", "");
    return status >= 200 && status < 300;
  }

 private:
  uint16_t admin_port_;
  int status_ = -1;
  bool cleared_ = false;
};

class LinkTest : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    if (access(kMosquitto, X_OK) == 0) services_ = new Services();
  }
  static void TearDownTestSuite() {
    delete services_;
    services_ = nullptr;
  }

  void SetUp() override {
    if (services_ == nullptr) GTEST_SKIP() << "mosquitto is not installed";
    ASSERT_TRUE(services_->error().empty()) << services_->error();
  }

  const std::string& proto() const { return GetParam(); }
  DeviceIdentity Device(const std::string& role) const { return services_->Device(proto(), role); }

  std::unique_ptr<Link> StartLink(const std::vector<DeviceIdentity>& devices, const LinkOptions* options = nullptr) {
    auto made = MakeLink(proto(), options ? *options : services_->Options());
    EXPECT_TRUE(made.ok()) << made.status().ToString();
    if (!made.ok()) return nullptr;
    std::unique_ptr<Link> link = std::move(*made);
    EXPECT_EQ(link->protocol(), proto());
    EXPECT_EQ(link->key_in_payload(), proto() == "mqtt");
    Status s = link->Start(devices);
    EXPECT_TRUE(s.ok()) << s.ToString();
    // MQTT: every device logs in and subscribes before its first reading; CoAP counts all at once.
    EXPECT_TRUE(WaitFor([&] { return link->connected() == devices.size(); }, 20s))
        << link->connected() << " of " << devices.size() << " connected";
    return link;
  }

  static Services* services_;
};

Services* LinkTest::services_ = nullptr;

TEST_P(LinkTest, ReadingIsAcknowledgedWithFlagsAndAgainForTheSameSeq) {
  DeviceIdentity dev = Device("ack");
  auto link = StartLink({dev});
  ASSERT_TRUE(link);

  auto first = Send(*link, 0, 1, Reading(*link, dev, 1), 5s);
  ASSERT_TRUE(first->Wait());
  ASSERT_EQ(first->answer.kind, AnswerKind::kAcknowledged) << Describe(first->answer);
  EXPECT_EQ(first->answer.code, 204);
  auto flags = DecodeShelfFlags(first->answer.flags);
  ASSERT_TRUE(flags.ok()) << flags.status().ToString() << " (" << first->answer.flags.size() << " bytes)";
  EXPECT_FALSE(flags->second.empty());

  // A retransmission of the same reading: inventory is idempotent, the answer is the same.
  auto again = Send(*link, 0, 1, Reading(*link, dev, 1), 5s);
  ASSERT_TRUE(again->Wait());
  ASSERT_EQ(again->answer.kind, AnswerKind::kAcknowledged) << Describe(again->answer);
  auto again_flags = DecodeShelfFlags(again->answer.flags);
  ASSERT_TRUE(again_flags.ok()) << again_flags.status().ToString();

  // The same counts again with the version just seen: nothing changed, so no flags.
  auto current = Send(*link, 0, 2, Reading(*link, dev, 2, again_flags->first), 5s);
  ASSERT_TRUE(current->Wait());
  EXPECT_EQ(current->answer.kind, AnswerKind::kAcknowledged) << Describe(current->answer);
  EXPECT_TRUE(current->answer.flags.empty()) << current->answer.flags.size() << " bytes of flags";

  link->Stop();
  for (auto& o : {first, again, current}) EXPECT_EQ(o->Calls(), 1);
}

TEST_P(LinkTest, WrongKeyIsRefused) {
  DeviceIdentity dev = Device("key");
  const std::string wrong(32, '0');
  DeviceIdentity as_configured = dev;
  // MQTT logs in with the right key (the broker would refuse the login otherwise) and carries the wrong
  // one in the reading; CoAP carries the link's key in the query, CoAPS in the DTLS handshake.
  if (proto() != "mqtt") as_configured.key = wrong;
  auto link = StartLink({as_configured});
  ASSERT_TRUE(link);
  auto o = Send(*link, 0, 1, Reading(*link, dev, 1, std::nullopt, wrong), 3s);
  ASSERT_TRUE(o->Wait());
  if (proto() == "coaps") {
    // A PSK that does not match fails the handshake: no CoAP answer at all.
    EXPECT_EQ(o->answer.kind, AnswerKind::kNoAnswer) << Describe(o->answer);
  } else {
    EXPECT_EQ(o->answer.kind, AnswerKind::kRejected) << Describe(o->answer) << "\n" << services_->bffd_log();
    EXPECT_EQ(o->answer.code, 401);
  }
  link->Stop();
  EXPECT_EQ(o->Calls(), 1);
}

TEST_P(LinkTest, GarbageIsRejectedAndAGoodReadingBesideItIsNot) {
  DeviceIdentity dev = Device("junk");
  auto link = StartLink({dev});
  ASSERT_TRUE(link);
  // The good reading goes first: over MQTT the 400 carries no seq and must still find the garbage.
  auto good = Send(*link, 0, 1, Reading(*link, dev, 1), 5s);
  auto junk = Send(*link, 0, 2, std::string("\xc1\x00garbage", 9), 5s);
  ASSERT_TRUE(junk->Wait());
  ASSERT_TRUE(good->Wait());
  EXPECT_EQ(junk->answer.kind, AnswerKind::kRejected) << Describe(junk->answer);
  EXPECT_EQ(junk->answer.code, 400);
  EXPECT_EQ(good->answer.kind, AnswerKind::kAcknowledged) << Describe(good->answer);
  link->Stop();
  EXPECT_EQ(good->Calls(), 1);
  EXPECT_EQ(junk->Calls(), 1);
}

TEST_P(LinkTest, InventoryDownMeansRetryLaterOverCoapAndSilenceOverMqtt) {
  DeviceIdentity dev = Device("down");
  auto link = StartLink({dev});
  ASSERT_TRUE(link);
  constexpr auto kTimeout = 1500ms;
  std::shared_ptr<Outcome> o;
  {
    InventoryDown down(services_->admin_port());
    ASSERT_EQ(down.status(), 200);
    o = Send(*link, 0, 1, Reading(*link, dev, 1), kTimeout);
    ASSERT_TRUE(o->Wait());
    ASSERT_TRUE(down.Clear());
  }
  if (proto() == "mqtt") {
    EXPECT_EQ(o->answer.kind, AnswerKind::kNoAnswer) << Describe(o->answer);
    // The deadline, not something earlier, ended it.
    EXPECT_GE(o->Elapsed(), kTimeout - 50ms);
    EXPECT_LT(o->Elapsed(), kTimeout + 1s);
  } else {
    EXPECT_EQ(o->answer.kind, AnswerKind::kRetryLater) << Describe(o->answer);
    EXPECT_EQ(o->answer.code, 503);
    EXPECT_GT(o->answer.retry_after_s, 0);
  }
  // Inventory is back: the reading the device kept goes through.
  auto retry = Send(*link, 0, 1, Reading(*link, dev, 1), 5s);
  ASSERT_TRUE(retry->Wait());
  EXPECT_EQ(retry->answer.kind, AnswerKind::kAcknowledged) << Describe(retry->answer);
  link->Stop();
  EXPECT_EQ(o->Calls(), 1);
  EXPECT_EQ(retry->Calls(), 1);
}

TEST_P(LinkTest, TwentyReadingsOutstandingAtOnceAreAllAcknowledged) {
  DeviceIdentity dev = Device("many");
  auto link = StartLink({dev});
  ASSERT_TRUE(link);
  constexpr uint64_t kReadings = 20;
  std::vector<std::shared_ptr<Outcome>> outcomes;
  Clock::time_point start = Clock::now();
  for (uint64_t seq = 1; seq <= kReadings; ++seq) outcomes.push_back(Send(*link, 0, seq, Reading(*link, dev, seq), 8s));
  for (uint64_t i = 0; i < kReadings; ++i) {
    ASSERT_TRUE(outcomes[i]->Wait()) << "seq " << i + 1;
    EXPECT_EQ(outcomes[i]->answer.kind, AnswerKind::kAcknowledged) << "seq " << i + 1 << ": " << Describe(outcomes[i]->answer);
  }
  std::cout << "[ timing ] " << proto() << ": " << kReadings << " outstanding readings acknowledged in "
            << std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count() << " ms\n";
  link->Stop();
  for (auto& o : outcomes) EXPECT_EQ(o->Calls(), 1);
}

TEST_P(LinkTest, StopEndsPendingExchangesAndLaterCallsAtOnce) {
  DeviceIdentity dev = Device("stop");
  // Answers that never come: over MQTT inventory is down (bffd stays silent); over CoAP the server is a
  // socket that never replies.
  std::unique_ptr<InventoryDown> down;
  SilentUdpPort silent;
  LinkOptions options = services_->Options();
  if (proto() == "mqtt") {
    down = std::make_unique<InventoryDown>(services_->admin_port());
    ASSERT_EQ(down->status(), 200);
  } else {
    ASSERT_NE(silent.port(), 0);
    options.coap_address = options.coaps_address = "127.0.0.1:" + std::to_string(silent.port());
  }
  auto link = StartLink({dev}, &options);
  ASSERT_TRUE(link);

  if (proto() != "mqtt") {
    // Nothing answers: the deadline ends the exchange, not libcoap (which would give up seconds later).
    auto lost = Send(*link, 0, 1, Reading(*link, dev, 1), 400ms);
    ASSERT_TRUE(lost->Wait());
    EXPECT_EQ(lost->answer.kind, AnswerKind::kNoAnswer) << Describe(lost->answer);
    EXPECT_GE(lost->Elapsed(), 350ms);
  }

  std::vector<std::shared_ptr<Outcome>> pending;
  for (uint64_t seq = 2; seq <= 6; ++seq) pending.push_back(Send(*link, 0, seq, Reading(*link, dev, seq), 30s));
  for (auto& o : pending) EXPECT_EQ(o->Calls(), 0) << "answered before Stop: " << Describe(o->answer);
  Clock::time_point start = Clock::now();
  link->Stop();
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  EXPECT_LT(took, 6s);
  for (auto& o : pending) {
    EXPECT_EQ(o->Calls(), 1);
    EXPECT_EQ(o->answer.kind, AnswerKind::kNoAnswer) << Describe(o->answer);
  }
  link->Stop();  // idempotent

  auto after = Send(*link, 0, 7, Reading(*link, dev, 7), 30s);
  EXPECT_EQ(after->Calls(), 1) << "a call after Stop() ends before it returns";
  EXPECT_EQ(after->answer.kind, AnswerKind::kNoAnswer);
  if (down) {
    EXPECT_TRUE(down->Clear());
  }
}

INSTANTIATE_TEST_SUITE_P(Links, LinkTest, ::testing::Values("mqtt", "coap", "coaps"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

// Without a broker nothing can be answered: a reading ends at once instead of at its deadline, and the
// device keeps trying to connect in the background.
TEST(MqttLinkTest, NoBrokerMeansNoAnswerAtOnce) {
  uint16_t port = FreeTcpPort();
  ASSERT_NE(port, 0);
  LinkOptions options;
  options.mqtt_uri = "tcp://127.0.0.1:" + std::to_string(port);
  auto made = MakeMqttLink(options);
  ASSERT_TRUE(made.ok());
  std::unique_ptr<Link> link = std::move(*made);
  DeviceIdentity dev{"sim-nobroker", kShelf, std::string(32, 'a')};
  ASSERT_TRUE(link->Start({dev}).ok());
  EXPECT_EQ(link->connected(), 0u);
  Telemetry t;
  t.device_id = dev.device_id;
  t.shelf_id = kShelf;
  t.seq = 1;
  t.readings = {{0, 1}};
  auto o = Send(*link, 0, 1, EncodeTelemetry(t, true), 5s);
  ASSERT_TRUE(o->Wait());
  EXPECT_EQ(o->answer.kind, AnswerKind::kNoAnswer);
  EXPECT_LT(o->Elapsed(), 1s);
  link->Stop();
  EXPECT_EQ(o->Calls(), 1);
}

// More devices than first connections allowed in flight: each settled attempt lets the next device dial.
TEST(MqttLinkTest, EveryDeviceOfAFleetConnects) {
  if (access(kMosquitto, X_OK) != 0) GTEST_SKIP() << "mosquitto is not installed";
  TempDir dir;
  uint16_t port = FreeTcpPort();
  ASSERT_NE(port, 0);
  // A bare broker: any login is taken, so the fleet needs no key store.
  std::ofstream(dir.path() + "/mosquitto.conf") << "listener " << port << " 127.0.0.1\nallow_anonymous true\n"
                                                 << (geteuid() == 0 ? "user root\n" : "");
  ChildProcess broker(kMosquitto, {"-c", dir.path() + "/mosquitto.conf"}, dir.path());
  ASSERT_TRUE(WaitFor([&] { return TcpPortOpen(port) || !broker.running(); }, 20s) && broker.running()) << broker.Stderr();
  LinkOptions options;
  options.mqtt_uri = "tcp://127.0.0.1:" + std::to_string(port);
  auto made = MakeMqttLink(options);
  ASSERT_TRUE(made.ok());
  std::unique_ptr<Link> link = std::move(*made);
  constexpr size_t kFleet = 300;
  std::vector<DeviceIdentity> fleet;
  for (size_t i = 0; i < kFleet; ++i) fleet.push_back({"sim-fleet-" + std::to_string(i), kShelf, "k"});
  Clock::time_point start = Clock::now();
  ASSERT_TRUE(link->Start(fleet).ok());
  EXPECT_TRUE(WaitFor([&] { return link->connected() == kFleet; }, 30s)) << link->connected() << " of " << kFleet;
  std::cout << "[ timing ] mqtt: " << kFleet << " devices connected and subscribed in "
            << std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count() << " ms\n";
  link->Stop();
  EXPECT_EQ(link->connected(), 0u);
}

TEST(MqttLinkTest, BadUriFailsStart) {
  LinkOptions options;
  options.mqtt_uri = "nonsense://127.0.0.1:1";
  auto made = MakeMqttLink(options);
  if (!made.ok()) return;  // refused early is as good
  EXPECT_FALSE((*made)->Start({DeviceIdentity{"sim-baduri", kShelf, "k"}}).ok());
}

// A server that was not there (ICMP port unreachable) and then is: the device's next reading gets through.
TEST(CoapLinkTest, ServerComingBackIsReachedAgain) {
  uint16_t port = 0;
  {
    SilentUdpPort probe;  // a free UDP port, closed again at once
    port = probe.port();
  }
  ASSERT_NE(port, 0);
  LinkOptions options;
  options.coap_address = "127.0.0.1:" + std::to_string(port);
  auto made = MakeCoapLink(options, false);
  ASSERT_TRUE(made.ok());
  std::unique_ptr<Link> link = std::move(*made);
  DeviceIdentity dev{"sim-comeback", kShelf, std::string(32, 'c')};
  ASSERT_TRUE(link->Start({dev}).ok());
  auto lost = Send(*link, 0, 1, "x", 1s);
  ASSERT_TRUE(lost->Wait());
  EXPECT_EQ(lost->answer.kind, AnswerKind::kNoAnswer) << Describe(lost->answer);
  std::cout << "[ timing ] coap: no server, no answer after " << lost->Elapsed().count() << " ms\n";

  TinyCoapServer server(port);
  ASSERT_TRUE(server.bound());
  auto back = Send(*link, 0, 2, "x", 3s);
  ASSERT_TRUE(back->Wait());
  EXPECT_EQ(back->answer.kind, AnswerKind::kAcknowledged) << Describe(back->answer);
  EXPECT_EQ(back->answer.code, 204);
  EXPECT_TRUE(back->answer.flags.empty());
  EXPECT_GE(server.requests(), 1);
  link->Stop();
  EXPECT_EQ(lost->Calls(), 1);
  EXPECT_EQ(back->Calls(), 1);
}

TEST(CoapLinkTest, BadAddressFailsStart) {
  for (bool dtls : {false, true}) {
    LinkOptions options;
    options.coap_address = options.coaps_address = "no-port-here";
    auto made = MakeCoapLink(options, dtls);
    if (!made.ok()) continue;
    EXPECT_FALSE((*made)->Start({DeviceIdentity{"sim-badaddr", kShelf, "k"}}).ok()) << (dtls ? "coaps" : "coap");
  }
}

}  // namespace
}  // namespace bff::sim
