// The IoT BFF (CONTRACT.md section 4): telemetry and stock questions from shelf sensors, whatever the
// protocol. MQTT and CoAP adapters (protocols/) turn their messages into these calls and the replies
// back into their own terms; all rules live here.
//
// Telemetry is acknowledged only after inventory accepted it (inventory is idempotent on (device, seq),
// so a retransmission is harmless); the acknowledgement carries the shelf's stock flags unless the
// device's "v" is still current. When inventory is unreachable there is no acknowledgement (CoAP 5.03
// with Max-Age; MQTT: nothing) and the device retries later.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/config.h"
#include "downstream/clients.h"
#include "security/key_registry.h"
#include "security/rate_limiter.h"

namespace bff {

struct Telemetry;  // protocols/msgpack/iot_codec.h

enum class IotTransport { kMqtt, kCoap, kCoaps };
std::string_view IotTransportName(IotTransport t);

// Who is asking, as far as the transport knows.
struct IotCaller {
  IotTransport transport = IotTransport::kMqtt;
  std::string device_id;     // MQTT: from the topic; CoAPS: the DTLS identity; CoAP: empty (taken from the payload)
  std::string api_key;       // CoAP: the k= query; CoAPS: the PSK of the handshake; empty when in the payload (MQTT)
  TraceContext trace;
};

struct IotReply {
  StatusCode code = StatusCode::kOk;
  // Success: the msgpack answer (flags, bool, or MQTT ack). Failure: the error map {"e","m","r"}.
  std::string payload;
  bool acknowledge = true;    // false: inventory unreachable, the reading is NOT acknowledged
  bool flags_changed = true;  // telemetry: false when the device's version is current (empty CoAP body, no "f")
  uint64_t version = 0;       // shelf stock version (CoAP ETag)
  int retry_after_s = 0;      // CoAP Max-Age on 4.29 / 5.03, "r" in the error map
  uint64_t seq = 0;           // telemetry: the seq acknowledged
};

// Why a reading went unacknowledged. Every received reading ends acknowledged or under one of these
// (kUnavailable: inventory unreachable, the device retries), so the two add up to those received.
enum class IotRejectReason { kBadPayload, kAuth, kShelfNotAllowed, kRateLimited, kSeqBackwards, kInvalid, kUnavailable };
inline constexpr size_t kIotRejectReasons = 7;
// The metric label of a reason: "bad_payload", "auth", "shelf_not_allowed", ...
std::string_view IotRejectReasonName(IotRejectReason r);

struct IotCounters {
  std::atomic<uint64_t> telemetry_received{0};
  std::atomic<uint64_t> telemetry_acknowledged{0};
  std::atomic<uint64_t> telemetry_rejected{0};
  std::atomic<uint64_t> telemetry_unacknowledged{0};  // inventory unreachable
  std::atomic<uint64_t> stock_queries{0};
  std::atomic<uint64_t> rate_limited{0};
  std::atomic<uint64_t> auth_failures{0};
  std::atomic<uint64_t> bad_payloads{0};
  std::array<std::atomic<uint64_t>, kIotRejectReasons> telemetry_rejected_by{};  // by IotRejectReason
  std::atomic<uint64_t> shelf_queries{0};   // GET /s/{shelf} and MQTT stock/get {"sh"}
  std::atomic<uint64_t> sku_queries{0};     // GET /p/{sku} and MQTT stock/get {"sku"}
  std::atomic<uint64_t> forbidden{0};       // answered 4.03: another device's payload, a shelf not allowed
  // Where stock flags came from: the fresh cache, derived from the cache and an accepted reading, or inventory.
  std::atomic<uint64_t> flags_cached{0};
  std::atomic<uint64_t> flags_derived{0};
  std::atomic<uint64_t> flags_fetched{0};
};

struct ShelfFlags {
  uint64_t version = 0;
  std::vector<bool> in_stock;
  std::vector<std::string> skus;  // slot → sku
  std::string encoded;            // EncodeShelfFlags(version, in_stock)
  TimePoint fetched_at{};
};

class IotBff {
 public:
  IotBff(const Config& config, DownstreamClients& clients, Scheduler& scheduler, KeyRegistry& keys, RateLimiter& limiter);

