// "One wake, one exchange, nothing lost" (CONTRACT.md section 4) with real processes: shelf sensors keep reporting
// over MQTT and CoAP while the broker, bffd or inventory fail, and afterwards every reading is acknowledged and
// stored in inventory exactly once.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include <mqtt/async_client.h>
#include <msgpack.hpp>
#include <nlohmann/json.hpp>

#include "common/crypto.h"
#include "domain/seed.h"
#include "protocols/msgpack/iot_codec.h"
#include "support/processes.h"

namespace bff::testing {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr int kMqttDevices = 5;
constexpr int kCoapDevices = 2;
constexpr auto kReadingEvery = 50ms;  // 20 readings a second per device
constexpr auto kTick = 5ms;           // how often a device looks at its clock
// Devices send their readings oldest first with a few awaiting an answer over MQTT (QoS 1 pipelines), one at a
// time over CoAP (one CON exchange). A reading not acknowledged in time is sent again with the same seq; the MQTT
// timeout stays above the ack latency of a loaded machine so that resends mean loss, not slowness.
constexpr size_t kMqttWindow = 8;
constexpr auto kMqttResendAfter = 2s;
constexpr auto kCoapResendAfter = 1s;
// 5.03 carries Max-Age = 30 s; the devices here wait at most this long so that a test stays short.
constexpr auto kMaxRetryWait = 500ms;
constexpr uint64_t kTsBase = 1790000000;
constexpr int kInventoryTimeoutMs = 300;  // iot.inventory_timeout_ms: a hanging inventory is noticed quickly

// Slots and quantities derived from the seq, so that a stored row can be checked against what was sent.
std::vector<std::pair<uint32_t, uint32_t>> ReadingsFor(uint64_t seq) {
  return {{static_cast<uint32_t>(seq % 24), static_cast<uint32_t>(seq % 41)},
          {static_cast<uint32_t>((seq + 12) % 24), static_cast<uint32_t>((seq * 7) % 41)}};
}

// The value of `key` in a msgpack map, or nullopt.
std::optional<msgpack::object> MapValue(const msgpack::object& o, const std::string& key) {
  if (o.type != msgpack::type::MAP) return std::nullopt;
  for (uint32_t i = 0; i < o.via.map.size; ++i) {
    const auto& kv = o.via.map.ptr[i];
    if (kv.key.type == msgpack::type::STR && std::string(kv.key.via.str.ptr, kv.key.via.str.size) == key) return kv.val;
  }
  return std::nullopt;
}

// An error map {"e", "m", "r"} as "e m" for diagnostics; the raw hex when it is not one.
std::string DescribeError(const std::string& bytes) {
  try {
    msgpack::object_handle oh = msgpack::unpack(bytes.data(), bytes.size());
    auto e = MapValue(oh.get(), "e");
    auto m = MapValue(oh.get(), "m");
    std::string out = e && e->type == msgpack::type::POSITIVE_INTEGER ? std::to_string(e->via.u64) : "?";
    if (m && m->type == msgpack::type::STR) out += " " + std::string(m->via.str.ptr, m->via.str.size);
    return out;
  } catch (const std::exception&) {
    return HexEncode(bytes);
  }
}

// What one device did and saw, for the assertions.
struct Ledger {
  std::string device, shelf;
  std::map<uint64_t, Clock::time_point> created;  // every reading the device made
  std::map<uint64_t, Clock::time_point> acked;    // when each was first acknowledged
  std::vector<uint64_t> left;                     // still unacknowledged
  std::vector<std::string> errors;                // error maps or unexpected answers
  uint64_t sends = 0, resends = 0, acked_after_resend = 0, unavailable = 0, unavailable_without_max_age = 0;
  double ack_p50_ms = 0;  // of readings acknowledged at the first attempt
};

// A shelf sensor's memory: readings are made at a fixed pace, kept until acknowledged, sent oldest first, at most
// `window` of them awaiting an answer, and sent again (same seq) when no answer came in time.
class Device {
 public:
  Device(std::string id, std::string shelf, std::string key, size_t window, Clock::duration resend_after)
      : id_(std::move(id)), shelf_(std::move(shelf)), key_(std::move(key)), window_(window), resend_after_(resend_after) {}
  virtual ~Device() = default;
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  const std::string& id() const { return id_; }
  virtual int fd() const { return -1; }
  // Reads whatever arrived on the device's own socket (CoAP).
  virtual void Poll() {}

