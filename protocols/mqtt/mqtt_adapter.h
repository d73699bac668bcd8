// MQTT front of the IoT BFF: a Paho MQTT C++ client (kept out of this header) with a persistent session
// on the broker, subscribed at QoS 1 to every device's telemetry and stock questions.
//
// Topics (CONTRACT.md section 4): iot/v1/{device}/telemetry and iot/v1/{device}/stock/get in;
// iot/v1/{device}/ack, iot/v1/{device}/stock (or the MQTT 5 response topic, with its correlation data) and
// iot/v1/{device}/error out. Paho's callbacks only hand messages to the Asio pool; when more than
// max_in_flight messages are being processed the callback waits (counted), which stops Paho reading and
// lets the broker hold messages: back-pressure instead of silent drops.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "clients/iot/iot_bff.h"
#include "common/scheduler.h"
#include "common/status.h"

namespace bff {

struct MqttAdapterOptions {
  std::string uri = "tcp://127.0.0.1:1883";
  std::string client_id = "bffd";          // fixed: the broker keeps this session across restarts
  std::string username = "bffd";
  std::string password;
  bool shared_subscription = false;        // $share/bffd/...: several bffd instances split the devices
  size_t max_in_flight = 4096;             // messages handed to the pool and not yet answered
  int max_buffered = 100000;               // Paho's outgoing queue (its default of 100 throws under load)
  int session_expiry_s = 7 * 24 * 3600;
  int keep_alive_s = 30;
};

// Indexes of MqttStats::in and ::out; the metric labels are the names in the comments.
enum MqttInKind : size_t { kMqttInTelemetry, kMqttInStockGet, kMqttInOther, kMqttInKinds };  // telemetry, stock_get, other
enum MqttInOutcome : size_t {
  kMqttAcknowledged,    // telemetry acknowledged; stock/get answered with stock
  kMqttRejected,        // answered on the error topic
  kMqttUnacknowledged,  // telemetry left unanswered: inventory unreachable, the device retries
  kMqttIgnored,         // not ours (topic or device id)
  kMqttInOutcomes
};
enum MqttOutKind : size_t { kMqttOutAck, kMqttOutStock, kMqttOutError, kMqttOutKinds };  // ack, stock, error
enum MqttOutOutcome : size_t { kMqttPublishOk, kMqttPublishFailed, kMqttOutOutcomes };   // ok, failed

struct MqttStats {
  std::atomic<uint64_t> received{0};
  std::atomic<uint64_t> published{0};
  std::atomic<uint64_t> publish_failures{0};
  std::atomic<uint64_t> ignored{0};        // topics or payloads that are not ours
  std::atomic<uint64_t> backpressure_waits{0};
  std::atomic<uint64_t> connects{0};           // every session up, the first and each reconnect
  std::atomic<uint64_t> connection_losses{0};
  std::array<std::array<std::atomic<uint64_t>, kMqttInOutcomes>, kMqttInKinds> in{};
  std::array<std::array<std::atomic<uint64_t>, kMqttOutOutcomes>, kMqttOutKinds> out{};
  std::atomic<size_t> in_flight{0};
};

class MqttAdapter {
 public:
  // Starts connecting in the background (retrying with backoff until the broker answers); never fails
  // because the broker is down, only for bad options.
  static StatusOr<std::unique_ptr<MqttAdapter>> Start(MqttAdapterOptions options, IotBff& iot, Scheduler& scheduler);
  virtual ~MqttAdapter() = default;
  // Stops taking messages, waits for those in flight (up to `drain`), then disconnects cleanly.
  virtual void Stop(std::chrono::milliseconds drain) = 0;
  virtual bool connected() const = 0;
  virtual const MqttStats& stats() const = 0;
};

}  // namespace bff
