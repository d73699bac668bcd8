// One typed client per domain service (CONTRACT.md section 1). Interfaces so BFF tests can use fakes.
//
// Every method takes the request context (trace, subject, request deadline), the deadline of this call,
// and a callback run exactly once with the parsed JSON answer or a Status.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "domain/shelf_reading.h"
#include "downstream/caller.h"

namespace bff {

class CatalogApi {
 public:
  virtual ~CatalogApi() = default;
  virtual void ListProducts(const RequestContext& ctx, TimePoint deadline, int limit, const std::string& cursor, JsonCallback done) = 0;
  virtual void GetProduct(const RequestContext& ctx, TimePoint deadline, const std::string& sku, JsonCallback done) = 0;
  // {products[], missing[]} in one call.
  virtual void BatchGet(const RequestContext& ctx, TimePoint deadline, const std::vector<std::string>& skus, JsonCallback done) = 0;
};

class InventoryApi {
 public:
  virtual ~InventoryApi() = default;
  virtual void ListShelves(const RequestContext& ctx, TimePoint deadline, int limit, const std::string& cursor, JsonCallback done) = 0;
  virtual void GetStock(const RequestContext& ctx, TimePoint deadline, const std::string& sku, JsonCallback done) = 0;
  virtual void GetShelf(const RequestContext& ctx, TimePoint deadline, const std::string& shelf_id, JsonCallback done) = 0;
  // POST /inventory/v1/shelf-readings. Statuses as for every call: kInvalidArgument / kNotFound for a
  // reading inventory refuses, kUnavailable / kDeadlineExceeded when it did not answer in time.
  virtual void PostShelfReading(const RequestContext& ctx, TimePoint deadline, ShelfReading reading,
                                ShelfReadingCallback done) = 0;
};

class ReviewsApi {
 public:
  virtual ~ReviewsApi() = default;
  virtual void GetReviews(const RequestContext& ctx, TimePoint deadline, const std::string& sku, int limit, JsonCallback done) = 0;
};

class RecommendationsApi {
 public:
  virtual ~RecommendationsApi() = default;
  virtual void GetRelated(const RequestContext& ctx, TimePoint deadline, const std::string& sku, JsonCallback done) = 0;
};

class PromotionsApi {
 public:
  virtual ~PromotionsApi() = default;
  virtual void GetPromotions(const RequestContext& ctx, TimePoint deadline, const std::string& sku, JsonCallback done) = 0;
};

class CartApi {
 public:
  virtual ~CartApi() = default;
  virtual void GetCart(const RequestContext& ctx, TimePoint deadline, const std::string& user_id, JsonCallback done) = 0;
  virtual void AddItem(const RequestContext& ctx, TimePoint deadline, const std::string& user_id, const std::string& sku, int qty, JsonCallback done) = 0;
};

class AnalyticsApi {
 public:
  virtual ~AnalyticsApi() = default;
  // `event`: {type, user_id?, device_id?, sku?, at}.
  virtual void RecordEvent(const RequestContext& ctx, TimePoint deadline, const nlohmann::json& event, JsonCallback done) = 0;
};

class IdentityApi {
 public:
  virtual ~IdentityApi() = default;
  // OAuth2 token endpoint; `form` holds grant_type and its parameters (form-encoded on the wire).
  virtual void Token(const RequestContext& ctx, TimePoint deadline, const std::vector<std::pair<std::string, std::string>>& form, JsonCallback done) = 0;
  virtual void Jwks(const RequestContext& ctx, TimePoint deadline, JsonCallback done) = 0;
  virtual void VerifyPassword(const RequestContext& ctx, TimePoint deadline, const std::string& username, const std::string& password, JsonCallback done) = 0;
};

class DomainServices;

// The eight clients over one transport. With `embedded` (the domain in this process), shelf readings,
// the one write that arrives by the thousand a second, go to it as typed calls while no fault is
// injected on inventory; everything else, and readings under a fault, go through `transport`.
class DownstreamClients {
 public:
  DownstreamClients(Transport& transport, CredentialMinter& minter, Scheduler& scheduler,
                    DomainServices* embedded = nullptr);
  ~DownstreamClients();

  CatalogApi& catalog() { return *catalog_; }
  InventoryApi& inventory() { return *inventory_; }
  ReviewsApi& reviews() { return *reviews_; }
  RecommendationsApi& recommendations() { return *recommendations_; }
  PromotionsApi& promotions() { return *promotions_; }
  CartApi& cart() { return *cart_; }
  AnalyticsApi& analytics() { return *analytics_; }
  IdentityApi& identity() { return *identity_; }
  DownstreamCaller& caller() { return caller_; }

 private:
  DownstreamCaller caller_;
  std::unique_ptr<CatalogApi> catalog_;
  std::unique_ptr<InventoryApi> inventory_;
  std::unique_ptr<ReviewsApi> reviews_;
  std::unique_ptr<RecommendationsApi> recommendations_;
  std::unique_ptr<PromotionsApi> promotions_;
  std::unique_ptr<CartApi> cart_;
  std::unique_ptr<AnalyticsApi> analytics_;
  std::unique_ptr<IdentityApi> identity_;
};

}  // namespace bff
