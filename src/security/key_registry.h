// Hot-path view of the device key store: verifies (device, key) without a database round trip per
// message, and picks up adds and revocations without a restart (Reload() on SIGHUP, and a poll of
// keys.db's modification time).
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "common/scheduler.h"
#include "security/api_key_store.h"

namespace bff {

class KeyRegistry {
 public:
  // `store` must outlive the registry. `poll_interval` 0 disables polling (tests call Reload()).
  KeyRegistry(ApiKeyStore& store, std::string keys_db_path, Scheduler& scheduler,
              std::chrono::milliseconds poll_interval = std::chrono::milliseconds(2000));
  ~KeyRegistry();
  void Start();
  void Stop();

  // kUnauthenticated for an unknown device, a wrong key or a revoked key (one message for all three).
  // Successful verifications are remembered (as a SHA-256 of the key, never the key) until the next reload.
  StatusOr<ApiKeyRecord> Verify(const std::string& device_id, const std::string& key);
  // Forgets everything remembered; the next Verify reads the store again.
  void Reload();
  uint64_t reloads() const;

 private:
  struct Remembered {
    std::string key_hash;
    ApiKeyRecord record;
  };
  void Poll();

  ApiKeyStore& store_;
  std::string keys_db_path_;
  Scheduler& scheduler_;
  std::chrono::milliseconds poll_interval_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Remembered> verified_;
  int64_t last_mtime_ns_ = 0;
  uint64_t reloads_ = 0;
  std::shared_ptr<TimerHandle> timer_;
  std::shared_ptr<bool> alive_;
};

}  // namespace bff
