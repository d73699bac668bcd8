// msgpack wire formats of the IoT BFF (CONTRACT.md section 4): telemetry, stock queries, stock flags,
// acknowledgements and errors. Decoding is strict about types and bounded in size and depth; unknown
// keys are ignored.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace bff {

inline constexpr size_t kDefaultMaxPayloadBytes = 1024;  // contract: payloads over 1 KiB are refused
inline constexpr size_t kMaxReadingsPerMessage = 64;
inline constexpr size_t kMaxMsgpackDepth = 4;

struct Telemetry {
  std::string device_id;   // "d"
  std::string shelf_id;    // "sh"
  uint64_t seq = 0;        // "q"
  uint64_t ts = 0;         // "t" unix seconds
  std::vector<std::pair<uint32_t, uint32_t>> readings;  // "r": [[slot, qty], ...]
  std::optional<int64_t> battery_pct;        // "b"
  std::optional<int64_t> temp_decicelsius;   // "c"
  std::optional<uint64_t> version;           // "v": stock version last seen
  std::string api_key;                       // "k" (MQTT; CoAP carries it in the query or DTLS)
};

// A device's question: the stock flags of a shelf ("sh") or one sku ("sku").
struct StockQuery {
  std::string api_key;   // "k"
  std::string shelf_id;  // "sh"
  std::string sku;       // "sku"
};

// Decoding errors: kPayloadTooLarge above `max_bytes`; kInvalidArgument for malformed msgpack, trailing
// bytes, a non-map top level, too deep or too large structures, a wrong type or range for a known key,
// a missing required key, or an id not matching [A-Za-z0-9._-]{1,64}. Messages name the key.
StatusOr<Telemetry> DecodeTelemetry(std::string_view bytes, size_t max_bytes = kDefaultMaxPayloadBytes);
StatusOr<StockQuery> DecodeStockQuery(std::string_view bytes, size_t max_bytes = kDefaultMaxPayloadBytes);

// Stock flags of a shelf: [version, slot_count, bin] with bit i (LSB of byte 0 first) set when slot i is
// in stock. A 24-slot shelf encodes in at most 12 bytes.
std::string EncodeShelfFlags(uint64_t version, const std::vector<bool>& in_stock);
// One sku: a single msgpack bool (1 byte).
std::string EncodeBool(bool value);
// MQTT acknowledgement: {"q": seq} plus "f": <shelf flags> when `flags` is given (already encoded).
std::string EncodeAck(uint64_t seq, const std::optional<std::string>& encoded_flags);
// Error map: {"e": code, "m": message} plus "r": retry_after_s when > 0, and "q": the refused reading's
// seq when it is known (telemetry that decoded), so a device with several readings outstanding knows
// which one. `code` is the CoAP-style number (400, 401, 403, 404, 413, 429, 503, ...).
std::string EncodeError(int code, std::string_view message, int retry_after_s = 0,
                        std::optional<uint64_t> seq = std::nullopt);

// Encoding helpers for tests and the simulator.
std::string EncodeTelemetry(const Telemetry& t, bool include_key);
std::string EncodeStockQuery(const StockQuery& q);
// Decodes EncodeShelfFlags output (tests, simulator): returns {version, bits}.
StatusOr<std::pair<uint64_t, std::vector<bool>>> DecodeShelfFlags(std::string_view bytes);

}  // namespace bff
