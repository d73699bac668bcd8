// HTTP-shaped implementations of the typed downstream clients (paths from CONTRACT.md section 1).
#include "downstream/clients.h"

#include "domain/domain_services.h"

namespace bff {
namespace {

HttpRequest Get(std::string path, std::string query = {}) {
  HttpRequest r;
  r.method = "GET";
  r.path = std::move(path);
  r.query = std::move(query);
  return r;
}

HttpRequest PostJson(std::string path, const nlohmann::json& body) {
  HttpRequest r;
  r.method = "POST";
  r.path = std::move(path);
  r.headers.Set("Content-Type", "application/json");
  r.body = body.dump();
  return r;
}

std::string PageQuery(int limit, const std::string& cursor) {
  std::string q = "limit=" + std::to_string(limit);
  if (!cursor.empty()) q += "&cursor=" + PercentEncode(cursor);
  return q;
}

class CatalogClient : public CatalogApi {
 public:
  explicit CatalogClient(DownstreamCaller& c) : c_(c) {}
  void ListProducts(const RequestContext& ctx, TimePoint d, int limit, const std::string& cursor, JsonCallback done) override {
    c_.Call(ctx, Service::kCatalog, Get("/catalog/v1/products", PageQuery(limit, cursor)), d, std::move(done));
  }
  void GetProduct(const RequestContext& ctx, TimePoint d, const std::string& sku, JsonCallback done) override {
    c_.Call(ctx, Service::kCatalog, Get("/catalog/v1/products/" + sku), d, std::move(done));
  }
  void BatchGet(const RequestContext& ctx, TimePoint d, const std::vector<std::string>& skus, JsonCallback done) override {
    c_.Call(ctx, Service::kCatalog, PostJson("/catalog/v1/products:batchGet", {{"skus", skus}}), d, std::move(done));
  }

 private:
  DownstreamCaller& c_;
};

class InventoryClient : public InventoryApi {
 public:
  InventoryClient(DownstreamCaller& c, DomainServices* embedded) : c_(c), embedded_(embedded) {}
  void ListShelves(const RequestContext& ctx, TimePoint d, int limit, const std::string& cursor, JsonCallback done) override {
    c_.Call(ctx, Service::kInventory, Get("/inventory/v1/shelves", PageQuery(limit, cursor)), d, std::move(done));
  }
  void GetStock(const RequestContext& ctx, TimePoint d, const std::string& sku, JsonCallback done) override {
    c_.Call(ctx, Service::kInventory, Get("/inventory/v1/stock/" + sku), d, std::move(done));
  }
  void GetShelf(const RequestContext& ctx, TimePoint d, const std::string& shelf_id, JsonCallback done) override {
    c_.Call(ctx, Service::kInventory, Get("/inventory/v1/shelves/" + shelf_id), d, std::move(done));
  }
  void PostShelfReading(const RequestContext& ctx, TimePoint d, ShelfReading reading, ShelfReadingCallback done) override {
    if (embedded_ != nullptr && embedded_->DirectCallsAllowed(ServiceName(Service::kInventory))) {
      // The typed in-process path skips HTTP, but it is still a hop to inventory: a client span, so a
      // device's trace shows where its reading went.
      ActiveSpan span = ctx.StartSpan("inventory POST", SpanKind::kClient,
                                      ctx.trace.valid() ? ctx.trace.Child() : TraceContext::NewRoot());
      span.SetAttribute(span_attr::kPeerService, ServiceName(Service::kInventory))
          .SetAttribute(span_attr::kHttpMethod, "POST")
          .SetAttribute(span_attr::kHttpRoute, "/inventory/v1/shelf-readings");
      TimePoint deadline = std::min(d, ctx.deadline);
      if (deadline <= c_.scheduler().Now()) {
        c_.scheduler().Post([done = std::move(done), span]() mutable {
          Status s = DeadlineExceeded("inventory: no time budget left");
          span.SetAttribute(span_attr::kOutcome, "timeout");
          span.SetStatus(s);
          span.End();
          done(std::move(s));
        });
        return;
      }
      if (!span.recording()) {
        embedded_->SubmitShelfReading(std::move(reading), deadline, std::move(done));
        return;
      }
      embedded_->SubmitShelfReading(std::move(reading), deadline,
                                    [done = std::move(done), span](StatusOr<ShelfReadingAccepted> r) mutable {
                                      span.SetAttribute(span_attr::kOutcome, r.ok() ? "ok"
                                                                          : r.status().code() == StatusCode::kDeadlineExceeded
                                                                              ? "timeout"
                                                                              : "error");
                                      span.SetStatus(r.ok() ? Status::Ok() : r.status());
                                      span.End();
                                      done(std::move(r));
                                    });
      return;
    }
    c_.Call(ctx, Service::kInventory, PostJson("/inventory/v1/shelf-readings", ShelfReadingToJson(reading)), d,
            [done = std::move(done)](StatusOr<nlohmann::json> answer) {
              if (!answer.ok()) return done(answer.status());
              done(ShelfReadingAcceptedFromJson(*answer));
            });
  }

