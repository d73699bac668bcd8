// Fuzz target: IotBff's handlers (telemetry, MQTT stock/get, CoAP GET /s and /p) over the embedded
// domain, with the bytes a device sends. Each call must be answered exactly once, with an error map
// whenever it fails. Input: one selector byte (handler, transport, key in the caller), then the payload
// or the id; kKeyPlaceholder stands for the device's key.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_iot_fixture.h"
#include "protocols/msgpack/iot_codec.h"

using bff::IotReply;
using bff::fuzz::IotFixture;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  bff::fuzz::Fixture<IotFixture>();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  IotFixture& f = bff::fuzz::Fixture<IotFixture>();
  const uint8_t selector = data[0];
  std::string rest = bff::fuzz::WithKey(std::string(reinterpret_cast<const char*>(data) + 1, size - 1), f.key);

  bff::IotCaller caller;
  switch ((selector >> 2) % 3) {
    case 0: caller.transport = bff::IotTransport::kMqtt; caller.device_id = bff::fuzz::kFuzzDevice; break;
    case 1: caller.transport = bff::IotTransport::kCoap; break;
    default: caller.transport = bff::IotTransport::kCoaps; caller.device_id = bff::fuzz::kFuzzDevice; break;
  }
  if (caller.transport != bff::IotTransport::kMqtt && (selector & 0x10)) caller.api_key = f.key;
  caller.trace = bff::TraceContext::NewRoot();

  IotReply r = bff::fuzz::AnswerOnce<IotReply>("IotBff", [&](auto done) {
    switch (selector & 3) {
      case 0: f.iot->HandleTelemetry(caller, rest, done); break;
      case 1: f.iot->HandleStockQuery(caller, rest, done); break;
      case 2: f.iot->GetShelfFlags(caller, rest, done); break;
      default: f.iot->GetSkuInStock(caller, rest, done); break;
    }
  });
  if (bff::fuzz::Tracing()) {
    std::fprintf(stderr, "selector %02x -> %s, %zu payload bytes\n", selector, bff::StatusCodeName(r.code).data(), r.payload.size());
  }
  // A refusal carries the error map the device reads.
  if (r.code != bff::StatusCode::kOk && r.payload.empty()) bff::fuzz::Finding("error reply without an error map");
  return 0;
}
