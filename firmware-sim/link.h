// How a simulated shelf sensor reaches the IoT BFF: one telemetry exchange per call, whatever the
// protocol. Device logic (device.h) speaks only to this interface; links (MQTT through a broker with
// Paho, CoAP and CoAP over DTLS-PSK with libcoap) turn an exchange into their protocol's terms.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace bff::sim {

// One line of a keys file: "device_id shelf_id key".
struct DeviceIdentity {
  std::string device_id;
  std::string shelf_id;
  std::string key;
};

enum class AnswerKind {
  kAcknowledged,  // CoAP 2.04; MQTT: an ack whose "q" is the reading's seq
  kRejected,      // refused for good: CoAP 4.xx other than 4.29; MQTT error map with e 4xx other than 429
  kRetryLater,    // CoAP 4.29 or 5.03 (Max-Age); MQTT error map with e 429: keep the reading, wait
  kNoAnswer,      // nothing in time: MQTT no ack (inventory unreachable, broker down), CoAP gave up, DTLS failed
};

struct Answer {
  AnswerKind kind = AnswerKind::kNoAnswer;
  int code = 0;            // 204, 400, 401, 403, 413, 429, 503 (CoAP numbers, as in the error map); 0: none
  std::string flags;       // encoded stock flags from the ack ("f" / the 2.04 body); empty when unchanged
  int retry_after_s = 0;   // Max-Age / "r"
};

class Link {
 public:
  virtual ~Link() = default;
  virtual std::string_view protocol() const = 0;  // "mqtt", "coap", "coaps"
  // MQTT carries the key inside the telemetry ("k"); CoAP in the query, CoAPS in the handshake.
  virtual bool key_in_payload() const = 0;
  // Prepares every device (MQTT: one connection per device, its own login; CoAP: sessions). A device
  // that cannot connect now keeps trying in the background; Start fails only when nothing can work
  // (bad URI, no sockets).
  virtual Status Start(const std::vector<DeviceIdentity>& devices) = 0;
  // Sends `payload` (msgpack telemetry, already encoded; possibly malformed on purpose) for
  // devices[index], whose seq is `seq`. `done` runs exactly once, on any thread, at the latest
  // `timeout` after the call.
  virtual void SendTelemetry(size_t index, uint64_t seq, std::string payload, std::chrono::milliseconds timeout,
                             std::function<void(Answer)> done) = 0;
  // Devices whose connection is up now (MQTT), or all (CoAP).
  virtual size_t connected() const = 0;
  // Disconnects cleanly; pending exchanges end with kNoAnswer. Idempotent.
  virtual void Stop() = 0;
};

struct LinkOptions {
  std::string mqtt_uri = "tcp://127.0.0.1:1883";
  std::string coap_address = "127.0.0.1:5683";
  std::string coaps_address = "127.0.0.1:5684";
  // MQTT: QoS 1 publishes a device may have unacknowledged by the broker at once.
  int mqtt_max_inflight = 64;
};

StatusOr<std::unique_ptr<Link>> MakeMqttLink(const LinkOptions& options);
StatusOr<std::unique_ptr<Link>> MakeCoapLink(const LinkOptions& options, bool dtls);

}  // namespace bff::sim
