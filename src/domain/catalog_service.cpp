// Catalog service: product list with cursor pagination, product by sku, and batch get.
#include <algorithm>

#include "domain/http_util.h"
#include "domain/services.h"

namespace bff::domain {

StatusOr<std::shared_ptr<CatalogService>> CatalogService::Load(Db& db) {
  auto svc = std::make_shared<CatalogService>();
  std::lock_guard<std::mutex> lock(db.mutex());
  Query q = db.Prepare("SELECT sku, doc, price_cents FROM products");
  while (q.Step()) svc->products_[q.Text(0)] = Product{q.Text(1), q.Int(2)};
  if (!q.status().ok()) return q.status();
  return svc;
}

void CatalogService::Register(Router& router) {
  router.Add("GET", "/catalog/v1/products", [this](Call& c) { return List(c); });
  router.Add("GET", "/catalog/v1/products/{sku}", [this](Call& c) { return Get(c); });
  router.Add("POST", "/catalog/v1/products:batchGet", [this](Call& c) { return BatchGet(c); });
}

const CatalogService::Product* CatalogService::Find(std::string_view sku) const {
  auto it = products_.find(sku);
  return it == products_.end() ? nullptr : &it->second;
}

Reply CatalogService::List(Call& call) const {
  auto limit = ParseLimit(call.req, kDefaultPageSize, kMaxPageSize);
  if (!limit.ok()) return ErrorResponse(limit.status());
  auto after = DecodeCursor(call.req.QueryParam("cursor"));
  if (!after.ok()) return ErrorResponse(after.status());
  auto it = after->empty() ? products_.begin() : products_.upper_bound(*after);
  std::string body = R"({"products":[)";
  std::string last;
  int n = 0;
  for (; it != products_.end() && n < *limit; ++it, ++n) {
    if (n > 0) body.push_back(',');
    body += it->second.doc;
    last = it->first;
  }
  body += "],\"next_cursor\":";
  body += it == products_.end() ? "null" : Dump(EncodeCursor(last));
  body += "}";
  return RawJsonResponse(200, std::move(body));
}

Reply CatalogService::Get(Call& call) const {
  const Product* p = Find(call.params[0]);
  if (p == nullptr) return ErrorResponse(404, "not_found", "unknown sku " + call.params[0]);
  return RawJsonResponse(200, p->doc);
}

Reply CatalogService::BatchGet(Call& call) const {
  auto body = ParseJsonObjectBody(call.req);
  if (!body.ok()) return ErrorResponse(body.status());
  auto skus = body->find("skus");
  if (skus == body->end() || !skus->is_array()) return ErrorResponse(400, "invalid_argument", "skus: must be an array");
  if (skus->size() > kMaxBatchSkus) {
    return ErrorResponse(400, "invalid_argument", "skus: at most " + std::to_string(kMaxBatchSkus) + " per call");
  }
  std::vector<std::string> order;
  for (const auto& s : *skus) {
    if (!s.is_string() || !IsValidId(s.get_ref<const std::string&>())) {
      return ErrorResponse(400, "invalid_argument", "skus: every entry must be a sku matching [A-Za-z0-9._-]{1,64}");
    }
    const std::string& sku = s.get_ref<const std::string&>();
    if (std::find(order.begin(), order.end(), sku) == order.end()) order.push_back(sku);
  }
  std::string out = R"({"products":[)";
  nlohmann::json missing = nlohmann::json::array();
  bool first = true;
  for (const std::string& sku : order) {
    const Product* p = Find(sku);
    if (p == nullptr) {
      missing.push_back(sku);
      continue;
    }
    if (!first) out.push_back(',');
    first = false;
    out += p->doc;
  }
  out += "],\"missing\":" + Dump(missing) + "}";
  return RawJsonResponse(200, std::move(out));
}

}  // namespace bff::domain
