// Device API keys: 128-bit random keys bound to one device and its shelves, stored only as keyed hashes.
//
// Storage: SQLite file (data_dir/keys.db). Each key is stored as HMAC-SHA256(pepper, salt || key) with a
// per-key random salt; the pepper lives in data_dir/keys.pepper (mode 0600). The plaintext is returned
// once by Add() and never stored or logged. A mosquitto-format hash ($7$, PBKDF2-SHA512) of the key is
// stored too so the broker's password file can be exported without the plaintext.
//
// DTLS-PSK needs the key itself on the server side, which no hash can give back: each key is also stored
// sealed (AES-256-GCM, column psk_sealed = nonce || ciphertext || tag, the device id as associated data)
// under a key-encryption key in data_dir/keys.kek (mode 0600). keys.db alone reveals no key; keys.db
// together with keys.kek reveals them all, so the two belong on the same footing as keys.pepper.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"

struct sqlite3;

namespace bff {

inline constexpr double kDefaultKeyRatePerSecond = 1.0;
inline constexpr double kDefaultKeyBurst = 60.0;  // catch-up allowance after an outage

struct ApiKeyRecord {
  std::string device_id;
  std::vector<std::string> shelves;
  double rate_per_s = kDefaultKeyRatePerSecond;
  double burst = kDefaultKeyBurst;
  int64_t created_at = 0;
  int64_t revoked_at = 0;  // 0 = active
  bool active() const { return revoked_at == 0; }
  bool MayRead(const std::string& shelf_id) const;
};

class ApiKeyStore {
 public:
  // Opens (creating when needed) data_dir/keys.db and data_dir/keys.pepper.
  static StatusOr<std::unique_ptr<ApiKeyStore>> Open(const std::string& data_dir);
  ~ApiKeyStore();

  // Creates or replaces the key of `device_id`; returns the new plaintext key (32 hex chars = 128 bits).
  StatusOr<std::string> Add(const std::string& device_id, const std::vector<std::string>& shelves,
                            double rate_per_s = kDefaultKeyRatePerSecond, double burst = kDefaultKeyBurst);
  // Adds many keys in one transaction; returns the plaintexts in the same order.
  StatusOr<std::vector<std::string>> AddMany(const std::vector<ApiKeyRecord>& records);
  Status Revoke(const std::string& device_id);
  std::vector<ApiKeyRecord> List();
  size_t Count();
  // Checks `key` for `device_id` in constant time; kUnauthenticated for unknown device, wrong or revoked key.
  StatusOr<ApiKeyRecord> Verify(const std::string& device_id, const std::string& key);
  // "device:$7$..." lines for mosquitto's password_file, active keys only.
  std::vector<std::string> MosquittoPasswordLines();
  // The key of an active device, unsealed for use as its DTLS pre-shared key. kUnauthenticated for an
  // unknown or revoked device, kFailedPrecondition for a key issued before sealed copies existed (issue a
  // new one), kInternal when the sealed copy does not open (keys.kek is not the one it was sealed with).
  StatusOr<std::string> DtlsPsk(const std::string& device_id);

 private:
  ApiKeyStore() = default;
  std::mutex mu_;
  sqlite3* db_ = nullptr;
  std::string pepper_;
  std::string kek_;  // key-encryption key of the sealed DTLS copies
};

// Writes a file (mode 0600) atomically: temp file then rename.
Status WriteSecretFile(const std::string& path, const std::string& contents);

}  // namespace bff
