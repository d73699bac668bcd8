// Device API keys in SQLite: peppered, salted HMAC hashes, a mosquitto-format hash for the broker and a
// sealed copy for DTLS-PSK.
#include "security/api_key_store.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "common/crypto.h"
#include "common/log.h"
#include "security/input_validation.h"
#include "security/internal_credential.h"
#include "security/secret_file.h"

namespace bff {
namespace {

constexpr char kDbFile[] = "keys.db";
constexpr char kPepperFile[] = "keys.pepper";
constexpr size_t kPepperBytes = 32;
constexpr char kKekFile[] = "keys.kek";
constexpr size_t kKekBytes = 32;       // AES-256
constexpr size_t kGcmNonceBytes = 12;  // the GCM standard nonce; random per sealing, never reused in practice
constexpr size_t kGcmTagBytes = 16;
constexpr size_t kKeyBytes = 16;  // 128-bit keys, 32 hex characters
constexpr size_t kSaltBytes = 16;
// The CLI and the daemon share keys.db; a writer holding the lock briefly must not fail the other side.
constexpr int kBusyTimeoutMs = 5000;

// mosquitto 2.0's password_file format "$7$<iterations>$<salt>$<hash>": PBKDF2-HMAC-SHA512 with its
// default iteration count, salt and hash sizes, each field standard base64 with padding.
constexpr int kMosquittoHashType = 7;
constexpr int kMosquittoIterations = 101;
constexpr size_t kMosquittoSaltBytes = 12;
constexpr size_t kMosquittoHashBytes = 64;

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS api_keys (
  device_id      TEXT PRIMARY KEY NOT NULL,
  salt           BLOB NOT NULL,
  key_hash       BLOB NOT NULL,
  mosquitto_hash TEXT NOT NULL,
  shelves        TEXT NOT NULL,
  rate_per_s     REAL NOT NULL,
  burst          REAL NOT NULL,
  created_at     INTEGER NOT NULL,
  revoked_at     INTEGER NOT NULL DEFAULT 0,
  psk_sealed     BLOB
);
)sql";

bool IsKeyShaped(std::string_view key) {
  return key.size() == 2 * kKeyBytes &&
         std::all_of(key.begin(), key.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string Base64Std(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

std::string MosquittoHash(const std::string& key) {
  std::string salt = RandomBytes(kMosquittoSaltBytes);
  unsigned char hash[kMosquittoHashBytes];
  if (PKCS5_PBKDF2_HMAC(key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(salt.data()),
                        static_cast<int>(salt.size()), kMosquittoIterations, EVP_sha512(), sizeof(hash), hash) != 1) {
    std::abort();  // only fails on allocation failure
  }
  std::string out = "$" + std::to_string(kMosquittoHashType) + "$" + std::to_string(kMosquittoIterations) + "$" +
                    Base64Std(salt) + "$" +
                    Base64Std(std::string_view(reinterpret_cast<const char*>(hash), sizeof(hash)));
  OPENSSL_cleanse(hash, sizeof(hash));
  return out;
}

// Compared against when a device is unknown, so that case costs the same HMAC and compare as a real one.
struct DummyCredential {
  std::string salt = RandomBytes(kSaltBytes);
  std::string hash = RandomBytes(32);
};
const DummyCredential& Dummy() {
  static const DummyCredential kDummy;
  return kDummy;
}

Status ValidateRecord(const std::string& device_id, const std::vector<std::string>& shelves, double rate_per_s,
                      double burst) {
  if (!IsValidId(device_id)) return InvalidArgument("device id must match [A-Za-z0-9._-]{1,64}");
  for (const auto& shelf : shelves) {
    if (!IsValidId(shelf)) return InvalidArgument("shelf id must match [A-Za-z0-9._-]{1,64}");
  }
  if (!std::isfinite(rate_per_s) || rate_per_s <= 0) return InvalidArgument("rate must be a positive number");
  if (!std::isfinite(burst) || burst < 1) return InvalidArgument("burst must be at least 1");
  return Status::Ok();
}

// One prepared statement; finalised on scope exit.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) stmt_ = nullptr;
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  bool ok() const { return stmt_ != nullptr; }
  std::string error() const { return sqlite3_errmsg(db_); }
  void Text(int i, std::string_view v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void Blob(int i, std::string_view v) {
    sqlite3_bind_blob(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void Real(int i, double v) { sqlite3_bind_double(stmt_, i, v); }
  void Int(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  int Step() { return sqlite3_step(stmt_); }
  void Reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  std::string ColumnBytes(int i) {
    const void* p = sqlite3_column_blob(stmt_, i);
    int n = sqlite3_column_bytes(stmt_, i);
    return p == nullptr || n <= 0 ? std::string() : std::string(static_cast<const char*>(p), static_cast<size_t>(n));
  }
  double ColumnReal(int i) { return sqlite3_column_double(stmt_, i); }
  int64_t ColumnInt(int i) { return sqlite3_column_int64(stmt_, i); }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

Status Exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db);
    sqlite3_free(err);
    return Unavailable(std::string("key store: ") + msg);
  }
  return Status::Ok();
}

std::vector<std::string> ParseShelves(const std::string& text) {
  std::vector<std::string> shelves;
  nlohmann::json parsed = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_array()) return shelves;
  for (const auto& s : parsed) {
    if (s.is_string()) shelves.push_back(s.get<std::string>());
  }
  return shelves;
}

// Reads a row of "SELECT device_id, shelves, rate_per_s, burst, created_at, revoked_at".
ApiKeyRecord ReadRecord(Statement& st) {
  ApiKeyRecord r;
  r.device_id = st.ColumnBytes(0);
  r.shelves = ParseShelves(st.ColumnBytes(1));
  r.rate_per_s = st.ColumnReal(2);
  r.burst = st.ColumnReal(3);
  r.created_at = st.ColumnInt(4);
  r.revoked_at = st.ColumnInt(5);
  return r;
}

struct PreparedKey {
  const ApiKeyRecord* record;
  std::string key;
  std::string salt;
  std::string key_hash;
  std::string mosquitto_hash;
  std::string shelves_json;
  std::string psk_sealed;
};

// AES-256-GCM of `plaintext` bound to `aad`: nonce || ciphertext || tag.
std::string Seal(const std::string& kek, std::string_view plaintext, std::string_view aad) {
  std::string nonce = RandomBytes(kGcmNonceBytes);
  std::string out = nonce;
  out.resize(kGcmNonceBytes + plaintext.size() + kGcmTagBytes);
  auto* ct = reinterpret_cast<unsigned char*>(out.data() + kGcmNonceBytes);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  int len = 0, total = 0;
  bool ok = ctx != nullptr &&
            EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, reinterpret_cast<const unsigned char*>(kek.data()),
                               reinterpret_cast<const unsigned char*>(nonce.data())) == 1 &&
            EVP_EncryptUpdate(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(aad.data()),
                              static_cast<int>(aad.size())) == 1 &&
            EVP_EncryptUpdate(ctx, ct, &len, reinterpret_cast<const unsigned char*>(plaintext.data()),
                              static_cast<int>(plaintext.size())) == 1;
  total = len;
  ok = ok && EVP_EncryptFinal_ex(ctx, ct + total, &len) == 1;
  total += len;
  ok = ok && static_cast<size_t>(total) == plaintext.size() &&
       EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, static_cast<int>(kGcmTagBytes), ct + total) == 1;
  EVP_CIPHER_CTX_free(ctx);
  if (!ok) std::abort();  // only fails on allocation failure
  return out;
}

// Opens a Seal() output; false when it was sealed under another key or for other associated data.
bool Unseal(const std::string& kek, std::string_view sealed, std::string_view aad, std::string* plaintext) {
  if (sealed.size() < kGcmNonceBytes + kGcmTagBytes) return false;
  size_t n = sealed.size() - kGcmNonceBytes - kGcmTagBytes;
  const auto* nonce = reinterpret_cast<const unsigned char*>(sealed.data());
  const auto* ct = nonce + kGcmNonceBytes;
  std::string tag(sealed.substr(kGcmNonceBytes + n));
  std::string out(n, '\0');
  auto* pt = reinterpret_cast<unsigned char*>(out.data());
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  int len = 0, total = 0;
  bool ok = ctx != nullptr &&
            EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, reinterpret_cast<const unsigned char*>(kek.data()),
                               nonce) == 1 &&
            EVP_DecryptUpdate(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(aad.data()),
                              static_cast<int>(aad.size())) == 1 &&
            EVP_DecryptUpdate(ctx, pt, &len, ct, static_cast<int>(n)) == 1;
  total = len;
  ok = ok && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, static_cast<int>(kGcmTagBytes), tag.data()) == 1 &&
       EVP_DecryptFinal_ex(ctx, pt + total, &len) == 1;
  EVP_CIPHER_CTX_free(ctx);
  if (!ok) {
    OPENSSL_cleanse(out.data(), out.size());
    return false;
  }
  *plaintext = std::move(out);
  return true;
}

