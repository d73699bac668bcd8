// The reference domain services behind the router: catalog, inventory, content, cart, analytics, identity.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/scheduler.h"
#include "domain/shelf_reading.h"
#include "domain/domain_services.h"
#include "domain/router.h"
#include "domain/store.h"
#include "security/jwt.h"

namespace bff::domain {

// Catalog data never changes through the API, so it is served from memory (loaded from SQLite once):
// the hottest read path takes no database lock.
class CatalogService {
 public:
  inline static constexpr int kDefaultPageSize = 50;
  inline static constexpr int kMaxPageSize = 200;
  inline static constexpr size_t kMaxBatchSkus = 100;

  struct Product {
    std::string doc;  // the JSON answer, as stored
    int64_t price_cents = 0;
  };

  static StatusOr<std::shared_ptr<CatalogService>> Load(Db& db);
  void Register(Router& router);

  const Product* Find(std::string_view sku) const;

 private:
  Reply List(Call& call) const;
  Reply Get(Call& call) const;
  Reply BatchGet(Call& call) const;

  std::map<std::string, Product, std::less<>> products_;  // ordered by sku: pagination walks it
};

// Stock, shelves and the shelf-reading write path (group commit through a single writer).
class InventoryService : public std::enable_shared_from_this<InventoryService> {
 public:
  inline static constexpr int kDefaultPageSize = 50;
  inline static constexpr int kMaxPageSize = 200;
  // A commit carries at most this many readings; more wait for the next one.
  inline static constexpr size_t kMaxReadingsPerCommit = 256;
  inline static constexpr size_t kMaxSlotReadings = 64;
  inline static constexpr int64_t kMaxSlotQty = 100000;
  inline static constexpr int64_t kMaxTimestamp = 253402300799;  // 9999-12-31T23:59:59Z

  // A reading checked against the shelf layout, ready for the writer.
  struct Reading {
    ShelfReading in;
    std::string readings_json;  // the slots as stored: [{"slot":0,"qty":3},...]
  };

  static StatusOr<std::shared_ptr<InventoryService>> Load(std::shared_ptr<Db> db, Scheduler& scheduler,
                                                          const CatalogService& catalog);
  void Register(Router& router);

  // The typed entry of POST /inventory/v1/shelf-readings, for callers in the same process: the same
  // checks and the same group commit, without the HTTP form. `done` runs once, on a scheduler thread;
  // a reading still queued when `deadline` passes is answered kDeadlineExceeded and not stored.
  void Submit(ShelfReading reading, TimePoint deadline, ShelfReadingCallback done);
  // Readings waiting for the writer (not yet in a commit): a growing number means SQLite cannot keep up.
  size_t queued_readings() const;

 private:
  InventoryService(std::shared_ptr<Db> db, Scheduler& scheduler, const CatalogService& catalog)
      : db_(std::move(db)), scheduler_(scheduler), catalog_(catalog) {}

  Reply ListShelves(Call& call);
  Reply GetShelf(Call& call);
  Reply GetStock(Call& call);
  Reply PostReading(Call& call);

  // Takes the fields of a JSON body (types checked here), then Validate().
  StatusOr<ShelfReading> ParseReading(const nlohmann::json& body) const;
  // Checks a reading against the limits and the shelf layout.
  StatusOr<Reading> Validate(ShelfReading in) const;
  void Enqueue(Reading reading, TimePoint deadline, ShelfReadingCallback done);
  void DrainOnce();
  // Applies one reading inside the writer's transaction.
  StatusOr<ShelfReadingAccepted> Apply(const Reading& r, const std::string& now_rfc3339);

  std::shared_ptr<Db> db_;
  Scheduler& scheduler_;
  const CatalogService& catalog_;
  std::map<std::string, int, std::less<>> slot_counts_;  // shelf layout is fixed after seeding

  struct Pending {
    Reading reading;
    TimePoint deadline;
    ShelfReadingCallback done;
  };
  mutable std::mutex queue_mu_;
  std::deque<Pending> queue_;
  bool writer_active_ = false;
};

// Reviews, recommendations and promotions: read-only views keyed by sku.
class ContentServices {
 public:
  inline static constexpr int kDefaultReviews = 10;
  inline static constexpr int kMaxReviews = 50;

  ContentServices(std::shared_ptr<Db> db, const CatalogService& catalog) : db_(std::move(db)), catalog_(catalog) {}
  void Register(Router& router);

 private:
  Reply Reviews(Call& call);
  Reply Recommendations(Call& call);
  Reply Promotions(Call& call);

  std::shared_ptr<Db> db_;
  const CatalogService& catalog_;
};

class CartService {
 public:
  inline static constexpr int64_t kMaxLineQty = 99;
  inline static constexpr int64_t kMaxCartLines = 100;

  CartService(std::shared_ptr<Db> db, const CatalogService& catalog) : db_(std::move(db)), catalog_(catalog) {}
  void Register(Router& router);

 private:
  Reply Get(Call& call);
  Reply AddItem(Call& call);
  // Caller holds the Db mutex.
  StatusOr<nlohmann::json> CartJson(const std::string& user_id);

  std::shared_ptr<Db> db_;
  const CatalogService& catalog_;
};

class AnalyticsService {
 public:
  inline static constexpr size_t kMaxTypeLength = 64;

  explicit AnalyticsService(std::shared_ptr<Db> db) : db_(std::move(db)) {}
  void Register(Router& router);

 private:
  Reply PostEvent(Call& call);
  std::shared_ptr<Db> db_;
};

class IdentityService {
 public:
  inline static constexpr size_t kMaxUsernameLength = 64;
  inline static constexpr size_t kMaxPasswordLength = 1024;
  inline static constexpr size_t kRefreshTokenBytes = 32;
  inline static constexpr size_t kMaxFormBytes = 8 * 1024;

  static StatusOr<std::shared_ptr<IdentityService>> Create(std::shared_ptr<Db> db, const DomainOptions& options);
  void Register(Router& router);

 private:
  IdentityService(std::shared_ptr<Db> db, const DomainOptions& options, EcSigningKey key);

  Reply Token(Call& call);
  Reply Jwks(Call& call);
  Reply VerifyPasswordCall(Call& call);

  struct User {
    std::string user_id;
    std::string display_name;
    std::string password_hash;
  };
  // Looks the user up and checks the password; spends the same work when the user does not exist.
  std::optional<User> Authenticate(std::string_view username, std::string_view password);
  StatusOr<HttpResponse> IssueTokens(const User& user, const std::string& family_id, const std::string& old_hash);
  Reply PasswordGrant(const std::vector<std::pair<std::string, std::string>>& form);
  Reply RefreshGrant(const std::vector<std::pair<std::string, std::string>>& form);

  std::shared_ptr<Db> db_;
  DomainOptions options_;
  EcSigningKey key_;
  std::string dummy_hash_;
};

}  // namespace bff::domain