  void Step(Clock::time_point now, bool produce) {
    std::vector<uint64_t> due;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (produce && now >= next_reading_) {
        uint64_t seq = next_seq_++;
        created_[seq] = now;
        pending_[seq] = {};
        // Paced from now: a loop woken late on a loaded machine never bursts to catch up.
        next_reading_ = now + kReadingEvery;
      }
      size_t awaiting = 0;
      for (auto& [seq, p] : pending_) {
        if (awaiting >= window_) break;
        if (p.sent && now - p.last_sent < resend_after_) {
          ++awaiting;
          continue;
        }
        if (now < hold_until_) break;
        p.sent = true;
        p.last_sent = now;
        due.push_back(seq);
        ++awaiting;
      }
    }
    for (uint64_t seq : due) {
      bool out = Send(Make(seq));
      std::lock_guard<std::mutex> lock(mu_);
      auto it = pending_.find(seq);
      if (it == pending_.end()) continue;  // answered already
      if (!out) {
        // Not connected: the reading stays and goes out at a later step.
        it->second.sent = false;
        continue;
      }
      (it->second.attempts++ > 0 ? resends_ : sends_) += 1;
    }
  }

  size_t pending() const {
    std::lock_guard<std::mutex> lock(mu_);
    return pending_.size();
  }
  uint64_t resends() const {
    std::lock_guard<std::mutex> lock(mu_);
    return resends_;
  }
  uint64_t unavailable() const {
    std::lock_guard<std::mutex> lock(mu_);
    return unavailable_;
  }
  // Readings made at or after `since` that have been acknowledged.
  size_t AckedMadeSince(Clock::time_point since) const {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = 0;
    for (auto& [seq, at] : acked_) n += created_.at(seq) >= since ? 1 : 0;
    return n;
  }
  size_t MadeSince(Clock::time_point since) const {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = 0;
    for (auto& [seq, at] : created_) n += at >= since ? 1 : 0;
    return n;
  }

  Ledger Snapshot() const {
    std::lock_guard<std::mutex> lock(mu_);
    Ledger l;
    l.device = id_;
    l.shelf = shelf_;
    l.created = created_;
    l.acked = acked_;
    for (auto& [seq, p] : pending_) l.left.push_back(seq);
    l.errors = errors_;
    l.sends = sends_;
    l.resends = resends_;
    l.acked_after_resend = acked_after_resend_;
    if (!first_try_ms_.empty()) {
      std::vector<double> sorted = first_try_ms_;
      std::nth_element(sorted.begin(), sorted.begin() + static_cast<long>(sorted.size() / 2), sorted.end());
      l.ack_p50_ms = sorted[sorted.size() / 2];
    }
    l.unavailable = unavailable_;
    l.unavailable_without_max_age = unavailable_without_max_age_;
    return l;
  }

 protected:
  // Hands one reading to the transport; false when it cannot go out now.
  virtual bool Send(const Telemetry& t) = 0;

  Telemetry Make(uint64_t seq) const {
    Telemetry t;
    t.device_id = id_;
    t.shelf_id = shelf_;
    t.seq = seq;
    t.ts = kTsBase + seq;
    t.readings = ReadingsFor(seq);
    t.battery_pct = 80;
    t.temp_decicelsius = 210;
    t.api_key = key_;
    return t;
  }

  void Acked(uint64_t seq) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!created_.count(seq)) {
      errors_.push_back("ack for a seq never sent: " + std::to_string(seq));
      return;
    }
    acked_.emplace(seq, Clock::now());
    if (auto it = pending_.find(seq); it != pending_.end()) {
      if (it->second.attempts == 1) {
        first_try_ms_.push_back(std::chrono::duration<double, std::milli>(Clock::now() - it->second.last_sent).count());
      } else {
        ++acked_after_resend_;
      }
    }
    pending_.erase(seq);
  }

  // Not acknowledged, with a hint to wait (CoAP 5.03): the reading is sent again after the wait.
  void NotAcked(uint64_t seq, std::optional<uint32_t> max_age_s) {
    std::lock_guard<std::mutex> lock(mu_);
    ++unavailable_;
    if (!max_age_s || *max_age_s == 0) ++unavailable_without_max_age_;
    auto wait = max_age_s ? std::min<Clock::duration>(std::chrono::seconds(*max_age_s), kMaxRetryWait) : kMaxRetryWait;
    hold_until_ = Clock::now() + wait;
    if (auto it = pending_.find(seq); it != pending_.end()) it->second.sent = false;
  }

  void Error(std::string what) {
    std::lock_guard<std::mutex> lock(mu_);
    errors_.push_back(std::move(what));
  }

  const std::string id_, shelf_, key_;

 private:
  struct Pending {
    bool sent = false;  // and awaiting an answer
    int attempts = 0;
    Clock::time_point last_sent{};
  };
  const size_t window_;
  const Clock::duration resend_after_;
  mutable std::mutex mu_;
  uint64_t next_seq_ = 1;
  Clock::time_point next_reading_{};
  Clock::time_point hold_until_{};
  std::map<uint64_t, Clock::time_point> created_, acked_;
  std::map<uint64_t, Pending> pending_;
  std::vector<std::string> errors_;
  std::vector<double> first_try_ms_;  // ack latency of readings acknowledged at the first attempt
  uint64_t acked_after_resend_ = 0;
  uint64_t sends_ = 0, resends_ = 0, unavailable_ = 0, unavailable_without_max_age_ = 0;
};