// Databases created before sealed DTLS copies existed lack the column; a second process may add it
// between our check and our ALTER, which is fine.
Status EnsurePskColumn(sqlite3* db) {
  auto has_column = [db]() {
    Statement st(db, "SELECT 1 FROM pragma_table_info('api_keys') WHERE name = 'psk_sealed'");
    return st.ok() && st.Step() == SQLITE_ROW;
  };
  if (has_column()) return Status::Ok();
  Status s = Exec(db, "ALTER TABLE api_keys ADD COLUMN psk_sealed BLOB;");
  if (!s.ok() && !has_column()) return s;
  return Status::Ok();
}

// Loads (creating when absent) the hex key-encryption key.
StatusOr<std::string> LoadKek(const std::string& path) {
  StatusOr<std::string> text = LoadOrCreateSecretFile(path, [] { return RandomHex(kKekBytes) + "\n"; });
  if (!text.ok()) return text.status();
  std::string hex = *text;
  OPENSSL_cleanse(text->data(), text->size());
  while (!hex.empty() && (hex.back() == '\n' || hex.back() == '\r' || hex.back() == ' ')) hex.pop_back();
  std::string kek;
  bool ok = hex.size() == 2 * kKekBytes && HexDecode(hex, &kek);
  OPENSSL_cleanse(hex.data(), hex.size());
  if (!ok) return InvalidArgument(path + " must hold " + std::to_string(2 * kKekBytes) + " hex characters");
  return kek;
}

}  // namespace

