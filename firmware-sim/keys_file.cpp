// Reading keys files and provisioning simulated devices through the key store.
#include "firmware-sim/keys_file.h"

#include <cstdio>
#include <fstream>
#include <sstream>

#include "security/api_key_store.h"
#include "security/input_validation.h"

namespace bff::sim {
namespace {

// The reference domain's shelves: stores 01..50, shelves 01..20 each ("shelf-SS-NN").
constexpr int kStores = 50;
constexpr int kShelvesPerStore = 20;

std::string ShelfByNumber(size_t n) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "shelf-%02d-%02d", static_cast<int>(n / kShelvesPerStore % kStores) + 1,
                static_cast<int>(n % kShelvesPerStore) + 1);
  return buf;
}

}  // namespace

StatusOr<std::vector<DeviceIdentity>> ReadKeysFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFound("keys file " + path + " cannot be read");
  std::vector<DeviceIdentity> out;
  std::string line;
  for (size_t number = 1; std::getline(in, line); ++number) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    DeviceIdentity d;
    std::string extra;
    if (!(fields >> d.device_id >> d.shelf_id >> d.key) || (fields >> extra)) {
      return InvalidArgument(path + ":" + std::to_string(number) + ": expected \"device_id shelf_id key\"");
    }
    if (!IsValidId(d.device_id) || !IsValidId(d.shelf_id)) {
      return InvalidArgument(path + ":" + std::to_string(number) + ": bad device or shelf id");
    }
    out.push_back(std::move(d));
  }
  return out;
}

StatusOr<std::vector<DeviceIdentity>> Provision(const ProvisionOptions& options, const std::string& keys_path) {
  if (options.devices == 0) return InvalidArgument("--provision: at least one device");
  if (!IsValidId(options.prefix + "-00001")) return InvalidArgument("--prefix: bad device id prefix " + options.prefix);
  auto store = ApiKeyStore::Open(options.data_dir);
  if (!store.ok()) return Status(store.status().code(), "key store in " + options.data_dir + ": " + store.status().message());
  std::vector<ApiKeyRecord> records;
  for (size_t i = 0; i < options.devices; ++i) {
    char id[96];
    std::snprintf(id, sizeof(id), "%s-%05zu", options.prefix.c_str(), i + 1);
    ApiKeyRecord r;
    r.device_id = id;
    r.shelves = {ShelfByNumber(i)};
    r.rate_per_s = options.rate_per_s;
    r.burst = options.burst;
    records.push_back(std::move(r));
  }
  auto keys = (*store)->AddMany(records);
  if (!keys.ok()) return keys.status();
  std::vector<DeviceIdentity> out;
  std::string contents;
  for (size_t i = 0; i < records.size(); ++i) {
    out.push_back({records[i].device_id, records[i].shelves[0], (*keys)[i]});
    contents += records[i].device_id + " " + records[i].shelves[0] + " " + (*keys)[i] + "\n";
  }
  for (size_t i = 0; i < options.revoke_last && i < records.size(); ++i) {
    Status s = (*store)->Revoke(records[records.size() - 1 - i].device_id);
    if (!s.ok()) return s;
  }
  Status w = WriteSecretFile(keys_path, contents);
  if (!w.ok()) return w;
  return out;
}

}  // namespace bff::sim