 private:
  DownstreamCaller& c_;
  DomainServices* embedded_;
};

class ReviewsClient : public ReviewsApi {
 public:
  explicit ReviewsClient(DownstreamCaller& c) : c_(c) {}
  void GetReviews(const RequestContext& ctx, TimePoint d, const std::string& sku, int limit, JsonCallback done) override {
    c_.Call(ctx, Service::kReviews,
            Get("/reviews/v1/products/" + sku + "/reviews", "limit=" + std::to_string(limit)), d,
            std::move(done));
  }

 private:
  DownstreamCaller& c_;
};

class RecommendationsClient : public RecommendationsApi {
 public:
  explicit RecommendationsClient(DownstreamCaller& c) : c_(c) {}
  void GetRelated(const RequestContext& ctx, TimePoint d, const std::string& sku, JsonCallback done) override {
    c_.Call(ctx, Service::kRecommendations, Get("/recommendations/v1/products/" + sku), d, std::move(done));
  }

 private:
  DownstreamCaller& c_;
};

class PromotionsClient : public PromotionsApi {
 public:
  explicit PromotionsClient(DownstreamCaller& c) : c_(c) {}
  void GetPromotions(const RequestContext& ctx, TimePoint d, const std::string& sku, JsonCallback done) override {
    c_.Call(ctx, Service::kPromotions, Get("/promotions/v1/products/" + sku), d, std::move(done));
  }

 private:
  DownstreamCaller& c_;
};

class CartClient : public CartApi {
 public:
  explicit CartClient(DownstreamCaller& c) : c_(c) {}
  void GetCart(const RequestContext& ctx, TimePoint d, const std::string& user_id, JsonCallback done) override {
    c_.Call(ctx, Service::kCart, Get("/cart/v1/carts/" + user_id), d, std::move(done));
  }
  void AddItem(const RequestContext& ctx, TimePoint d, const std::string& user_id, const std::string& sku, int qty,
               JsonCallback done) override {
    c_.Call(ctx, Service::kCart, PostJson("/cart/v1/carts/" + user_id + "/items", {{"sku", sku}, {"qty", qty}}),
            d, std::move(done));
  }

 private:
  DownstreamCaller& c_;
};

class AnalyticsClient : public AnalyticsApi {
 public:
  explicit AnalyticsClient(DownstreamCaller& c) : c_(c) {}
  void RecordEvent(const RequestContext& ctx, TimePoint d, const nlohmann::json& event, JsonCallback done) override {
    c_.Call(ctx, Service::kAnalytics, PostJson("/analytics/v1/events", event), d, std::move(done));
  }

 private:
  DownstreamCaller& c_;
};

class IdentityClient : public IdentityApi {
 public:
  explicit IdentityClient(DownstreamCaller& c) : c_(c) {}
  void Token(const RequestContext& ctx, TimePoint d, const std::vector<std::pair<std::string, std::string>>& form,
             JsonCallback done) override {
    HttpRequest r;
    r.method = "POST";
    r.path = "/identity/v1/token";
    r.headers.Set("Content-Type", "application/x-www-form-urlencoded");
    for (auto& [k, v] : form) {
      if (!r.body.empty()) r.body += '&';
      r.body += PercentEncode(k) + "=" + PercentEncode(v);
    }
    c_.Call(ctx, Service::kIdentity, std::move(r), d, std::move(done));
  }
  void Jwks(const RequestContext& ctx, TimePoint d, JsonCallback done) override {
    c_.Call(ctx, Service::kIdentity, Get("/identity/v1/jwks"), d, std::move(done));
  }
  void VerifyPassword(const RequestContext& ctx, TimePoint d, const std::string& username, const std::string& password,
                      JsonCallback done) override {
    c_.Call(ctx, Service::kIdentity, PostJson("/identity/v1/verify-password", {{"username", username}, {"password", password}}),
            d, std::move(done));
  }

 private:
  DownstreamCaller& c_;
};

}  // namespace

DownstreamClients::DownstreamClients(Transport& transport, CredentialMinter& minter, Scheduler& scheduler,
                                     DomainServices* embedded)
    : caller_(transport, minter, scheduler),
      catalog_(std::make_unique<CatalogClient>(caller_)),
      inventory_(std::make_unique<InventoryClient>(caller_, embedded)),
      reviews_(std::make_unique<ReviewsClient>(caller_)),
      recommendations_(std::make_unique<RecommendationsClient>(caller_)),
      promotions_(std::make_unique<PromotionsClient>(caller_)),
      cart_(std::make_unique<CartClient>(caller_)),
      analytics_(std::make_unique<AnalyticsClient>(caller_)),
      identity_(std::make_unique<IdentityClient>(caller_)) {}

DownstreamClients::~DownstreamClients() = default;

}  // namespace bff