bool ApiKeyRecord::MayRead(const std::string& shelf_id) const {
  return std::find(shelves.begin(), shelves.end(), shelf_id) != shelves.end();
}

StatusOr<std::unique_ptr<ApiKeyStore>> ApiKeyStore::Open(const std::string& data_dir) {
  std::filesystem::path dir(data_dir.empty() ? "." : data_dir);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Internal("cannot create data directory " + dir.string() + ": " + ec.message());

  std::unique_ptr<ApiKeyStore> store(new ApiKeyStore());
  std::string db_path = (dir / kDbFile).string();
  bool db_existed = std::filesystem::exists(db_path, ec);
  int rc = sqlite3_open_v2(db_path.c_str(), &store->db_,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    return Unavailable("cannot open " + db_path + ": " + (store->db_ ? sqlite3_errmsg(store->db_) : "out of memory"));
  }
  // Holds no plaintext, but hashes of keys are still nobody else's business; SQLite gives the
  // -wal and -shm files the same mode.
  if (!db_existed) chmod(db_path.c_str(), S_IRUSR | S_IWUSR);
  sqlite3_busy_timeout(store->db_, kBusyTimeoutMs);
  // WAL lets the daemon keep verifying while `bffd keys add` writes.
  if (Status s = Exec(store->db_, "PRAGMA journal_mode=WAL;"); !s.ok()) return s;
  if (Status s = Exec(store->db_, kSchema); !s.ok()) return s;
  if (Status s = EnsurePskColumn(store->db_); !s.ok()) return s;

  std::string pepper_path = (dir / kPepperFile).string();
  if (!std::filesystem::exists(pepper_path, ec) && store->Count() > 0) {
    // A new pepper would silently invalidate every stored key; refuse instead.
    return FailedPrecondition(pepper_path + " is missing but " + db_path + " holds keys");
  }
  StatusOr<std::string> pepper_text =
      LoadOrCreateSecretFile(pepper_path, [] { return RandomHex(kPepperBytes) + "\n"; });
  if (!pepper_text.ok()) return pepper_text.status();
  std::string hex = *pepper_text;
  while (!hex.empty() && (hex.back() == '\n' || hex.back() == '\r' || hex.back() == ' ')) hex.pop_back();
  if (hex.size() != 2 * kPepperBytes || !HexDecode(hex, &store->pepper_)) {
    OPENSSL_cleanse(hex.data(), hex.size());
    return InvalidArgument(pepper_path + " must hold " + std::to_string(2 * kPepperBytes) + " hex characters");
  }
  OPENSSL_cleanse(hex.data(), hex.size());
  OPENSSL_cleanse(pepper_text->data(), pepper_text->size());

  std::string kek_path = (dir / kKekFile).string();
  if (!std::filesystem::exists(kek_path, ec)) {
    // A new key-encryption key would silently orphan every sealed copy; refuse instead.
    Statement sealed(store->db_, "SELECT 1 FROM api_keys WHERE psk_sealed IS NOT NULL LIMIT 1");
    if (sealed.ok() && sealed.Step() == SQLITE_ROW) {
      return FailedPrecondition(kek_path + " is missing but " + db_path + " holds sealed DTLS keys");
    }
  }
  StatusOr<std::string> kek = LoadKek(kek_path);
  if (!kek.ok()) return kek.status();
  store->kek_ = std::move(kek).value();
  return store;
}

