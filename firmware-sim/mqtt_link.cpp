// MQTT link of the simulated shelf sensors: one Paho client per device (its own broker login), telemetry
// published at QoS 1, each exchange answered by the device's ack or error topic or by its deadline.
//
// Threads. Paho runs every client's callbacks on its own few threads (shared by all clients), so a
// callback only looks an exchange up in its device's map and completes it. Deadlines live on one
// io_context thread owned by the link: one steady_timer per exchange, not a thread per device.
//
// Exchanges. Each call gets an id, kept in its device's map in send order. An error map without "q" comes
// from a payload that did not decode that far, so it goes to the oldest waiting exchange whose own payload
// has no readable "q" (a good reading sent earlier may still be waiting for inventory: it must not take
// another payload's 400), and to the oldest of all when every waiting payload has one. An ack for a seq
// acknowledges every exchange waiting for that seq (a resend of a reading still outstanding learns the
// same thing); an error map with "q" ends the oldest exchange for that seq (one error per publish). A
// device's link is "up" once it is connected and subscribed; a call while it is not up ends at once with
// kNoAnswer instead of being buffered by Paho, so that a publish never goes out before the subscription
// that carries its answer, and a reading waits in the device (which keeps it anyway) rather than in a
// buffer it cannot see. Exchanges already published when the connection drops keep waiting until their
// deadline: the session (clean start off, kSessionExpiryS) keeps the broker queueing their acks.
//
// Connecting. 10,000 devices dialling at once overflow the broker's listen backlog; a quarter of them then
// waited out a connect timeout and Paho's back-off before their first reading. So first connections go
// out kMaxConnecting at a time, the next as soon as one is settled (up or failed: Paho then keeps retrying
// that one by itself, with back-off from kMinReconnect to kMaxReconnect).
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <msgpack.hpp>
#include <mqtt/async_client.h>

#include "common/log.h"
#include "firmware-sim/link.h"

namespace bff::sim {
namespace {

namespace asio = boost::asio;

constexpr int kQos = 1;
// The broker keeps a device's subscriptions and queues its acks for this long after it drops.
constexpr int kSessionExpiryS = 3600;
constexpr auto kKeepAlive = std::chrono::seconds(30);
constexpr auto kConnectTimeout = std::chrono::seconds(10);
constexpr auto kMinReconnect = std::chrono::seconds(1);
constexpr auto kMaxReconnect = std::chrono::seconds(30);
// Publishes Paho may hold for one client before it sends them (it refuses past this, even connected):
// well above what a device keeps outstanding, so a refusal means something is badly wrong.
constexpr int kMaxBufferedMessages = 4096;
// First connection attempts in progress at once (mosquitto listens with a backlog of 100).
constexpr size_t kMaxConnecting = 64;
// Stop() waits this long in total for the brokers' answers to DISCONNECT.
constexpr auto kDisconnectWait = std::chrono::seconds(5);
constexpr int kAnswerUnknownCode = 0;
constexpr int kAcknowledgedCode = 204;

// 10,000 devices are 10,000 sockets: take what the hard limit allows.
void RaiseFileLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max) return;
  rl.rlim_cur = rl.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
    log::Warn("mqtt link: cannot raise the open file limit", {{"error", std::strerror(errno)}});
  }
}

const msgpack::object* MapValue(const msgpack::object& map, std::string_view key) {
  if (map.type != msgpack::type::MAP) return nullptr;
  for (uint32_t i = 0; i < map.via.map.size; ++i) {
    const msgpack::object_kv& kv = map.via.map.ptr[i];
    if (kv.key.type == msgpack::type::STR && std::string_view(kv.key.via.str.ptr, kv.key.via.str.size) == key) {
      return &kv.val;
    }
  }
  return nullptr;
}

std::optional<uint64_t> UintValue(const msgpack::object& map, std::string_view key) {
  const msgpack::object* v = MapValue(map, key);
  if (v == nullptr || v->type != msgpack::type::POSITIVE_INTEGER) return std::nullopt;
  return v->via.u64;
}

// {"q": seq, "f"?: flags}; flags re-encoded as they came, empty when absent.
struct Ack {
  uint64_t seq = 0;
  std::string flags;
};