// A device on MQTT 3.1.1 through the broker: QoS 1 telemetry, acks and errors on its own topics. Paho reconnects
// by itself; the subscriptions are made again on every connect in case the broker lost the session.
class MqttDevice : public Device {
 public:
  MqttDevice(std::string id, std::string shelf, std::string key, const std::string& uri)
      : Device(std::move(id), std::move(shelf), std::move(key), kMqttWindow, kMqttResendAfter),
        client_(uri, id_, mqtt::create_options_builder().max_buffered_messages(100000).finalize(), nullptr) {}

  ~MqttDevice() override {
    try {
      client_.disable_callbacks();
      if (client_.is_connected()) client_.disconnect()->wait_for(std::chrono::seconds(5));
    } catch (const mqtt::exception&) {
      // Going away anyway.
    }
  }

  // Starts connecting. One device after the other took about 2 s each here, so a fleet connects all at once.
  void BeginConnect() {
    client_.set_message_callback([this](mqtt::const_message_ptr m) { OnMessage(*m); });
    client_.set_connected_handler([this](const std::string&) { Subscribe(); });
    auto opts = mqtt::connect_options_builder()
                    .mqtt_version(MQTTVERSION_3_1_1)
                    .clean_session(false)
                    .automatic_reconnect(100ms, 1s)
                    .keep_alive_interval(10s)
                    .max_inflight(1000)
                    .user_name(id_)
                    .password(key_)
                    .finalize();
    try {
      connecting_ = client_.connect(opts);
    } catch (const mqtt::exception& e) {
      Error(std::string("connect: ") + e.what());
    }
  }

  // Waits until connected and subscribed (the handler subscribes); false (with `why`) otherwise.
  bool AwaitConnected(std::string* why) {
    try {
      if (!connecting_ || !connecting_->wait_for(20s)) {
        *why = "not connected";
        return false;
      }
      // The connected handler's subscription may still be on its way: one more, waited for, is harmless.
      auto subscribed = Subscribe();
      if (!subscribed || !subscribed->wait_for(20s)) {
        *why = "not subscribed";
        return false;
      }
    } catch (const mqtt::exception& e) {
      *why = e.what();
      return false;
    }
    return true;
  }

 protected:
  bool Send(const Telemetry& t) override {
    if (!client_.is_connected()) return false;
    try {
      client_.publish("iot/v1/" + id_ + "/telemetry", EncodeTelemetry(t, true), 1, false);
      return true;
    } catch (const mqtt::exception&) {
      return false;
    }
  }

 private:
  mqtt::token_ptr Subscribe() {
    auto topics = mqtt::string_collection::create({"iot/v1/" + id_ + "/ack", "iot/v1/" + id_ + "/error"});
    try {
      return client_.subscribe(topics, std::vector<int>{1, 1});
    } catch (const mqtt::exception& e) {
      Error(std::string("subscribe: ") + e.what());
      return nullptr;
    }
  }

  void OnMessage(const mqtt::message& m) {
    const std::string& topic = m.get_topic();
    const std::string& payload = m.get_payload_str();
    if (topic.size() >= 4 && topic.compare(topic.size() - 4, 4, "/ack") == 0) {
      try {
        msgpack::object_handle oh = msgpack::unpack(payload.data(), payload.size());
        auto q = MapValue(oh.get(), "q");
        if (q && q->type == msgpack::type::POSITIVE_INTEGER) return Acked(q->via.u64);
      } catch (const std::exception&) {
        // Reported below.
      }
      return Error("undecodable ack " + HexEncode(payload));
    }
    Error("mqtt error " + DescribeError(payload));
  }

  mqtt::async_client client_;
  mqtt::token_ptr connecting_;
};

// A CoAP message as far as these devices read one.
struct CoapMessage {
  int type = 0;  // 0 CON, 1 NON, 2 ACK, 3 RST
  int code = 0;  // class << 5 | detail
  uint16_t mid = 0;
  std::string token;
  std::optional<uint32_t> max_age;
  std::string payload;
};

constexpr int kCoapCon = 0, kCoapAck = 2;
constexpr int kCoapPost = 0x02, kCoapChanged = 0x44, kCoapUnavailable = 0xa3;
constexpr int kOptionUriPath = 11, kOptionMaxAge = 14, kOptionUriQuery = 15;

