// Paho MQTT C++ adapter: topics in, IotBff calls on the Asio pool, replies published at QoS 1.
#include "protocols/mqtt/mqtt_adapter.h"

#include <condition_variable>
#include <mutex>

#include <mqtt/async_client.h>

#include "common/log.h"
#include "common/tcp_nodelay.h"
#include "security/input_validation.h"

namespace bff {
namespace {

constexpr char kPrefix[] = "iot/v1/";
constexpr int kQos = 1;
constexpr auto kMinRetry = std::chrono::seconds(1);
constexpr auto kMaxRetry = std::chrono::seconds(30);

// "iot/v1/{device}/{rest}" → {device, rest}; empty device when the topic is not ours.
std::pair<std::string, std::string> SplitTopic(const std::string& topic) {
  size_t plen = sizeof(kPrefix) - 1;
  if (topic.compare(0, plen, kPrefix) != 0) return {};
  size_t slash = topic.find('/', plen);
  if (slash == std::string::npos) return {};
  return {topic.substr(plen, slash - plen), topic.substr(slash + 1)};
}

class PahoAdapter : public MqttAdapter, public virtual mqtt::callback {
 public:
  PahoAdapter(MqttAdapterOptions options, IotBff& iot, Scheduler& scheduler)
      : options_(std::move(options)),
        iot_(iot),
        scheduler_(scheduler),
        client_(options_.uri, options_.client_id,
                mqtt::create_options_builder()
                    .mqtt_version(MQTTVERSION_5)
                    .max_buffered_messages(options_.max_buffered)
                    .send_while_disconnected(true)
                    .finalize(),
                nullptr) {}

  ~PahoAdapter() override { Stop(std::chrono::milliseconds(0)); }

  void Begin() {
    client_.set_callback(*this);
    Connect();
  }

  void Stop(std::chrono::milliseconds drain) override {
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (stopped_) return;
      stopping_ = true;
      cv_.notify_all();
      cv_.wait_for(lock, drain, [this] { return stats_.in_flight.load() == 0; });
      stopped_ = true;
    }
    if (retry_) retry_->Cancel();
    try {
      client_.disable_callbacks();
      if (client_.is_connected()) client_.disconnect()->wait_for(std::chrono::seconds(5));
    } catch (const mqtt::exception& e) {
      log::Warn("mqtt: disconnect failed", {{"reason", e.what()}});
    }
  }

  bool connected() const override { return client_.is_connected(); }
  const MqttStats& stats() const override { return stats_; }

 private:
  void Connect() {
    mqtt::properties props{{mqtt::property::SESSION_EXPIRY_INTERVAL, options_.session_expiry_s}};
    auto opts = mqtt::connect_options_builder()
                    .mqtt_version(MQTTVERSION_5)
                    .clean_start(false)
                    .properties(props)
                    .keep_alive_interval(std::chrono::seconds(options_.keep_alive_s))
                    .automatic_reconnect(kMinRetry, kMaxRetry)
                    .user_name(options_.username)
                    .password(options_.password)
                    .finalize();
    try {
      client_.connect(opts, nullptr, connect_listener_);
    } catch (const mqtt::exception& e) {
      log::Warn("mqtt: connect failed", {{"uri", options_.uri}, {"reason", e.what()}});
      RetryLater();
    }
  }

  void RetryLater() {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    backoff_ = std::min(backoff_ * 2, std::chrono::duration_cast<std::chrono::milliseconds>(kMaxRetry));
    retry_ = scheduler_.RunAfter(backoff_, [this] { Connect(); });
  }

  // The first connect is ours to retry; afterwards Paho reconnects by itself and calls connected().
  struct ConnectListener : public virtual mqtt::iaction_listener {
    PahoAdapter* self;
    explicit ConnectListener(PahoAdapter* s) : self(s) {}
    void on_failure(const mqtt::token& tok) override {
      log::Warn("mqtt: broker not reachable yet; retrying", {{"uri", self->options_.uri}, {"rc", tok.get_reason_code()}});
      self->RetryLater();
    }
    void on_success(const mqtt::token&) override {}
  };

