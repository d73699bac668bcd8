// Key verification with a per-device memory of good keys, cleared whenever keys.db changes.
#include "security/key_registry.h"

#include <sys/stat.h>

#include "common/crypto.h"
#include "common/log.h"

namespace bff {
namespace {

int64_t MtimeNs(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

}  // namespace

KeyRegistry::KeyRegistry(ApiKeyStore& store, std::string keys_db_path, Scheduler& scheduler,
                         std::chrono::milliseconds poll_interval)
    : store_(store),
      keys_db_path_(std::move(keys_db_path)),
      scheduler_(scheduler),
      poll_interval_(poll_interval),
      alive_(std::make_shared<bool>(true)) {
  // SQLite in WAL mode writes changes to keys.db-wal first: watch both.
  last_mtime_ns_ = MtimeNs(keys_db_path_) + MtimeNs(keys_db_path_ + "-wal");
}

KeyRegistry::~KeyRegistry() { Stop(); }

void KeyRegistry::Start() {
  if (poll_interval_.count() <= 0) return;
  std::weak_ptr<bool> alive = alive_;
  timer_ = scheduler_.RunAfter(poll_interval_, [this, alive] {
    if (alive.lock()) Poll();
  });
}

void KeyRegistry::Stop() {
  std::shared_ptr<TimerHandle> t;
  {
    std::lock_guard<std::mutex> lock(mu_);
    t = std::move(timer_);
    alive_.reset();
  }
  if (t) t->Cancel();
}

void KeyRegistry::Poll() {
  int64_t m = MtimeNs(keys_db_path_) + MtimeNs(keys_db_path_ + "-wal");
  bool changed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    changed = m != last_mtime_ns_;
    last_mtime_ns_ = m;
  }
  if (changed) {
    log::Info("device keys changed on disk; reloading");
    Reload();
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (!alive_) return;
  std::weak_ptr<bool> alive = alive_;
  timer_ = scheduler_.RunAfter(poll_interval_, [this, alive] {
    if (alive.lock()) Poll();
  });
}

void KeyRegistry::Reload() {
  std::lock_guard<std::mutex> lock(mu_);
  verified_.clear();
  ++reloads_;
}

uint64_t KeyRegistry::reloads() const {
  std::lock_guard<std::mutex> lock(mu_);
  return reloads_;
}

StatusOr<ApiKeyRecord> KeyRegistry::Verify(const std::string& device_id, const std::string& key) {
  std::string key_hash = Sha256(key);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = verified_.find(device_id);
    if (it != verified_.end() && ConstantTimeEquals(it->second.key_hash, key_hash)) return it->second.record;
  }
  auto r = store_.Verify(device_id, key);
  if (!r.ok()) return r;
  std::lock_guard<std::mutex> lock(mu_);
  verified_[device_id] = Remembered{key_hash, *r};
  return r;
}

}  // namespace bff