void AppendCoapOption(std::string* m, int previous, int number, const std::string& value) {
  auto nibble = [](size_t v) { return static_cast<char>(v < 13 ? v : v < 269 ? 13 : 14); };
  size_t delta = static_cast<size_t>(number - previous), len = value.size();
  m->push_back(static_cast<char>(nibble(delta) << 4 | nibble(len)));
  for (size_t v : {delta, len}) {
    if (v >= 269) {
      m->push_back(static_cast<char>((v - 269) >> 8));
      m->push_back(static_cast<char>((v - 269) & 0xff));
    } else if (v >= 13) {
      m->push_back(static_cast<char>(v - 13));
    }
  }
  *m += value;
}

std::optional<CoapMessage> ParseCoap(const uint8_t* p, size_t n) {
  if (n < 4 || (p[0] >> 6) != 1) return std::nullopt;
  CoapMessage msg;
  msg.type = (p[0] >> 4) & 3;
  size_t tkl = p[0] & 0x0f;
  if (tkl > 8 || 4 + tkl > n) return std::nullopt;
  msg.code = p[1];
  msg.mid = static_cast<uint16_t>(p[2] << 8 | p[3]);
  msg.token.assign(reinterpret_cast<const char*>(p + 4), tkl);
  size_t i = 4 + tkl;
  int number = 0;
  while (i < n) {
    if (p[i] == 0xff) {
      msg.payload.assign(reinterpret_cast<const char*>(p + i + 1), n - i - 1);
      break;
    }
    size_t delta = p[i] >> 4, len = p[i] & 0x0f;
    ++i;
    for (size_t* v : {&delta, &len}) {
      if (*v == 15) return std::nullopt;
      if (*v == 13) {
        if (i >= n) return std::nullopt;
        *v = p[i++] + 13u;
      } else if (*v == 14) {
        if (i + 1 >= n) return std::nullopt;
        *v = (static_cast<size_t>(p[i]) << 8 | p[i + 1]) + 269u;
        i += 2;
      }
    }
    number += static_cast<int>(delta);
    if (i + len > n) return std::nullopt;
    if (number == kOptionMaxAge) {
      uint32_t v = 0;
      for (size_t j = 0; j < len; ++j) v = v << 8 | p[i + j];
      msg.max_age = v;
    }
    i += len;
  }
  return msg;
}

// A device on plain CoAP: each attempt is a CON POST /t?k=KEY with a fresh message id and token; 2.04 (piggybacked
// or separate) acknowledges, 5.03 means "keep it and come back after Max-Age".
class CoapDevice : public Device {
 public:
  CoapDevice(std::string id, std::string shelf, std::string key, uint16_t port)
      : Device(std::move(id), std::move(shelf), std::move(key), 1, kCoapResendAfter) {
    fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  }
  ~CoapDevice() override { close(fd_); }
  int fd() const override { return fd_; }

  void Poll() override {
    uint8_t buf[1500];
    for (;;) {
      ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n < 0 && errno == ECONNREFUSED) continue;  // bffd was away when a request went out
      if (n <= 0) return;
      auto msg = ParseCoap(buf, static_cast<size_t>(n));
      if (!msg) {
        Error("undecodable datagram");
        continue;
      }
      if (msg->type == kCoapCon) {
        // A separate response: acknowledge it, or the server sends it again.
        std::string ack = {static_cast<char>(0x40 | kCoapAck << 4), 0, static_cast<char>(msg->mid >> 8),
                           static_cast<char>(msg->mid & 0xff)};
        send(fd_, ack.data(), ack.size(), MSG_NOSIGNAL);
      }
      if (msg->code == 0) continue;  // an empty ACK: the answer follows separately
      auto it = tokens_.find(msg->token);
      if (it == tokens_.end()) continue;  // an answer to an attempt already answered
      uint64_t seq = it->second;
      tokens_.erase(it);
      if (msg->code == kCoapChanged) {
        Acked(seq);
      } else if (msg->code == kCoapUnavailable) {
        NotAcked(seq, msg->max_age);
      } else {
        Error("coap " + std::to_string(msg->code >> 5) + "." + std::to_string(msg->code & 0x1f) + " for seq " +
              std::to_string(seq) + ": " + DescribeError(msg->payload));
      }
    }
  }

 protected:
  bool Send(const Telemetry& t) override {
    uint16_t mid = next_mid_++;
    uint32_t token_value = next_token_++;
    std::string token(4, '\0');
    for (int i = 0; i < 4; ++i) token[static_cast<size_t>(i)] = static_cast<char>(token_value >> (8 * (3 - i)));
    std::string m = {static_cast<char>(0x40 | kCoapCon << 4 | 4), static_cast<char>(kCoapPost), static_cast<char>(mid >> 8),
                     static_cast<char>(mid & 0xff)};
    m += token;
    AppendCoapOption(&m, 0, kOptionUriPath, "t");
    AppendCoapOption(&m, kOptionUriPath, kOptionUriQuery, "k=" + key_);
    m += '\xff';
    m += EncodeTelemetry(t, false);
    tokens_[token] = t.seq;
    // A datagram that finds nobody is lost like one over the air: the resend timer covers it.
    send(fd_, m.data(), m.size(), MSG_NOSIGNAL);
    return true;
  }

 private:
  int fd_ = -1;
  uint16_t next_mid_ = 1;
  uint32_t next_token_ = 1;
  std::map<std::string, uint64_t> tokens_;  // attempts awaiting an answer → seq
};