  void connected(const std::string&) override {
    stats_.connects.fetch_add(1);
    // Each ack is a small write right after Paho's PUBACK: with Nagle's algorithm it waited for the
    // broker's delayed TCP ack, about 40 ms an exchange. Paho cannot be asked; the socket can.
    int nodelay = SetTcpNoDelayOnSocketsTo(options_.uri);
    if (nodelay == 0) log::Warn("mqtt: could not turn Nagle's algorithm off on the broker connection", {{"uri", options_.uri}});
    backoff_ = std::chrono::milliseconds(500);
    std::string prefix = options_.shared_subscription ? "$share/bffd/" : "";
    auto topics = mqtt::string_collection::create({prefix + "iot/v1/+/telemetry", prefix + "iot/v1/+/stock/get"});
    try {
      client_.subscribe(topics, std::vector<int>{kQos, kQos});
      log::Info("mqtt: connected and subscribed", {{"uri", options_.uri}, {"client_id", options_.client_id}});
    } catch (const mqtt::exception& e) {
      log::Error("mqtt: subscribe failed", {{"reason", e.what()}});
    }
  }

  void connection_lost(const std::string& cause) override {
    stats_.connection_losses.fetch_add(1, std::memory_order_relaxed);
    log::Warn("mqtt: connection lost; reconnecting", {{"cause", cause}});
  }

  void message_arrived(mqtt::const_message_ptr msg) override {
    stats_.received.fetch_add(1);
    {
      // Back-pressure: while too much is in flight, hold Paho's thread so the broker keeps the rest.
      std::unique_lock<std::mutex> lock(mu_);
      if (stats_.in_flight.load() >= options_.max_in_flight) {
        stats_.backpressure_waits.fetch_add(1);
        cv_.wait(lock, [this] { return stopping_ || stats_.in_flight.load() < options_.max_in_flight; });
      }
      if (stopping_) return;
      stats_.in_flight.fetch_add(1);
    }
    scheduler_.Post([this, msg] { Handle(msg); });
  }

  void Done() {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.in_flight.fetch_sub(1);
    cv_.notify_all();
  }