ApiKeyStore::~ApiKeyStore() {
  sqlite3_close_v2(db_);
  OPENSSL_cleanse(pepper_.data(), pepper_.size());
  OPENSSL_cleanse(kek_.data(), kek_.size());
}

StatusOr<std::string> ApiKeyStore::Add(const std::string& device_id, const std::vector<std::string>& shelves,
                                       double rate_per_s, double burst) {
  ApiKeyRecord record;
  record.device_id = device_id;
  record.shelves = shelves;
  record.rate_per_s = rate_per_s;
  record.burst = burst;
  StatusOr<std::vector<std::string>> keys = AddMany({record});
  if (!keys.ok()) return keys.status();
  return std::move(keys->front());
}

StatusOr<std::vector<std::string>> ApiKeyStore::AddMany(const std::vector<ApiKeyRecord>& records) {
  std::set<std::string_view> seen;
  for (const auto& r : records) {
    if (Status s = ValidateRecord(r.device_id, r.shelves, r.rate_per_s, r.burst); !s.ok()) return s;
    if (!seen.insert(r.device_id).second) return InvalidArgument("device " + r.device_id + " listed twice");
  }

  // Hashing happens before taking the lock: PBKDF2 for the broker hash is the slow part.
  std::vector<PreparedKey> prepared;
  prepared.reserve(records.size());
  for (const auto& r : records) {
    PreparedKey p;
    p.record = &r;
    p.key = RandomHex(kKeyBytes);
    p.salt = RandomBytes(kSaltBytes);
    p.key_hash = HmacSha256(pepper_, p.salt + p.key);
    p.mosquitto_hash = MosquittoHash(p.key);
    p.psk_sealed = Seal(kek_, p.key, r.device_id);
    // Keep the first occurrence of each shelf, in the order given.
    nlohmann::json shelves = nlohmann::json::array();
    std::set<std::string_view> shelf_seen;
    for (const auto& s : r.shelves) {
      if (shelf_seen.insert(s).second) shelves.push_back(s);
    }
    p.shelves_json = shelves.dump();
    prepared.push_back(std::move(p));
  }

  int64_t now = UnixNow();
  std::lock_guard<std::mutex> lock(mu_);
  if (Status s = Exec(db_, "BEGIN IMMEDIATE;"); !s.ok()) return s;
  Status failure;
  {
    // Finalised before COMMIT or ROLLBACK runs.
    Statement ins(
        db_,
        "INSERT OR REPLACE INTO api_keys (device_id, salt, key_hash, mosquitto_hash, shelves, rate_per_s, burst,"
        " created_at, revoked_at, psk_sealed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?)");
    if (!ins.ok()) failure = Unavailable("key store: " + ins.error());
    for (size_t i = 0; failure.ok() && i < prepared.size(); ++i) {
      const PreparedKey& p = prepared[i];
      ins.Reset();
      ins.Text(1, p.record->device_id);
      ins.Blob(2, p.salt);
      ins.Blob(3, p.key_hash);
      ins.Text(4, p.mosquitto_hash);
      ins.Text(5, p.shelves_json);
      ins.Real(6, p.record->rate_per_s);
      ins.Real(7, p.record->burst);
      ins.Int(8, now);
      ins.Blob(9, p.psk_sealed);
      if (ins.Step() != SQLITE_DONE) failure = Unavailable("key store: " + ins.error());
    }
  }
  if (failure.ok()) {
    if (Status s = Exec(db_, "COMMIT;"); !s.ok()) failure = s;
  }
  if (!failure.ok()) {
    Exec(db_, "ROLLBACK;");
    return failure;
  }

  std::vector<std::string> keys;
  keys.reserve(prepared.size());
  for (auto& p : prepared) keys.push_back(std::move(p.key));
  return keys;
}