// Drives every device from one thread: makes readings at their pace, sends and resends, reads CoAP answers.
class Fleet {
 public:
  ~Fleet() { Stop(); }
  void Add(std::unique_ptr<Device> d) { devices_.push_back(std::move(d)); }
  const std::vector<std::unique_ptr<Device>>& devices() const { return devices_; }

  void Start() {
    thread_ = std::thread([this] { Run(); });
  }
  void StopProducing() { producing_ = false; }
  void Stop() {
    running_ = false;
    if (thread_.joinable()) thread_.join();
  }

  bool Every(const std::function<bool(const Device&)>& pred) const {
    for (auto& d : devices_) {
      if (!pred(*d)) return false;
    }
    return true;
  }
  std::string Summary() const {
    std::ostringstream out;
    for (auto& d : devices_) {
      Ledger l = d->Snapshot();
      out << l.device << ": made " << l.created.size() << ", acked " << l.acked.size() << ", left " << l.left.size()
          << ", resends " << l.resends << " (" << l.acked_after_resend << " acked only after one), ack p50 "
          << l.ack_p50_ms << " ms, 5.03 " << l.unavailable << ", errors " << l.errors.size() << "\n";
    }
    return out.str();
  }

 private:
  void Run() {
    std::vector<pollfd> fds;
    for (auto& d : devices_) {
      if (d->fd() >= 0) fds.push_back({d->fd(), POLLIN, 0});
    }
    while (running_) {
      // Waiting on the CoAP sockets paces the loop and wakes it as soon as an answer arrives.
      poll(fds.data(), fds.size(), static_cast<int>(std::chrono::milliseconds(kTick).count()));
      auto now = Clock::now();
      for (auto& d : devices_) {
        d->Poll();
        d->Step(now, producing_);
      }
    }
  }

  std::vector<std::unique_ptr<Device>> devices_;
  std::thread thread_;
  std::atomic<bool> running_{true};
  std::atomic<bool> producing_{true};
};

// Rows of shelf_readings for the given devices: (device, seq) → {count, shelf, ts, readings}.
struct StoredReading {
  int count = 0;
  std::string shelf;
  uint64_t ts = 0;
  std::string readings;
};

std::map<std::pair<std::string, uint64_t>, StoredReading> ReadInventory(const std::string& db_path, std::string* error) {
  std::map<std::pair<std::string, uint64_t>, StoredReading> rows;
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    *error = "open " + db_path + ": " + (db ? sqlite3_errmsg(db) : "out of memory");
    sqlite3_close(db);
    return rows;
  }
  sqlite3_busy_timeout(db, 5000);
  sqlite3_stmt* st = nullptr;
  // Grouped, so that a duplicate would show as a count even if the schema's key ever went away.
  const char* sql =
      "SELECT device_id, seq, COUNT(*), MIN(shelf_id), MIN(ts), MIN(readings) FROM shelf_readings "
      "WHERE device_id LIKE 'dev-%' GROUP BY device_id, seq";
  if (sqlite3_prepare_v2(db, sql, -1, &st, nullptr) != SQLITE_OK) {
    *error = std::string("prepare: ") + sqlite3_errmsg(db);
  } else {
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      auto text = [&](int col) { return std::string(reinterpret_cast<const char*>(sqlite3_column_text(st, col))); };
      StoredReading& r = rows[{text(0), static_cast<uint64_t>(sqlite3_column_int64(st, 1))}];
      r.count = sqlite3_column_int(st, 2);
      r.shelf = text(3);
      r.ts = static_cast<uint64_t>(sqlite3_column_int64(st, 4));
      r.readings = text(5);
    }
    if (rc != SQLITE_DONE) *error = std::string("step: ") + sqlite3_errmsg(db);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return rows;
}