  void Handle(const mqtt::const_message_ptr& msg) {
    auto [device, rest] = SplitTopic(msg->get_topic());
    if (device.empty() || !IsValidId(device) || (rest != "telemetry" && rest != "stock/get")) {
      stats_.ignored.fetch_add(1);
      size_t kind = rest == "telemetry" ? kMqttInTelemetry : rest == "stock/get" ? kMqttInStockGet : kMqttInOther;
      stats_.in[kind][kMqttIgnored].fetch_add(1, std::memory_order_relaxed);
      return Done();
    }
    IotCaller caller;
    caller.transport = IotTransport::kMqtt;
    caller.device_id = device;
    const mqtt::properties& props = msg->get_properties();
    std::string traceparent;
    if (props.contains(mqtt::property::USER_PROPERTY)) {
      for (size_t i = 0; i < props.count(mqtt::property::USER_PROPERTY); ++i) {
        auto kv = mqtt::get<mqtt::string_pair>(props, mqtt::property::USER_PROPERTY, i);
        if (std::get<0>(kv) == "traceparent") traceparent = std::get<1>(kv);
      }
    }
    caller.trace = TraceContext::AcceptOrCreate(traceparent);
    std::string own = std::string(kPrefix) + device + "/";
    if (rest == "telemetry") {
      iot_.HandleTelemetry(caller, msg->get_payload_str(), [this, own, caller](IotReply r) {
        if (r.code == StatusCode::kOk) {
          stats_.in[kMqttInTelemetry][kMqttAcknowledged].fetch_add(1, std::memory_order_relaxed);
          Publish(own + "ack", r.payload, caller.trace, nullptr, kMqttOutAck);
        } else if (r.acknowledge) {
          stats_.in[kMqttInTelemetry][kMqttRejected].fetch_add(1, std::memory_order_relaxed);
          Publish(own + "error", r.payload, caller.trace, nullptr, kMqttOutError);
        } else {
          stats_.in[kMqttInTelemetry][kMqttUnacknowledged].fetch_add(1, std::memory_order_relaxed);
        }
        // !acknowledge: inventory unreachable; silence tells the device to keep the reading and retry.
        Done();
      });
      return;
    }
    // stock/get: answer on the MQTT 5 response topic (only one of the device's own) or the default topic.
    std::string reply_topic = own + "stock";
    std::shared_ptr<mqtt::binary> correlation;
    if (props.contains(mqtt::property::RESPONSE_TOPIC)) {
      std::string rt = mqtt::get<std::string>(props, mqtt::property::RESPONSE_TOPIC);
      if (rt.compare(0, own.size(), own) == 0 && rt.find_first_of("+#") == std::string::npos) reply_topic = rt;
    }
    if (props.contains(mqtt::property::CORRELATION_DATA)) {
      correlation = std::make_shared<mqtt::binary>(mqtt::get<mqtt::binary>(props, mqtt::property::CORRELATION_DATA));
    }
    iot_.HandleStockQuery(caller, msg->get_payload_str(), [this, own, reply_topic, correlation, caller](IotReply r) {
      bool ok = r.code == StatusCode::kOk;
      stats_.in[kMqttInStockGet][ok ? kMqttAcknowledged : kMqttRejected].fetch_add(1, std::memory_order_relaxed);
      Publish(ok ? reply_topic : own + "error", r.payload, caller.trace, correlation, ok ? kMqttOutStock : kMqttOutError);
      Done();
    });
  }

  void Publish(const std::string& topic, const std::string& payload, const TraceContext& trace,
               const std::shared_ptr<mqtt::binary>& correlation, MqttOutKind kind) {
    auto msg = mqtt::make_message(topic, payload, kQos, false);
    mqtt::properties props;
    props.add({mqtt::property::USER_PROPERTY, std::string("traceparent"), trace.Child().ToTraceparent()});
    if (correlation) props.add({mqtt::property::CORRELATION_DATA, *correlation});
    msg->set_properties(std::move(props));
    try {
      client_.publish(msg);
      stats_.published.fetch_add(1);
      stats_.out[kind][kMqttPublishOk].fetch_add(1, std::memory_order_relaxed);
    } catch (const mqtt::exception& e) {
      stats_.publish_failures.fetch_add(1);
      stats_.out[kind][kMqttPublishFailed].fetch_add(1, std::memory_order_relaxed);
      log::Warn("mqtt: publish failed", {{"topic", topic}, {"reason", e.what()}}, log::Scope(trace.trace_id, "iot"));
    }
  }

  MqttAdapterOptions options_;
  IotBff& iot_;
  Scheduler& scheduler_;
  mqtt::async_client client_;
  ConnectListener connect_listener_{this};
  MqttStats stats_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool stopped_ = false;
  std::chrono::milliseconds backoff_{500};
  std::shared_ptr<TimerHandle> retry_;
};

}  // namespace

StatusOr<std::unique_ptr<MqttAdapter>> MqttAdapter::Start(MqttAdapterOptions options, IotBff& iot, Scheduler& scheduler) {
  if (options.uri.empty()) return InvalidArgument("mqtt.uri is empty");
  try {
    auto a = std::make_unique<PahoAdapter>(std::move(options), iot, scheduler);
    a->Begin();
    return std::unique_ptr<MqttAdapter>(std::move(a));
  } catch (const mqtt::exception& e) {
    return InvalidArgument(std::string("mqtt.uri: ") + e.what());
  }
}

}  // namespace bff
