// Reviews, recommendations and promotions: read-only content keyed by sku.
#include <cmath>

#include "domain/http_util.h"
#include "domain/services.h"

namespace bff::domain {

void ContentServices::Register(Router& router) {
  router.Add("GET", "/reviews/v1/products/{sku}/reviews", [this](Call& c) { return Reviews(c); });
  router.Add("GET", "/recommendations/v1/products/{sku}", [this](Call& c) { return Recommendations(c); });
  router.Add("GET", "/promotions/v1/products/{sku}", [this](Call& c) { return Promotions(c); });
}

Reply ContentServices::Reviews(Call& call) {
  const std::string& sku = call.params[0];
  auto limit = ParseLimit(call.req, kDefaultReviews, kMaxReviews);
  if (!limit.ok()) return ErrorResponse(limit.status());
  if (catalog_.Find(sku) == nullptr) return ErrorResponse(404, "not_found", "unknown sku " + sku);
  int64_t count = 0;
  int64_t rating_sum = 0;
  nlohmann::json reviews = nlohmann::json::array();
  {
    std::lock_guard<std::mutex> lock(db_->mutex());
    {
      Query q = db_->Prepare("SELECT count(*), coalesce(sum(rating), 0) FROM reviews WHERE sku = ?1");
      q.Bind(1, sku);
      if (q.Step()) {
        count = q.Int(0);
        rating_sum = q.Int(1);
      }
      if (!q.status().ok()) return ErrorResponse(q.status());
    }
    Query q = db_->Prepare(
        "SELECT id, author, rating, title, body, created_unix FROM reviews WHERE sku = ?1 "
        "ORDER BY created_unix DESC, id DESC LIMIT ?2");
    q.Bind(1, sku).Bind(2, *limit);
    while (q.Step()) {
      reviews.push_back({{"id", q.Text(0)},
                         {"author", q.Text(1)},
                         {"rating", q.Int(2)},
                         {"title", q.Text(3)},
                         {"body", q.Text(4)},
                         {"created_at", FormatRfc3339(q.Int(5))}});
    }
    if (!q.status().ok()) return ErrorResponse(q.status());
  }
  // rating_avg is 0 for a product without reviews (count tells the two apart).
  double avg =
      count == 0 ? 0.0 : std::round(static_cast<double>(rating_sum) * 100.0 / static_cast<double>(count)) / 100.0;
  nlohmann::json body = {{"sku", sku}, {"rating_avg", avg}, {"count", count}, {"reviews", std::move(reviews)}};
  return JsonResponse(200, body);
}

Reply ContentServices::Recommendations(Call& call) {
  const std::string& sku = call.params[0];
  if (catalog_.Find(sku) == nullptr) return ErrorResponse(404, "not_found", "unknown sku " + sku);
  std::string related;
  {
    std::lock_guard<std::mutex> lock(db_->mutex());
    Query q = db_->Prepare("SELECT related FROM recommendations WHERE sku = ?1");
    q.Bind(1, sku);
    if (q.Step()) related = q.Text(0);
    if (!q.status().ok()) return ErrorResponse(q.status());
  }
  nlohmann::json list = nlohmann::json::parse(related, nullptr, false);
  if (!list.is_array()) list = nlohmann::json::array();
  return JsonResponse(200, {{"sku", sku}, {"related", std::move(list)}});
}

Reply ContentServices::Promotions(Call& call) {
  const std::string& sku = call.params[0];
  if (catalog_.Find(sku) == nullptr) return ErrorResponse(404, "not_found", "unknown sku " + sku);
  nlohmann::json promotions = nlohmann::json::array();
  {
    std::lock_guard<std::mutex> lock(db_->mutex());
    Query q = db_->Prepare("SELECT id, label, discount_pct, ends_at FROM promotions WHERE sku = ?1 ORDER BY id");
    q.Bind(1, sku);
    while (q.Step()) {
      promotions.push_back(
          {{"id", q.Text(0)}, {"label", q.Text(1)}, {"discount_pct", q.Int(2)}, {"ends_at", q.Text(3)}});
    }
    if (!q.status().ok()) return ErrorResponse(q.status());
  }
  return JsonResponse(200, {{"sku", sku}, {"promotions", std::move(promotions)}});
}

}  // namespace bff::domain