bool SameReadings(const std::string& stored_json, uint64_t seq) {
  auto j = nlohmann::json::parse(stored_json, nullptr, false);
  if (!j.is_array()) return false;
  std::map<uint32_t, uint32_t> got, want;
  for (auto& r : j) got[r.value("slot", 0u)] = r.value("qty", 0u);
  for (auto& [slot, qty] : ReadingsFor(seq)) want[slot] = qty;
  return got == want;
}

std::string FirstSeqs(const std::vector<uint64_t>& seqs) {
  std::string out;
  for (size_t i = 0; i < seqs.size() && i < 10; ++i) out += (i ? " " : "") + std::to_string(seqs[i]);
  return seqs.size() > 10 ? out + " ..." : out;
}

uint16_t FreeUdpPort() {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

class IotNothingLostTest : public ::testing::Test {
 protected:
  struct Provisioned {
    std::string device, shelf, key;
  };

  void SetUp() override {
    if (access("/usr/sbin/mosquitto", X_OK) != 0) GTEST_SKIP() << "mosquitto is not installed";
    // Each device reports on its own 24-slot shelf ("shelf-SS-01").
    for (int i = 0; i < kMqttDevices + kCoapDevices; ++i) {
      bool mqtt = i < kMqttDevices;
      Provisioned p{(mqtt ? "dev-mqtt-" : "dev-coap-") + std::to_string(i), SeedShelfId(i + 1, 1), ""};
      std::string out;
      ASSERT_EQ(RunCommand(BinPath("bffd") + " keys add " + p.device + " --shelf " + p.shelf +
                               " --rate 1000 --burst 1000 --data " + dir_.path(),
                           &out),
                0);
      p.key = Trim(out);
      provisioned_.push_back(p);
    }
    
    broker_dir_ = dir_.path() + "/broker";
    broker_ = std::make_unique<MosquittoProcess>(dir_.path(), broker_dir_);
    ASSERT_TRUE(broker_->ready()) << ReadFile(broker_dir_ + "/mosquitto.conf");
    std::ofstream(dir_.path() + "/bffd.toml") << "[iot]\ndemo_fleet = 0\ninventory_timeout_ms = " << kInventoryTimeoutMs
                                              << "\n[domain]\npassword_iterations = 1000\n[web]\ncookie_secure = false\n";
    // A fixed CoAP port, so that devices find a restarted bffd where the first one was.
    coap_port_ = FreeUdpPort();
    
    StartBffd();
  }

  void TearDown() override {
    fleet_.reset();  // devices disconnect while the broker still runs
    if (HasFailure() && bffd_) std::cerr << "--- bffd log tail ---\n" << Tail(bffd_->process().Stderr(), 40);
  }

  static std::string Tail(const std::string& text, int lines) {
    size_t at = text.size();
    for (int i = 0; i <= lines && at != std::string::npos && at > 0; ++i) at = text.rfind('\n', at - 1);
    return at == std::string::npos ? text : text.substr(at + 1);
  }

  void StartBffd() {
    bffd_ = std::make_unique<BffdProcess>(
        dir_.path(), std::vector<std::string>{"--config", dir_.path() + "/bffd.toml", "--mqtt", broker_->uri(), "--coap",
                                              "127.0.0.1:" + std::to_string(coap_port_)});
    ASSERT_TRUE(bffd_->ready()) << bffd_->process().Stderr();
    ASSERT_EQ(bffd_->coap_port(), coap_port_);
    ASSERT_TRUE(WaitFor([&] { return bffd_->process().Stderr().find("mqtt: connected and subscribed") != std::string::npos; },
                        std::chrono::seconds(20)))
        << bffd_->process().Stderr();
  }

  void StartFleet() {
    fleet_ = std::make_unique<Fleet>();
    std::vector<MqttDevice*> mqtt;
    for (auto& p : provisioned_) {
      if (p.device.rfind("dev-mqtt-", 0) == 0) {
        auto d = std::make_unique<MqttDevice>(p.device, p.shelf, p.key, broker_->uri());
        d->BeginConnect();
        mqtt.push_back(d.get());
        fleet_->Add(std::move(d));
      } else {
        fleet_->Add(std::make_unique<CoapDevice>(p.device, p.shelf, p.key, coap_port_));
      }
    }
    for (MqttDevice* d : mqtt) {
      std::string why;
      ASSERT_TRUE(d->AwaitConnected(&why)) << d->id() << ": " << why;
    }
    fleet_->Start();
  }

  void PutInventoryFault(const std::string& fault) {
    HttpRequest r;
    r.method = "PUT";
    r.path = "/admin/v1/faults/inventory";
    r.headers.Set("Content-Type", "application/json");
    r.body = fault;
    auto answer = http_.Send(bffd_->admin_url(), r);
    ASSERT_TRUE(answer.ok()) << answer.status().ToString();
    ASSERT_LT(answer->status, 300) << answer->body;
  }

  void ClearFaults() {
    HttpRequest r;
    r.method = "DELETE";
    r.path = "/admin/v1/faults";
    auto answer = http_.Send(bffd_->admin_url(), r);
    ASSERT_TRUE(answer.ok()) << answer.status().ToString();
    ASSERT_LT(answer->status, 300) << answer->body;
  }

  static bool IsMqtt(const Device& d) { return d.id().rfind("dev-mqtt-", 0) == 0; }

  // Every device has at least `n` acknowledged readings made at or after `since`.
  bool AllAckedSince(Clock::time_point since, size_t n) const {
    return fleet_->Every([&](const Device& d) { return d.AckedMadeSince(since) >= n; });
  }

  void StopAndDrain() {
    fleet_->StopProducing();
    EXPECT_TRUE(WaitFor([&] { return fleet_->Every([](const Device& d) { return d.pending() == 0; }); },
                        std::chrono::seconds(30)))
        << "readings still unacknowledged after the drain:\n" << fleet_->Summary();
    fleet_->Stop();
  }

  // The contract, as a user sees it: every reading made was acknowledged, every acknowledged reading is in
  // inventory exactly once, and inventory holds nothing the devices did not send.
  void ExpectNothingLost() {
    std::string error;
    auto rows = ReadInventory(dir_.path() + "/domain.db", &error);
    ASSERT_TRUE(error.empty()) << error;
    size_t made_total = 0, stored_total = 0;
    for (auto& d : fleet_->devices()) {
      Ledger l = d->Snapshot();
      std::vector<uint64_t> missing, duplicated, spurious, altered;
      for (auto& [seq, at] : l.acked) {
        auto it = rows.find({l.device, seq});
        if (it == rows.end()) {
          missing.push_back(seq);
        } else if (it->second.count != 1) {
          duplicated.push_back(seq);
        }
      }
      for (auto& [key, row] : rows) {
        if (key.first != l.device) continue;
        ++stored_total;
        if (!l.created.count(key.second)) {
          spurious.push_back(key.second);
        } else if (row.shelf != l.shelf || row.ts != kTsBase + key.second || !SameReadings(row.readings, key.second)) {
          altered.push_back(key.second);
        }
      }
      made_total += l.created.size();
      std::string errors;
      for (size_t i = 0; i < l.errors.size() && i < 5; ++i) errors += "\n  " + l.errors[i];
      EXPECT_TRUE(l.left.empty()) << l.device << " never saw " << l.left.size() << " readings acknowledged: "
                                  << FirstSeqs(l.left) << "; errors it saw (" << l.errors.size() << "):" << errors;
      EXPECT_TRUE(missing.empty()) << l.device << ": " << missing.size() << " acknowledged readings are not in inventory: "
                                   << FirstSeqs(missing);
      EXPECT_TRUE(duplicated.empty()) << l.device << ": stored more than once: " << FirstSeqs(duplicated);
      EXPECT_TRUE(spurious.empty()) << l.device << ": stored but never sent: " << FirstSeqs(spurious);
      EXPECT_TRUE(altered.empty()) << l.device << ": stored with other contents than sent: " << FirstSeqs(altered);
      // A device that resends in order with the same seq is never refused, whatever failed meanwhile.
      EXPECT_TRUE(l.errors.empty()) << l.device << " saw " << l.errors.size() << " errors:" << errors;
    }
    EXPECT_EQ(stored_total, made_total) << fleet_->Summary();
    std::cout << fleet_->Summary();
  }

  TempDir dir_;
  std::vector<Provisioned> provisioned_;
  std::string broker_dir_;
  uint16_t coap_port_ = 0;
  std::unique_ptr<MosquittoProcess> broker_;
  std::unique_ptr<BffdProcess> bffd_;
  std::unique_ptr<Fleet> fleet_;
  TestHttpClient http_;
};

TEST_F(IotNothingLostTest, BrokerKilledMidStreamLosesNothing) {
  StartFleet();
  ASSERT_TRUE(WaitFor([&] { return AllAckedSince(Clock::time_point{}, 20); }, std::chrono::seconds(20))) << fleet_->Summary();

  broker_->process().Signal(SIGKILL);
  ASSERT_NE(broker_->process().Wait(std::chrono::seconds(10)), -1);
  auto killed = Clock::now();
  // The devices keep making readings while the broker is away.
  ASSERT_TRUE(WaitFor([&] { return fleet_->Every([&](const Device& d) { return d.MadeSince(killed) >= 20; }); },
                      std::chrono::seconds(10)));
  ASSERT_TRUE(broker_->Restart());
  auto restarted = Clock::now();
  // bffd and the devices reconnect by themselves, and readings made after the restart get through.
  ASSERT_TRUE(WaitFor([&] { return AllAckedSince(restarted, 20); }, std::chrono::seconds(30))) << fleet_->Summary();
  StopAndDrain();
  ExpectNothingLost();
}

TEST_F(IotNothingLostTest, BffdKilledMidStreamLosesNothing) {
  StartFleet();
  ASSERT_TRUE(WaitFor([&] { return AllAckedSince(Clock::time_point{}, 20); }, std::chrono::seconds(20))) << fleet_->Summary();

  // Slow inventory, so that bffd dies holding readings it took from the broker but has not stored yet.
  ASSERT_NO_FATAL_FAILURE(PutInventoryFault(R"({"latency_ms": 250})"));
  auto slowed = Clock::now();
  ASSERT_TRUE(WaitFor([&] { return fleet_->Every([&](const Device& d) { return d.MadeSince(slowed) >= 4; }); },
                      std::chrono::seconds(10)));
  bffd_->process().Signal(SIGKILL);
  ASSERT_NE(bffd_->process().Wait(std::chrono::seconds(10)), -1);
  auto killed = Clock::now();
  // Meanwhile the broker queues MQTT telemetry for bffd's persistent session; CoAP requests find nobody.
  ASSERT_TRUE(WaitFor([&] { return fleet_->Every([&](const Device& d) { return d.MadeSince(killed) >= 20; }); },
                      std::chrono::seconds(10)));
  ASSERT_NO_FATAL_FAILURE(StartBffd());
  auto restarted = Clock::now();
  ASSERT_TRUE(WaitFor([&] { return AllAckedSince(restarted, 20); }, std::chrono::seconds(30))) << fleet_->Summary();
  StopAndDrain();
  ExpectNothingLost();
  // bffd died holding readings: only the devices' resends brought those in. (An MQTT device always has several
  // readings inside a slow bffd; a CoAP device has one, and may have been between two exchanges.)
  uint64_t coap_recovered = 0;
  for (auto& d : fleet_->devices()) {
    uint64_t recovered = d->Snapshot().acked_after_resend;
    if (IsMqtt(*d)) {
      EXPECT_GT(recovered, 0u) << d->id() << ": nothing was in flight at the kill";
    } else {
      coap_recovered += recovered;
    }
  }
  EXPECT_GT(coap_recovered, 0u) << "no CoAP exchange was in flight at the kill";
}

TEST_F(IotNothingLostTest, HangingInventoryIsRetriedUntilAcceptedAndLosesNothing) {
  StartFleet();
  ASSERT_TRUE(WaitFor([&] { return AllAckedSince(Clock::time_point{}, 20); }, std::chrono::seconds(20))) << fleet_->Summary();

  ASSERT_NO_FATAL_FAILURE(PutInventoryFault(R"({"hang": true})"));
  auto hung = Clock::now();
  std::map<std::string, uint64_t> resends_before;
  for (auto& d : fleet_->devices()) resends_before[d->id()] = d->resends();
  // Every device makes readings and retries them (CoAP after a 5.03) while inventory does not answer.
  ASSERT_TRUE(WaitFor(
      [&] {
        return fleet_->Every([&](const Device& d) {
          return d.MadeSince(hung) >= 20 && d.resends() > resends_before[d.id()] && (IsMqtt(d) || d.unavailable() > 0);
        });
      },
      std::chrono::seconds(20)))
      << fleet_->Summary();

  auto clearing = Clock::now();
  ASSERT_NO_FATAL_FAILURE(ClearFaults());
  ASSERT_TRUE(WaitFor([&] { return AllAckedSince(clearing, 20); }, std::chrono::seconds(30))) << fleet_->Summary();
  StopAndDrain();

  for (auto& d : fleet_->devices()) {
    Ledger l = d->Snapshot();
    std::vector<uint64_t> acked_while_hanging;
    for (auto& [seq, at] : l.acked) {
      if (l.created.at(seq) >= hung && at < clearing) acked_while_hanging.push_back(seq);
    }
    EXPECT_TRUE(acked_while_hanging.empty()) << l.device << ": acknowledged while inventory hung: " << FirstSeqs(acked_while_hanging);
    if (IsMqtt(*d)) {
      // MQTT answers "inventory unreachable" with silence, never with an error map.
      for (auto& e : l.errors) EXPECT_EQ(e.find("mqtt error 503"), std::string::npos) << l.device << ": " << e;
    } else {
      EXPECT_GT(l.unavailable, 0u) << l.device << " never got 5.03";
      EXPECT_EQ(l.unavailable_without_max_age, 0u) << l.device << ": 5.03 without Max-Age";
    }
  }
  ExpectNothingLost();
}

}  // namespace
}  // namespace bff::testing