Status ApiKeyStore::Revoke(const std::string& device_id) {
  if (!IsValidId(device_id)) return InvalidArgument("device id must match [A-Za-z0-9._-]{1,64}");
  std::lock_guard<std::mutex> lock(mu_);
  Statement st(db_, "UPDATE api_keys SET revoked_at = ? WHERE device_id = ? AND revoked_at = 0");
  if (!st.ok()) return Unavailable("key store: " + st.error());
  st.Int(1, UnixNow());
  st.Text(2, device_id);
  if (st.Step() != SQLITE_DONE) return Unavailable("key store: " + st.error());
  if (sqlite3_changes(db_) > 0) return Status::Ok();

  Statement exists(db_, "SELECT 1 FROM api_keys WHERE device_id = ?");
  if (!exists.ok()) return Unavailable("key store: " + exists.error());
  exists.Text(1, device_id);
  int rc = exists.Step();
  if (rc == SQLITE_ROW) return Status::Ok();  // already revoked: revoking twice is not an error
  if (rc == SQLITE_DONE) return NotFound("no key for device " + device_id);
  return Unavailable("key store: " + exists.error());
}

std::vector<ApiKeyRecord> ApiKeyStore::List() {
  std::vector<ApiKeyRecord> out;
  std::lock_guard<std::mutex> lock(mu_);
  Statement st(db_,
               "SELECT device_id, shelves, rate_per_s, burst, created_at, revoked_at FROM api_keys ORDER BY device_id");
  if (!st.ok()) {
    log::Error("key store: cannot list keys", {{"error", st.error()}});
    return out;
  }
  int rc;
  while ((rc = st.Step()) == SQLITE_ROW) out.push_back(ReadRecord(st));
  if (rc != SQLITE_DONE) log::Error("key store: cannot list keys", {{"error", st.error()}});
  return out;
}

