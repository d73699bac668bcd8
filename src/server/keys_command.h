// `bffd keys add|revoke|list|export-mosquitto`: device key administration on the daemon's data directory.
#pragma once

#include <string>
#include <vector>

#include "common/config.h"

namespace bff {

struct KeysCommand {
  std::string action;                // add, revoke, list, export-mosquitto
  std::string device;                // add, revoke
  std::vector<std::string> shelves;  // add
  double rate_per_s = 0;             // add; 0 = default
  double burst = 0;                  // add; 0 = default
  std::string dir;                   // export-mosquitto
};

// Runs one command; prints to stdout/stderr; returns the process exit code. `add` prints the new key
// alone on stdout, once. A running daemon notices the change without a restart.
int RunKeysCommand(const Config& config, const KeysCommand& cmd);

// The broker account bffd itself uses: username "bffd", password in <data_dir>/mqtt-password (0600).
inline constexpr char kBffdMqttUser[] = "bffd";
std::string MqttPasswordPath(const Config& config);

// Writes <dir>/passwd and <dir>/acl for mosquitto (devices may publish only under iot/v1/{device}/ and read
// only their own replies; bffd reads all telemetry and writes all replies). Returns the number of devices.
StatusOr<size_t> ExportMosquitto(const Config& config, const std::string& dir);

}  // namespace bff
