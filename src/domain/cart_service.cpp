// Cart service: per-user carts persisted in SQLite; prices are taken from the catalog when added.
#include "domain/http_util.h"
#include "domain/seed.h"
#include "domain/services.h"
#include "security/internal_credential.h"

namespace bff::domain {
namespace {

// The credential's subject is the end user: a BFF acting for one user never reaches another's cart.
std::optional<HttpResponse> CheckOwner(const Call& call, const std::string& user_id) {
  if (!call.subject.empty() && call.subject != user_id) {
    return ErrorResponse(403, "forbidden", "the credential's subject may not access this cart");
  }
  return std::nullopt;
}

}  // namespace

void CartService::Register(Router& router) {
  router.Add("GET", "/cart/v1/carts/{user_id}", [this](Call& c) { return Get(c); });
  router.Add("POST", "/cart/v1/carts/{user_id}/items", [this](Call& c) { return AddItem(c); });
}

StatusOr<nlohmann::json> CartService::CartJson(const std::string& user_id) {
  nlohmann::json items = nlohmann::json::array();
  int64_t total = 0;
  Query q = db_->Prepare("SELECT sku, qty, price_cents FROM cart_items WHERE user_id = ?1 ORDER BY rowid");
  q.Bind(1, user_id);
  while (q.Step()) {
    items.push_back({{"sku", q.Text(0)}, {"qty", q.Int(1)}, {"price", FormatCents(q.Int(2))}});
    total += q.Int(1) * q.Int(2);
  }
  if (!q.status().ok()) return q.status();
  return nlohmann::json{
      {"user_id", user_id}, {"items", std::move(items)}, {"total", FormatCents(total)}, {"currency", kSeedCurrency}};
}

Reply CartService::Get(Call& call) {
  const std::string& user_id = call.params[0];
  if (auto denied = CheckOwner(call, user_id)) return denied;
  std::lock_guard<std::mutex> lock(db_->mutex());
  auto cart = CartJson(user_id);
  if (!cart.ok()) return ErrorResponse(cart.status());
  return JsonResponse(200, *cart);
}

Reply CartService::AddItem(Call& call) {
  const std::string& user_id = call.params[0];
  if (auto denied = CheckOwner(call, user_id)) return denied;
  auto body = ParseJsonObjectBody(call.req);
  if (!body.ok()) return ErrorResponse(body.status());
  auto sku_it = body->find("sku");
  if (sku_it == body->end() || !sku_it->is_string() || !IsValidId(sku_it->get_ref<const std::string&>())) {
    return ErrorResponse(400, "invalid_argument", "sku: required, must match [A-Za-z0-9._-]{1,64}");
  }
  const std::string sku = sku_it->get<std::string>();
  auto qty_it = body->find("qty");
  std::optional<int64_t> qty = qty_it == body->end() ? std::nullopt : JsonInt(*qty_it, 1, kMaxLineQty);
  if (!qty) return ErrorResponse(400, "invalid_argument", "qty: required, must be an integer from 1 to 99");
  const CatalogService::Product* product = catalog_.Find(sku);
  if (product == nullptr) return ErrorResponse(404, "not_found", "unknown sku " + sku);

  std::lock_guard<std::mutex> lock(db_->mutex());
  Transaction tx(*db_);
  if (!tx.status().ok()) return ErrorResponse(tx.status());
  std::optional<int64_t> existing;
  {
    Query q = db_->Prepare("SELECT qty FROM cart_items WHERE user_id = ?1 AND sku = ?2");
    q.Bind(1, user_id).Bind(2, sku);
    if (q.Step()) existing = q.Int(0);
    if (!q.status().ok()) return ErrorResponse(q.status());
  }
  if (existing) {
    if (*existing + *qty > kMaxLineQty) {
      return ErrorResponse(409, "conflict", "a cart line holds at most 99 units; it has " + std::to_string(*existing));
    }
    Query q = db_->Prepare("UPDATE cart_items SET qty = ?3, price_cents = ?4 WHERE user_id = ?1 AND sku = ?2");
    q.Bind(1, user_id).Bind(2, sku).Bind(3, *existing + *qty).Bind(4, product->price_cents);
    if (Status s = q.Run(); !s.ok()) return ErrorResponse(s);
  } else {
    {
      Query q = db_->Prepare("SELECT count(*) FROM cart_items WHERE user_id = ?1");
      q.Bind(1, user_id);
      if (q.Step() && q.Int(0) >= kMaxCartLines) {
        return ErrorResponse(409, "conflict", "a cart holds at most " + std::to_string(kMaxCartLines) + " lines");
      }
      if (!q.status().ok()) return ErrorResponse(q.status());
    }
    Query q =
        db_->Prepare("INSERT INTO cart_items(user_id, sku, qty, price_cents, added_unix) VALUES(?1, ?2, ?3, ?4, ?5)");
    q.Bind(1, user_id).Bind(2, sku).Bind(3, *qty).Bind(4, product->price_cents).Bind(5, UnixNow());
    if (Status s = q.Run(); !s.ok()) return ErrorResponse(s);
  }
  auto cart = CartJson(user_id);
  if (!cart.ok()) return ErrorResponse(cart.status());
  if (Status s = tx.Commit(); !s.ok()) return ErrorResponse(s);
  return JsonResponse(200, *cart);
}

}  // namespace bff::domain