size_t ApiKeyStore::Count() {
  std::lock_guard<std::mutex> lock(mu_);
  Statement st(db_, "SELECT COUNT(*) FROM api_keys");
  if (!st.ok() || st.Step() != SQLITE_ROW) {
    log::Error("key store: cannot count keys", {{"error", st.error()}});
    return 0;
  }
  return static_cast<size_t>(st.ColumnInt(0));
}

StatusOr<ApiKeyRecord> ApiKeyStore::Verify(const std::string& device_id, const std::string& key) {
  // Malformed input is refused before any lookup: its timing depends only on what the caller sent.
  if (!IsValidId(device_id) || !IsKeyShaped(key)) return Unauthenticated("unknown device or wrong API key");

  bool found = false;
  std::string salt, expected, shelves_json;
  ApiKeyRecord record;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Statement st(db_,
                 "SELECT salt, key_hash, shelves, rate_per_s, burst, created_at, revoked_at FROM api_keys"
                 " WHERE device_id = ?");
    if (!st.ok()) return Unavailable("key store: " + st.error());
    st.Text(1, device_id);
    int rc = st.Step();
    if (rc == SQLITE_ROW) {
      found = true;
      salt = st.ColumnBytes(0);
      expected = st.ColumnBytes(1);
      shelves_json = st.ColumnBytes(2);
      record.rate_per_s = st.ColumnReal(3);
      record.burst = st.ColumnReal(4);
      record.created_at = st.ColumnInt(5);
      record.revoked_at = st.ColumnInt(6);
    } else if (rc != SQLITE_DONE) {
      return Unavailable("key store: " + st.error());
    }
  }
  if (!found) {
    salt = Dummy().salt;
    expected = Dummy().hash;
  }
  std::string actual = HmacSha256(pepper_, salt + key);
  bool match = ConstantTimeEquals(actual, expected);
  if (!found || !match) return Unauthenticated("unknown device or wrong API key");
  // Only a caller holding the right key learns that it was revoked.
  if (!record.active()) return Unauthenticated("API key revoked");
  record.device_id = device_id;
  record.shelves = ParseShelves(shelves_json);
  return record;
}

StatusOr<std::string> ApiKeyStore::DtlsPsk(const std::string& device_id) {
  if (!IsValidId(device_id)) return Unauthenticated("unknown device");
  std::string sealed;
  int64_t revoked_at = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Statement st(db_, "SELECT psk_sealed, revoked_at FROM api_keys WHERE device_id = ?");
    if (!st.ok()) return Unavailable("key store: " + st.error());
    st.Text(1, device_id);
    int rc = st.Step();
    if (rc == SQLITE_DONE) return Unauthenticated("unknown device");
    if (rc != SQLITE_ROW) return Unavailable("key store: " + st.error());
    sealed = st.ColumnBytes(0);
    revoked_at = st.ColumnInt(1);
  }
  if (revoked_at != 0) return Unauthenticated("API key revoked");
  if (sealed.empty()) return FailedPrecondition("no DTLS copy of the key of " + device_id + "; issue a new key");
  std::string key;
  if (!Unseal(kek_, sealed, device_id, &key)) {
    return Internal("the sealed DTLS key of " + device_id + " does not open with this keys.kek");
  }
  return key;
}

std::vector<std::string> ApiKeyStore::MosquittoPasswordLines() {
  std::vector<std::string> lines;
  std::lock_guard<std::mutex> lock(mu_);
  Statement st(db_, "SELECT device_id, mosquitto_hash FROM api_keys WHERE revoked_at = 0 ORDER BY device_id");
  if (!st.ok()) {
    log::Error("key store: cannot export keys", {{"error", st.error()}});
    return lines;
  }
  int rc;
  while ((rc = st.Step()) == SQLITE_ROW) lines.push_back(st.ColumnBytes(0) + ":" + st.ColumnBytes(1));
  if (rc != SQLITE_DONE) log::Error("key store: cannot export keys", {{"error", st.error()}});
  return lines;
}

}  // namespace bff
