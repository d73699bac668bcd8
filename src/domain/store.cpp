// SQLite connection, statement cache, schema and first-start seeding for the reference domain services.
#include "domain/store.h"

#include <sqlite3.h>

#include "common/log.h"
#include "domain/http_util.h"
#include "domain/seed.h"
#include "security/password.h"

namespace bff::domain {
namespace {

// Bumped when the schema or seed rules change incompatibly; an existing database keeps its data.
constexpr char kSeedVersion[] = "1";
constexpr int kBusyTimeoutMs = 5000;

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS products(
  sku TEXT PRIMARY KEY,
  category TEXT NOT NULL,
  price_cents INTEGER NOT NULL,
  doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS reviews(
  id TEXT PRIMARY KEY,
  sku TEXT NOT NULL REFERENCES products(sku),
  author TEXT NOT NULL,
  rating INTEGER NOT NULL,
  title TEXT NOT NULL,
  body TEXT NOT NULL,
  created_unix INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS reviews_by_sku ON reviews(sku, created_unix DESC, id DESC);
CREATE TABLE IF NOT EXISTS sku_stock(
  sku TEXT PRIMARY KEY REFERENCES products(sku),
  version INTEGER NOT NULL,
  updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS warehouses(id TEXT PRIMARY KEY, ordinal INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS warehouse_stock(
  sku TEXT NOT NULL REFERENCES products(sku),
  warehouse_id TEXT NOT NULL REFERENCES warehouses(id),
  qty INTEGER NOT NULL,
  PRIMARY KEY(sku, warehouse_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS shelves(
  shelf_id TEXT PRIMARY KEY,
  store_id TEXT NOT NULL,
  slot_count INTEGER NOT NULL,
  version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS shelf_slots(
  shelf_id TEXT NOT NULL REFERENCES shelves(shelf_id),
  slot INTEGER NOT NULL,
  sku TEXT NOT NULL REFERENCES products(sku),
  qty INTEGER NOT NULL,
  low_threshold INTEGER NOT NULL,
  PRIMARY KEY(shelf_id, slot)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS shelf_slots_by_sku ON shelf_slots(sku);
CREATE TABLE IF NOT EXISTS shelf_readings(
  device_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  shelf_id TEXT NOT NULL REFERENCES shelves(shelf_id),
  ts INTEGER NOT NULL,
  readings TEXT NOT NULL,
  battery_pct REAL,
  temp_c REAL,
  received_unix INTEGER NOT NULL,
  PRIMARY KEY(device_id, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS promotions(
  id TEXT PRIMARY KEY,
  sku TEXT NOT NULL REFERENCES products(sku),
  label TEXT NOT NULL,
  discount_pct INTEGER NOT NULL,
  ends_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS promotions_by_sku ON promotions(sku);
CREATE TABLE IF NOT EXISTS recommendations(
  sku TEXT PRIMARY KEY REFERENCES products(sku),
  related TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cart_items(
  user_id TEXT NOT NULL,
  sku TEXT NOT NULL REFERENCES products(sku),
  qty INTEGER NOT NULL,
  price_cents INTEGER NOT NULL,
  added_unix INTEGER NOT NULL,
  PRIMARY KEY(user_id, sku));
CREATE TABLE IF NOT EXISTS analytics_events(
  id INTEGER PRIMARY KEY,
  type TEXT NOT NULL,
  user_id TEXT,
  device_id TEXT,
  sku TEXT,
  at TEXT NOT NULL,
  received_unix INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS users(
  user_id TEXT PRIMARY KEY,
  username TEXT NOT NULL UNIQUE,
  display_name TEXT NOT NULL,
  email TEXT NOT NULL,
  password_hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS refresh_tokens(
  token_hash TEXT PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES users(user_id),
  family_id TEXT NOT NULL,
  expires_unix INTEGER NOT NULL,
  revoked INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS refresh_by_family ON refresh_tokens(family_id);
CREATE INDEX IF NOT EXISTS refresh_by_expiry ON refresh_tokens(expires_unix);
)sql";

Status Seed(Db& db, int password_iterations) {
  const SeedData data = GenerateSeed();
  const std::string epoch = FormatRfc3339(kSeedEpochUnix);
  for (size_t w = 0; w < kSeedWarehouses.size(); ++w) {
    Query q = db.Prepare("INSERT INTO warehouses(id, ordinal) VALUES(?1, ?2)");
    if (Status s = q.Bind(1, kSeedWarehouses[w]).Bind(2, static_cast<int64_t>(w)).Run(); !s.ok()) return s;
  }
  for (size_t i = 0; i < data.products.size(); ++i) {
    const SeedProduct& p = data.products[i];
    {
      Query q = db.Prepare("INSERT INTO products(sku, category, price_cents, doc) VALUES(?1, ?2, ?3, ?4)");
      if (Status s = q.Bind(1, p.sku).Bind(2, p.category).Bind(3, p.price_cents).Bind(4, p.doc.dump()).Run(); !s.ok()) {
        return s;
      }
    }
    {
      Query q = db.Prepare("INSERT INTO sku_stock(sku, version, updated_at) VALUES(?1, 1, ?2)");
      if (Status s = q.Bind(1, p.sku).Bind(2, epoch).Run(); !s.ok()) return s;
    }
    for (size_t w = 0; w < kSeedWarehouses.size(); ++w) {
      Query q = db.Prepare("INSERT INTO warehouse_stock(sku, warehouse_id, qty) VALUES(?1, ?2, ?3)");
      if (Status s = q.Bind(1, p.sku).Bind(2, kSeedWarehouses[w]).Bind(3, data.warehouse_qty[i][w]).Run(); !s.ok()) {
        return s;
      }
    }
    {
      Query q = db.Prepare("INSERT INTO recommendations(sku, related) VALUES(?1, ?2)");
      nlohmann::json related = data.recommendations[i];
      if (Status s = q.Bind(1, p.sku).Bind(2, related.dump()).Run(); !s.ok()) return s;
    }
  }
  for (const SeedReview& r : data.reviews) {
    Query q = db.Prepare(
        "INSERT INTO reviews(id, sku, author, rating, title, body, created_unix) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)");
    q.Bind(1, r.id).Bind(2, r.sku).Bind(3, r.author).Bind(4, r.rating).Bind(5, r.title).Bind(6, r.body);
    if (Status s = q.Bind(7, r.created_unix).Run(); !s.ok()) return s;
  }
  for (const SeedShelf& shelf : data.shelves) {
    {
      Query q = db.Prepare("INSERT INTO shelves(shelf_id, store_id, slot_count, version) VALUES(?1, ?2, ?3, 1)");
      q.Bind(1, shelf.shelf_id).Bind(2, shelf.store_id).Bind(3, static_cast<int64_t>(shelf.slots.size()));
      if (Status s = q.Run(); !s.ok()) return s;
    }
    for (const SeedSlot& slot : shelf.slots) {
      Query q =
          db.Prepare("INSERT INTO shelf_slots(shelf_id, slot, sku, qty, low_threshold) VALUES(?1, ?2, ?3, ?4, ?5)");
      q.Bind(1, shelf.shelf_id).Bind(2, slot.slot).Bind(3, slot.sku).Bind(4, slot.qty).Bind(5, slot.low_threshold);
      if (Status s = q.Run(); !s.ok()) return s;
    }
  }
  for (const SeedPromotion& p : data.promotions) {
    Query q = db.Prepare("INSERT INTO promotions(id, sku, label, discount_pct, ends_at) VALUES(?1, ?2, ?3, ?4, ?5)");
    if (Status s = q.Bind(1, p.id).Bind(2, p.sku).Bind(3, p.label).Bind(4, p.discount_pct).Bind(5, p.ends_at).Run();
        !s.ok()) {
      return s;
    }
  }
  for (const SeedUser& u : SeedDemoUsers()) {
    Query q = db.Prepare(
        "INSERT INTO users(user_id, username, display_name, email, password_hash) VALUES(?1, ?2, ?3, ?4, ?5)");
    q.Bind(1, u.user_id).Bind(2, u.username).Bind(3, u.display_name).Bind(4, u.email);
    if (Status s = q.Bind(5, HashPassword(u.password, password_iterations)).Run(); !s.ok()) return s;
  }
  Query q = db.Prepare("INSERT INTO meta(key, value) VALUES('seed_version', ?1)");
  return q.Bind(1, kSeedVersion).Run();
}

}  // namespace

Query::~Query() {
  if (stmt_ != nullptr) {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
}

Query& Query::Bind(int index, int64_t v) {
  if (stmt_ != nullptr) sqlite3_bind_int64(stmt_, index, v);
  return *this;
}

Query& Query::Bind(int index, double v) {
  if (stmt_ != nullptr) sqlite3_bind_double(stmt_, index, v);
  return *this;
}

Query& Query::Bind(int index, std::string_view v) {
  if (stmt_ != nullptr) sqlite3_bind_text(stmt_, index, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  return *this;
}

Query& Query::BindNull(int index) {
  if (stmt_ != nullptr) sqlite3_bind_null(stmt_, index);
  return *this;
}

bool Query::Step() {
  if (stmt_ == nullptr) {
    if (status_.ok()) status_ = Internal("statement could not be prepared");
    return false;
  }
  if (!status_.ok()) return false;
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc != SQLITE_DONE) status_ = Internal("sqlite: " + db_->LastError());
  return false;
}

Status Query::Run() {
  while (Step()) {
  }
  return status_;
}

int64_t Query::Int(int col) const { return stmt_ == nullptr ? 0 : sqlite3_column_int64(stmt_, col); }

double Query::Real(int col) const { return stmt_ == nullptr ? 0.0 : sqlite3_column_double(stmt_, col); }

std::string Query::Text(int col) const {
  if (stmt_ == nullptr) return {};
  const unsigned char* p = sqlite3_column_text(stmt_, col);
  int n = sqlite3_column_bytes(stmt_, col);
  return p == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
}

bool Query::IsNull(int col) const { return stmt_ == nullptr || sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

StatusOr<std::unique_ptr<Db>> Db::Open(const std::string& path) {
  std::unique_ptr<Db> db(new Db());
  int rc = sqlite3_open_v2(path.c_str(), &db->db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db->db_ != nullptr ? sqlite3_errmsg(db->db_) : "out of memory";
    return Unavailable("cannot open " + path + ": " + msg);
  }
  sqlite3_busy_timeout(db->db_, kBusyTimeoutMs);
  std::lock_guard<std::mutex> lock(db->mu_);
  // WAL lets a second process (sqlite3 shell, a restarted daemon) read while we write; NORMAL sync keeps
  // commits durable across a process crash without an fsync per commit.
  if (Status s = db->Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"); !s.ok()) {
    return s;
  }
  // SQLite's automatic checkpoint runs inside the commit that crosses its threshold, fsync included,
  // holding the writer (and every reading queued behind it) for milliseconds. Replacing its hook turns
  // it off; the checkpointer below does the same work beside the writer (WAL allows one checkpointer
  // and one writer at a time).
  rc = sqlite3_open_v2(path.c_str(), &db->checkpoint_db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db->checkpoint_db_ != nullptr ? sqlite3_errmsg(db->checkpoint_db_) : "out of memory";
    return Unavailable("cannot open " + path + " for checkpoints: " + msg);
  }
  sqlite3_busy_timeout(db->checkpoint_db_, kBusyTimeoutMs);
  sqlite3_wal_hook(db->db_, &Db::OnWalCommit, db.get());
  db->checkpointer_ = std::thread([d = db.get()] { d->CheckpointLoop(); });
  return db;
}

Db::~Db() {
  if (checkpointer_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(ck_mu_);
      ck_stop_ = true;
    }
    ck_cv_.notify_all();
    checkpointer_.join();
  }
  if (checkpoint_db_ != nullptr) sqlite3_close(checkpoint_db_);
  for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
  if (db_ != nullptr) sqlite3_close(db_);
}

int Db::OnWalCommit(void* self, sqlite3*, const char*, int pages) {
  Db* db = static_cast<Db*>(self);
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(db->ck_mu_);
    wake = pages >= kCheckpointPages && db->wal_pages_ < kCheckpointPages;
    db->wal_pages_ = pages;
  }
  if (wake) db->ck_cv_.notify_one();
  return SQLITE_OK;
}

void Db::CheckpointLoop() {
  std::unique_lock<std::mutex> lock(ck_mu_);
  while (!ck_stop_) {
    ck_cv_.wait_for(lock, std::chrono::milliseconds(kCheckpointIntervalMs),
                    [this] { return ck_stop_ || wal_pages_ >= kCheckpointPages; });
    if (wal_pages_ == 0) continue;
    wal_pages_ = 0;
    lock.unlock();
    // PASSIVE: copies what it can without waiting for readers or the writer; the rest goes next time.
    int log_frames = 0, copied = 0;
    int rc = sqlite3_wal_checkpoint_v2(checkpoint_db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, &log_frames, &copied);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
      log::Warn("domain: checkpoint failed", {{"error", sqlite3_errmsg(checkpoint_db_)}});
    }
    lock.lock();
    ++checkpoints_;
    // Frames left behind (a reader held them) keep the next turn due.
    if (rc == SQLITE_OK && copied < log_frames && wal_pages_ == 0) wal_pages_ = log_frames - copied;
  }
}

uint64_t Db::checkpoints() const {
  std::lock_guard<std::mutex> lock(ck_mu_);
  return checkpoints_;
}

Query Db::Prepare(const char* sql) {
  auto it = cache_.find(std::string_view(sql));
  if (it != cache_.end()) return Query(it->second, this);
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) != SQLITE_OK) {
    log::Error("domain: cannot prepare statement", {{"error", LastError()}});
    if (stmt != nullptr) sqlite3_finalize(stmt);
    return Query(nullptr, this);
  }
  cache_.emplace(sql, stmt);
  return Query(stmt, this);
}

Status Db::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err != nullptr ? err : LastError();
    sqlite3_free(err);
    return Internal("sqlite: " + msg);
  }
  return Status::Ok();
}

int64_t Db::Changes() const { return sqlite3_changes64(db_); }

std::string Db::LastError() const { return sqlite3_errmsg(db_); }

Transaction::Transaction(Db& db) : db_(db), begin_(db.Exec("BEGIN IMMEDIATE")) {}

Transaction::~Transaction() {
  if (!done_ && begin_.ok()) db_.Exec("ROLLBACK");
}

Status Transaction::Commit() {
  if (!begin_.ok()) return begin_;
  Status s = db_.Exec("COMMIT");
  if (s.ok()) done_ = true;
  return s;
}

Status InitializeSchemaAndSeed(Db& db, int password_iterations) {
  std::lock_guard<std::mutex> lock(db.mutex());
  if (Status s = db.Exec(kSchema); !s.ok()) return s;
  Transaction tx(db);
  if (!tx.status().ok()) return tx.status();
  {
    Query q = db.Prepare("SELECT value FROM meta WHERE key = 'seed_version'");
    bool seeded = q.Step();
    if (!q.status().ok()) return q.status();
    if (seeded) return Status::Ok();
  }
  log::Info("domain: seeding an empty database", {{"products", kSeedProductCount}, {"shelves", kSeedShelfCount}});
  if (Status s = Seed(db, password_iterations); !s.ok()) return s;
  return tx.Commit();
}

}  // namespace bff::domain
