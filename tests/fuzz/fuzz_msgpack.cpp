// Fuzz target: the IoT msgpack decoders (telemetry, stock queries, shelf flags) on any bytes; whatever
// decodes must encode and decode back to the same values.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.h"
#include "protocols/msgpack/iot_codec.h"

namespace {

bool SameTelemetry(const bff::Telemetry& a, const bff::Telemetry& b) {
  return a.device_id == b.device_id && a.shelf_id == b.shelf_id && a.seq == b.seq && a.ts == b.ts &&
         a.readings == b.readings && a.battery_pct == b.battery_pct && a.temp_decicelsius == b.temp_decicelsius &&
         a.version == b.version && a.api_key == b.api_key;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  if (auto t = bff::DecodeTelemetry(bytes); t.ok()) {
    auto again = bff::DecodeTelemetry(bff::EncodeTelemetry(*t, !t->api_key.empty()), bff::kDefaultMaxPayloadBytes * 4);
    if (!again.ok()) bff::fuzz::Finding("re-encoded telemetry does not decode: " + again.status().ToString());
    if (!SameTelemetry(*t, *again)) bff::fuzz::Finding("telemetry changed through encode/decode");
  }
  // A query without "k" decodes (the handler refuses it as unauthenticated) but has no encoded form.
  if (auto q = bff::DecodeStockQuery(bytes); q.ok() && !q->api_key.empty()) {
    auto again = bff::DecodeStockQuery(bff::EncodeStockQuery(*q), bff::kDefaultMaxPayloadBytes * 4);
    if (!again.ok()) bff::fuzz::Finding("re-encoded stock query does not decode: " + again.status().ToString());
    if (again->api_key != q->api_key || again->shelf_id != q->shelf_id || again->sku != q->sku) {
      bff::fuzz::Finding("stock query changed through encode/decode");
    }
  }
  if (auto f = bff::DecodeShelfFlags(bytes); f.ok()) {
    auto again = bff::DecodeShelfFlags(bff::EncodeShelfFlags(f->first, f->second));
    if (!again.ok() || *again != *f) bff::fuzz::Finding("shelf flags changed through encode/decode");
  }
  return 0;
}