  void HandleTelemetry(IotCaller caller, std::string payload, std::function<void(IotReply)> done);
  // MQTT stock/get payload: {"k", "sh"} or {"k", "sku"}.
  void HandleStockQuery(IotCaller caller, std::string payload, std::function<void(IotReply)> done);
  // CoAP GET /s/{shelf} and GET /p/{sku}: the key comes from the caller.
  void GetShelfFlags(IotCaller caller, const std::string& shelf_id, std::function<void(IotReply)> done);
  void GetSkuInStock(IotCaller caller, const std::string& sku, std::function<void(IotReply)> done);

  // Observers of a shelf's flags are called (on a scheduler thread) whenever the flags change, and only then.
  uint64_t Observe(const std::string& shelf_id, std::function<void(const ShelfFlags&)> on_change);
  void Unobserve(uint64_t id);

  // Checks a device's key for transports that authenticate first (DTLS): kUnauthenticated otherwise.
  StatusOr<ApiKeyRecord> Authenticate(const std::string& device_id, const std::string& key);

  // Server spans per message and request, and every child below them; null: none. Set before the
  // adapters start; must outlive this.
  void set_tracer(const Tracer* tracer) { tracer_ = tracer; }

  const IotCounters& counters() const { return counters_; }
  // Shelves whose stock flags are cached now.
  size_t cached_shelves() const;
  size_t max_payload_bytes() const { return max_payload_bytes_; }

 private:
  // Auth (unless proven), rate limit; the record on success, or a finished error reply.
  StatusOr<ApiKeyRecord> Admit(const IotCaller& caller, const std::string& device_id, const std::string& key, IotReply* error,
                               std::optional<uint64_t> seq = std::nullopt);
  // Current flags of a shelf: from the cache while fresh, else from inventory.
  void Flags(const RequestContext& ctx, const std::string& shelf_id, bool force_refresh,
             std::function<void(StatusOr<std::shared_ptr<const ShelfFlags>>)> done);
  void Publish(const std::string& shelf_id, const std::shared_ptr<const ShelfFlags>& flags);
  std::shared_ptr<const ShelfFlags> CachedFlags(const std::string& shelf_id);
  // The shelf's flags after an accepted `reading`, from the cache alone when that is certain (`is_new`:
  // they differ from the cached ones and are not stored yet); nullptr when they must be fetched.
  std::shared_ptr<const ShelfFlags> DeriveFlags(const Telemetry& reading, uint64_t shelf_version, bool duplicate,
                                                bool* is_new);
  // `seq`: the refused reading's, when known (telemetry), so the device can tell which one.
  IotReply Error(StatusCode code, const std::string& message, int retry_after_s = 0,
                 std::optional<uint64_t> seq = std::nullopt);
  static void EnsureTrace(IotCaller& caller);
  // Starts the server span of one message or request and returns `done` wrapped to end it with the
  // result. `mqtt_topic` names the topic pattern (empty: an MQTT caller is already traced by its
  // message), `coap_resource` the CoAP resource pattern.
  std::function<void(IotReply)> Traced(const IotCaller& caller, std::string_view mqtt_topic,
                                       std::string_view coap_resource, std::function<void(IotReply)> done) const;
  RequestContext ContextFor(const IotCaller& caller, const std::string& device_id) const;

  Config::Iot options_;
  size_t max_payload_bytes_;
  Duration inventory_timeout_;
  DownstreamClients& clients_;
  Scheduler& scheduler_;
  KeyRegistry& keys_;
  RateLimiter& limiter_;
  IotCounters counters_;
  const Tracer* tracer_ = nullptr;

  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<const ShelfFlags>> flags_;     // shelf → cached flags
  std::map<std::string, uint64_t> highest_seq_;                          // device → highest accepted seq
  std::map<uint64_t, std::pair<std::string, std::function<void(const ShelfFlags&)>>> observers_;
  uint64_t next_observer_ = 1;
};

}  // namespace bff
