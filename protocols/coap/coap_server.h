// CoAP front of the IoT BFF (libcoap 4.3, OpenSSL DTLS), kept out of this header: UDP 5683 and DTLS-PSK
// 5684 (identity = device id, PSK = the device's API key, looked up per identity).
//
// Resources (CONTRACT.md section 4):
//   POST /t            telemetry → 2.04 with the stock flags (empty when unchanged) once inventory accepted it;
//                      4.00, 4.01, 4.03, 4.13, 4.29 (Max-Age), 5.03 (Max-Age) otherwise, body = error map.
//   GET  /s/{shelf}    stock flags; ETag = shelf version; 2.03 Valid when the request's ETag is current;
//                      Max-Age 300 (iot.stock_freshness_s); Observe: notifications when flags change, only then.
//   GET  /p/{sku}      one msgpack bool.
// On plain CoAP the key travels as URI query "k=" (and the device id as "d=" for GET; telemetry names it).
// libcoap's loop runs on its own thread, woken by its file descriptors (never busy-polled).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "clients/iot/iot_bff.h"
#include "common/status.h"

namespace bff {

class MetricsRegistry;  // observability/metrics.h

// CoAP option carrying a W3C traceparent (its text form, 55 bytes) from a device that traces: a number
// from the experimental range (RFC 7252 section 12.2) that is elective (unknown to a server, ignored),
// safe to forward and NoCacheKey (bits 2-4 set), so proxies pass it on and caches ignore it.
inline constexpr uint16_t kCoapTraceparentOption = 65020;

struct CoapServerOptions {
  std::string coap_address = "0.0.0.0:5683";   // "" disables plain CoAP
  std::string coaps_address = "0.0.0.0:5684";  // "" disables DTLS
  int max_age_s = 300;                         // Max-Age of stock flags
  size_t max_payload_bytes = 1024;
  // libcoap keeps a session per client address and visits every one on each loop turn; a device that
  // woke, asked and went back to sleep should not cost the others for long (libcoap's default is 300 s).
  int session_idle_s = 60;
  int receive_buffer_bytes = 4 << 20;  // room for a fleet's burst of datagrams (the default is ~208 KiB)
  // Where bffd_coap_requests_total, bffd_coap_notifications_total and bffd_coap_dtls_handshake_failures_total
  // are counted; none when null. Must outlive the server.
  MetricsRegistry* metrics = nullptr;
};

// Looks up the PSK (the API key) of a device for the DTLS handshake; empty when unknown or revoked.
using PskLookup = std::function<std::string(const std::string& identity)>;

class CoapServer {
 public:
  // Binds both endpoints (port 0 = any free port) and starts the loop thread. Fails naming the address.
  static StatusOr<std::unique_ptr<CoapServer>> Start(CoapServerOptions options, IotBff& iot, PskLookup psk);
  virtual ~CoapServer() = default;
  virtual uint16_t coap_port() const = 0;
  virtual uint16_t coaps_port() const = 0;
  // Stops the loop thread and releases libcoap; idempotent.
  virtual void Stop() = 0;
  virtual size_t observers() const = 0;
};

}  // namespace bff
