// The fleet's keys file ("device_id shelf_id key" a line, CONTRACT.md section 5) and provisioning of
// simulated devices into bffd's key store (which keeps only hashes; the plaintext goes to the file).
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "firmware-sim/link.h"

namespace bff::sim {

// Blank lines and lines starting with '#' are skipped; a bad line is an error naming its number.
StatusOr<std::vector<DeviceIdentity>> ReadKeysFile(const std::string& path);

struct ProvisionOptions {
  std::string data_dir;          // bffd's data directory (keys.db)
  size_t devices = 0;
  std::string prefix = "sim";    // devices "<prefix>-00001".., one shelf each, round robin over the seed's shelves
  double rate_per_s = 1;
  double burst = 60;
  size_t revoke_last = 0;        // then revoke the last N: devices with a revoked key, for fault demos
};

// Creates the devices (replacing keys of devices with the same ids) and writes `keys_path` (mode
// 0600). A running bffd picks the keys up by itself; an MQTT broker needs `bffd keys export-mosquitto`.
StatusOr<std::vector<DeviceIdentity>> Provision(const ProvisionOptions& options, const std::string& keys_path);

}  // namespace bff::sim
