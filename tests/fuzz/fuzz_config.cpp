// Fuzz target: TOML configuration parsing and validation never crash on any input.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto c = bff::ParseConfig(text, "fuzz");
  (void)c;
  return 0;
}