std::optional<Ack> ParseAck(const std::string& payload) {
  try {
    msgpack::object_handle oh = msgpack::unpack(payload.data(), payload.size());
    std::optional<uint64_t> seq = UintValue(oh.get(), "q");
    if (!seq) return std::nullopt;
    Ack ack{*seq, {}};
    if (const msgpack::object* f = MapValue(oh.get(), "f")) {
      msgpack::sbuffer out;
      msgpack::pack(out, *f);
      ack.flags.assign(out.data(), out.size());
    }
    return ack;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// {"e": code, "m": message, "r"?: retry_after_s, "q"?: seq}.
struct ErrorMap {
  int code = 0;
  int retry_after_s = 0;
  std::optional<uint64_t> seq;
};

std::optional<ErrorMap> ParseError(const std::string& payload) {
  try {
    msgpack::object_handle oh = msgpack::unpack(payload.data(), payload.size());
    std::optional<uint64_t> e = UintValue(oh.get(), "e");
    if (!e || *e > 999) return std::nullopt;
    ErrorMap err;
    err.code = static_cast<int>(*e);
    if (std::optional<uint64_t> r = UintValue(oh.get(), "r")) err.retry_after_s = static_cast<int>(std::min<uint64_t>(*r, 86400));
    err.seq = UintValue(oh.get(), "q");
    return err;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

Answer AnswerForError(const ErrorMap& err) {
  Answer a;
  a.code = err.code;
  // 503 is not sent over MQTT today (inventory trouble is silence), but it means "later" wherever it appears.
  if (err.code == 429 || err.code == 503) {
    a.kind = AnswerKind::kRetryLater;
    a.retry_after_s = err.retry_after_s;
  } else {
    a.kind = AnswerKind::kRejected;
  }
  return a;
}

Answer NoAnswer() {
  Answer a;
  a.kind = AnswerKind::kNoAnswer;
  a.code = kAnswerUnknownCode;
  return a;
}

// True when `payload` is one msgpack map holding a uint "q": bffd can then name the seq in an error map.
bool HasReadableSeq(const std::string& payload) {
  try {
    size_t offset = 0;
    msgpack::object_handle oh = msgpack::unpack(payload.data(), payload.size(), offset);
    return offset == payload.size() && UintValue(oh.get(), "q").has_value();
  } catch (const std::exception&) {
    return false;
  }
}

struct Exchange {
  uint64_t seq = 0;
  bool seq_readable = false;  // the payload carries "q", so an error for it names the seq
  std::function<void(Answer)> done;
  std::shared_ptr<asio::steady_timer> timer;
};

using Completion = std::pair<std::function<void(Answer)>, Answer>;

class MqttLink;

struct Device;

// Paho keeps a reference to its listener for the operation's lifetime: one per device and operation kind.
class SubscribeListener : public virtual mqtt::iaction_listener {
 public:
  SubscribeListener(MqttLink& link, Device& device) : link_(link), device_(device) {}
  void on_failure(const mqtt::token& tok) override;
  void on_success(const mqtt::token& tok) override;

 private:
  MqttLink& link_;
  Device& device_;
};

class ConnectListener : public virtual mqtt::iaction_listener {
 public:
  ConnectListener(MqttLink& link, Device& device) : link_(link), device_(device) {}
  void on_failure(const mqtt::token& tok) override;
  void on_success(const mqtt::token& tok) override;

 private:
  MqttLink& link_;
  Device& device_;
};

struct Device {
  Device(MqttLink& link, DeviceIdentity identity)
      : id(std::move(identity)),
        telemetry_topic("iot/v1/" + id.device_id + "/telemetry"),
        ack_topic("iot/v1/" + id.device_id + "/ack"),
        error_topic("iot/v1/" + id.device_id + "/error"),
        subscribe_listener(link, *this),
        connect_listener(link, *this) {}

  const DeviceIdentity id;
  const std::string telemetry_topic, ack_topic, error_topic;
  std::unique_ptr<mqtt::async_client> client;
  SubscribeListener subscribe_listener;
  ConnectListener connect_listener;
  std::atomic<bool> up{false};
  std::atomic<bool> connect_settled{false};  // its first attempt ended: its pacing slot is free

  std::mutex mu;
  std::map<uint64_t, Exchange> pending;  // exchange id → exchange; ids grow, so this is send order
  bool closed = false;
};

class MqttLink : public Link {
 public:
  explicit MqttLink(LinkOptions options) : options_(std::move(options)), work_(asio::make_work_guard(io_)) {}
  ~MqttLink() override {
    Stop();
    // Clients go before the devices their callbacks point into.
    for (auto& d : devices_) d->client.reset();
  }

  std::string_view protocol() const override { return "mqtt"; }
  bool key_in_payload() const override { return true; }

  Status Start(const std::vector<DeviceIdentity>& devices) override {
    std::lock_guard<std::mutex> lock(lifecycle_mu_);
    if (started_) return FailedPrecondition("mqtt link: already started");
    started_ = true;
    RaiseFileLimit();
    auto create = mqtt::create_options_builder()
                      .mqtt_version(MQTTVERSION_5)
                      .max_buffered_messages(kMaxBufferedMessages)
                      .send_while_disconnected(false)
                      .finalize();
    devices_.reserve(devices.size());
    for (const DeviceIdentity& identity : devices) {
      auto d = std::make_unique<Device>(*this, identity);
      try {
        // No persistence: a simulated device's memory is the device logic's, not files per client.
        d->client = std::make_unique<mqtt::async_client>(options_.mqtt_uri, "sim-" + identity.device_id, create, nullptr);
      } catch (const mqtt::exception& e) {
        return InvalidArgument("mqtt link: " + options_.mqtt_uri + ": " + e.what());
      }
      devices_.push_back(std::move(d));
    }
    timer_thread_ = std::thread([this] { io_.run(); });
    started_at_ = std::chrono::steady_clock::now();
    log::Info("mqtt link: connecting", {{"uri", options_.mqtt_uri}, {"devices", devices_.size()}});
    ConnectMore();
    return Status::Ok();
  }

  void SendTelemetry(size_t index, uint64_t seq, std::string payload, std::chrono::milliseconds timeout,
                     std::function<void(Answer)> done) override {
    if (index >= devices_.size()) {
      done(NoAnswer());
      return;
    }
    Device& d = *devices_[index];
    uint64_t id = next_exchange_.fetch_add(1);
    bool seq_readable = HasReadableSeq(payload);
    {
      std::unique_lock<std::mutex> lock(d.mu);
      if (d.closed) {
        lock.unlock();
        done(NoAnswer());
        return;
      }
      // Under the device's lock: an answer cannot find the exchange before its timer is armed.
      auto timer = std::make_shared<asio::steady_timer>(io_, timeout);
      timer->async_wait([this, &d, id](const boost::system::error_code& ec) {
        if (!ec) Complete(d, id, NoAnswer());
      });
      d.pending.emplace(id, Exchange{seq, seq_readable, std::move(done), std::move(timer)});
    }
    if (!d.up.load()) {
      FailSoon(d, id);
      return;
    }
    try {
      d.client->publish(mqtt::make_message(d.telemetry_topic, std::move(payload), kQos, false));
    } catch (const mqtt::exception& e) {
      // Whatever refuses one publish (a full buffer, a lost connection) refuses many: said once per link.
      if (!publish_failure_logged_.exchange(true)) {
        log::Warn("mqtt link: publish refused", {{"device", d.id.device_id}, {"reason", e.what()}});
      }
      FailSoon(d, id);
    }
  }

  size_t connected() const override { return up_count_.load(); }

  void Stop() override {
    std::lock_guard<std::mutex> lock(lifecycle_mu_);
    if (stopped_) return;
    stopped_ = true;
    stopping_.store(true);
    std::vector<Completion> ends;
    for (auto& d : devices_) {
      std::lock_guard<std::mutex> dlock(d->mu);
      d->closed = true;
      for (auto& [id, ex] : d->pending) ends.emplace_back(std::move(ex.done), NoAnswer());
      d->pending.clear();
    }
    for (auto& [done, answer] : ends) done(std::move(answer));

    std::vector<mqtt::token_ptr> tokens;
    for (auto& d : devices_) {
      if (!d->client) continue;
      try {
        d->client->disable_callbacks();
      } catch (const mqtt::exception&) {
        // A connect in progress: the connected handler sees stopping_ and disconnects.
      }
      if (!d->client->is_connected()) continue;
      try {
        tokens.push_back(d->client->disconnect());
      } catch (const mqtt::exception&) {
        // Lost in the meantime: nothing to close.
      }
    }
    auto deadline = std::chrono::steady_clock::now() + kDisconnectWait;
    for (auto& t : tokens) {
      try {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0 || !t->wait_for(left)) break;
      } catch (const mqtt::exception&) {
      }
    }
    work_.reset();
    io_.stop();
    if (timer_thread_.joinable()) timer_thread_.join();
    for (auto& d : devices_) OnDown(*d);
    if (!devices_.empty()) log::Info("mqtt link: stopped", {{"devices", devices_.size()}});
  }

  void OnSubscribed(Device& d, bool ok) {
    if (!ok) {
      log::Warn("mqtt link: broker refused the device's subscriptions", {{"device", d.id.device_id}});
      return;
    }
    if (!d.up.exchange(true) && up_count_.fetch_add(1) + 1 == devices_.size() && !all_up_logged_.exchange(true)) {
      auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started_at_);
      log::Info("mqtt link: every device connected and subscribed", {{"devices", devices_.size()}, {"ms", took.count()}});
    }
    // Stop() may have passed this device between the lines above.
    if (stopping_.load()) OnDown(d);
  }

  // The first attempt of `d` ended (`ok` or not): the next device may dial.
  void OnConnectSettled(Device& d, bool ok, const mqtt::token& tok) {
    if (!ok && !connect_failure_logged_.exchange(true)) {
      // Paho keeps retrying (automatic reconnect covers a failed first attempt too); said once per link.
      log::Warn("mqtt link: devices cannot connect yet; retrying",
                {{"device", d.id.device_id}, {"rc", tok.get_return_code()}, {"reason", static_cast<int>(tok.get_reason_code())}});
    }
    if (d.connect_settled.exchange(true)) return;  // a later retry of a device already counted
    {
      std::lock_guard<std::mutex> lock(connect_mu_);
      --connecting_;
    }
    // Not from Paho's callback thread: connect() of another client is work that callback should not do.
    asio::post(io_, [this] { ConnectMore(); });
  }

 private:
  void ConnectMore() {
    std::vector<Device*> now;
    {
      std::lock_guard<std::mutex> lock(connect_mu_);
      while (!stopping_.load() && connecting_ < kMaxConnecting && next_to_connect_ < devices_.size()) {
        now.push_back(devices_[next_to_connect_++].get());
        ++connecting_;
      }
    }
    for (Device* d : now) Connect(*d);
  }

  void Connect(Device& d) {
    mqtt::async_client& c = *d.client;
    c.set_connected_handler([this, &d](const std::string&) { OnConnected(d); });
    c.set_connection_lost_handler([this, &d](const std::string&) { OnDown(d); });
    c.set_disconnected_handler([this, &d](const mqtt::properties&, mqtt::ReasonCode) { OnDown(d); });
    c.set_message_callback([this, &d](mqtt::const_message_ptr msg) { OnMessage(d, msg); });
    mqtt::properties props{{mqtt::property::SESSION_EXPIRY_INTERVAL, kSessionExpiryS}};
    auto opts = mqtt::connect_options_builder()
                    .mqtt_version(MQTTVERSION_5)
                    .clean_start(false)
                    .properties(props)
                    .keep_alive_interval(kKeepAlive)
                    .connect_timeout(kConnectTimeout)
                    .automatic_reconnect(kMinReconnect, kMaxReconnect)
                    .max_inflight(std::max(1, options_.mqtt_max_inflight))
                    .user_name(d.id.device_id)
                    .password(d.id.key)
                    .finalize();
    try {
      c.connect(opts, nullptr, d.connect_listener);
    } catch (const mqtt::exception& e) {
      // Paho took nothing: this device stays down, and its slot goes to the next one.
      log::Warn("mqtt link: connect refused", {{"device", d.id.device_id}, {"reason", e.what()}});
      if (!d.connect_settled.exchange(true)) {
        std::lock_guard<std::mutex> lock(connect_mu_);
        --connecting_;
      }
      asio::post(io_, [this] { ConnectMore(); });
    }
  }

  // Subscribing on every connection, not only when the broker lost the session: a SUBSCRIBE that
  // repeats one the session holds changes nothing, and the session-present flag of an automatic
  // reconnect is not visible through Paho's connected callback.
  void OnConnected(Device& d) {
    if (stopping_.load()) {
      try {
        d.client->disconnect();
      } catch (const mqtt::exception&) {
      }
      return;
    }
    try {
      auto topics = mqtt::string_collection::create({d.ack_topic, d.error_topic});
      d.client->subscribe(topics, std::vector<int>{kQos, kQos}, nullptr, d.subscribe_listener);
    } catch (const mqtt::exception& e) {
      log::Warn("mqtt link: subscribe failed", {{"device", d.id.device_id}, {"reason", e.what()}});
    }
  }

  void OnDown(Device& d) {
    if (d.up.exchange(false)) up_count_.fetch_sub(1);
  }

  void OnMessage(Device& d, const mqtt::const_message_ptr& msg) {
    const std::string& topic = msg->get_topic();
    std::vector<Completion> ends;
    if (topic == d.ack_topic) {
      std::optional<Ack> ack = ParseAck(msg->get_payload_str());
      if (!ack) return Undecodable(d, topic);
      std::lock_guard<std::mutex> lock(d.mu);
      for (auto it = d.pending.begin(); it != d.pending.end();) {
        if (it->second.seq != ack->seq) {
          ++it;
          continue;
        }
        Answer a;
        a.kind = AnswerKind::kAcknowledged;
        a.code = kAcknowledgedCode;
        a.flags = ack->flags;
        ends.emplace_back(Take(it->second), std::move(a));
        it = d.pending.erase(it);
      }
    } else if (topic == d.error_topic) {
      std::optional<ErrorMap> err = ParseError(msg->get_payload_str());
      if (!err) return Undecodable(d, topic);
      std::lock_guard<std::mutex> lock(d.mu);
      auto it = d.pending.begin();
      if (err->seq) {
        while (it != d.pending.end() && it->second.seq != *err->seq) ++it;
      } else {
        while (it != d.pending.end() && it->second.seq_readable) ++it;
        if (it == d.pending.end()) it = d.pending.begin();
      }
      if (it == d.pending.end()) return;
      ends.emplace_back(Take(it->second), AnswerForError(*err));
      d.pending.erase(it);
    }
    for (auto& [done, answer] : ends) done(std::move(answer));
  }

  // An answer that is not msgpack as docs/iot.md describes it ends nothing: its exchange runs to its
  // deadline. Said once per link; every device would say the same.
  void Undecodable(Device& d, const std::string& topic) {
    if (undecodable_logged_.exchange(true)) return;
    log::Warn("mqtt link: undecodable answer ignored", {{"device", d.id.device_id}, {"topic", topic}});
  }

  // Hands out the exchange's callback and lets its timer go (cancelled on the timer's own thread).
  std::function<void(Answer)> Take(Exchange& ex) {
    if (ex.timer) asio::post(io_, [t = std::move(ex.timer)] { t->cancel(); });
    return std::move(ex.done);
  }

  void Complete(Device& d, uint64_t id, Answer answer) {
    std::function<void(Answer)> done;
    {
      std::lock_guard<std::mutex> lock(d.mu);
      auto it = d.pending.find(id);
      if (it == d.pending.end()) return;
      done = Take(it->second);
      d.pending.erase(it);
    }
    done(std::move(answer));
  }

  // Ends an exchange with kNoAnswer on the timer thread, never inside SendTelemetry: the caller may hold
  // its own locks. If the timer thread is already gone, Stop() has ended it.
  void FailSoon(Device& d, uint64_t id) {
    asio::post(io_, [this, &d, id] { Complete(d, id, NoAnswer()); });
  }

  LinkOptions options_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread timer_thread_;
  std::vector<std::unique_ptr<Device>> devices_;
  std::atomic<uint64_t> next_exchange_{1};
  std::atomic<size_t> up_count_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> undecodable_logged_{false};
  std::atomic<bool> connect_failure_logged_{false};
  std::atomic<bool> publish_failure_logged_{false};
  std::atomic<bool> all_up_logged_{false};
  std::chrono::steady_clock::time_point started_at_;
  std::mutex connect_mu_;
  size_t next_to_connect_ = 0;  // devices_ before it have dialled
  size_t connecting_ = 0;       // first attempts not settled yet
  std::mutex lifecycle_mu_;
  bool started_ = false;
  bool stopped_ = false;
};

void SubscribeListener::on_failure(const mqtt::token&) { link_.OnSubscribed(device_, false); }

void ConnectListener::on_failure(const mqtt::token& tok) { link_.OnConnectSettled(device_, false, tok); }

void ConnectListener::on_success(const mqtt::token& tok) { link_.OnConnectSettled(device_, true, tok); }

void SubscribeListener::on_success(const mqtt::token& tok) {
  bool granted = true;
  try {
    mqtt::subscribe_response response = tok.get_subscribe_response();
    for (mqtt::ReasonCode rc : response.get_reason_codes()) granted = granted && rc < 0x80;
  } catch (const std::exception&) {
    // No response details: Paho reports refusals as failures.
  }
  link_.OnSubscribed(device_, granted);
}

}  // namespace

StatusOr<std::unique_ptr<Link>> MakeMqttLink(const LinkOptions& options) {
  if (options.mqtt_uri.empty()) return InvalidArgument("mqtt link: no broker URI");
  return std::unique_ptr<Link>(std::make_unique<MqttLink>(options));
}

}  // namespace bff::sim
