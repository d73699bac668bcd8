// SQLite access for the reference domain services: one connection behind a mutex, cached statements.
//
// SQLite calls here are short (indexed point reads, small writes), so a single connection serialised by
// a mutex is simpler and faster than a pool; readings are batched by the inventory writer instead.
// WAL checkpoints (the only step that syncs the database file to disk) run on a thread of their own
// with a second connection, so a commit never waits for one.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "common/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace bff::domain {

class Db;

// A cached prepared statement in use; resets and clears bindings when it goes out of scope.
class Query {
 public:
  Query(sqlite3_stmt* stmt, Db* db) : stmt_(stmt), db_(db) {}
  ~Query();
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;

  Query& Bind(int index, int64_t v);
  Query& Bind(int index, int v) { return Bind(index, static_cast<int64_t>(v)); }
  Query& Bind(int index, double v);
  Query& Bind(int index, std::string_view v);
  Query& Bind(int index, const char* v) { return Bind(index, std::string_view(v)); }
  Query& Bind(int index, const std::string& v) { return Bind(index, std::string_view(v)); }
  Query& BindNull(int index);

  // Advances: true with a row, false when done. SQL errors turn into a failed status().
  bool Step();
  // Runs to completion (for writes); returns the resulting status.
  Status Run();
  const Status& status() const { return status_; }

  int64_t Int(int col) const;
  double Real(int col) const;
  std::string Text(int col) const;
  bool IsNull(int col) const;

 private:
  sqlite3_stmt* stmt_;
  Db* db_;
  Status status_;
};

class Db {
 public:
  // A checkpoint is started once the WAL holds this many pages (SQLite's own default threshold), and
  // at least this often while anything is left to copy back.
  inline static constexpr int kCheckpointPages = 1000;
  inline static constexpr int kCheckpointIntervalMs = 1000;

  // Opens (creating if needed) the database in WAL mode with foreign keys on.
  static StatusOr<std::unique_ptr<Db>> Open(const std::string& path);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  // Every use of the connection happens under this mutex.
  std::mutex& mutex() { return mu_; }

  // Prepared once per distinct SQL text and cached. Caller holds mutex().
  Query Prepare(const char* sql);
  // Runs one or more statements without results. Caller holds mutex().
  Status Exec(const char* sql);
  int64_t Changes() const;
  std::string LastError() const;
  // Checkpoints done by the background thread (for tests and diagnostics).
  uint64_t checkpoints() const;

 private:
  Db() = default;
  static int OnWalCommit(void* self, sqlite3* db, const char* name, int pages);
  void CheckpointLoop();

  std::mutex mu_;
  sqlite3* db_ = nullptr;
  sqlite3* checkpoint_db_ = nullptr;  // used only by checkpointer_
  std::thread checkpointer_;
  mutable std::mutex ck_mu_;
  std::condition_variable ck_cv_;
  bool ck_stop_ = false;
  int wal_pages_ = 0;  // pages in the WAL after the last commit
  uint64_t checkpoints_ = 0;
  std::map<std::string, sqlite3_stmt*, std::less<>> cache_;
  friend class Query;
};

// RAII transaction: rolls back unless Commit() succeeded. Caller holds the Db mutex.
class Transaction {
 public:
  explicit Transaction(Db& db);
  ~Transaction();
  Status Commit();
  const Status& status() const { return begin_; }

 private:
  Db& db_;
  Status begin_;
  bool done_ = false;
};

// Creates the schema and fills an empty database with the seed data (passwords hashed with
// `password_iterations`). An existing database is left as it is.
Status InitializeSchemaAndSeed(Db& db, int password_iterations);

}  // namespace bff::domain
