// Mobile BFF: products from a per-client cache with ETag/304 and stale-while-revalidate, token grants,
// and add-to-cart behind bearer tokens.
#include "clients/mobile/mobile_bff.h"

#include <set>

#include "api/shaping.h"
#include "common/log.h"
#include "orchestration/add_to_cart.h"
#include "security/input_validation.h"

namespace bff {
namespace {

constexpr size_t kMaxBatchIds = 50;
constexpr size_t kMaxCredentialLength = 1024;
constexpr int kMinQty = 1;
constexpr int kMaxQty = 99;

double MsSince(Scheduler& s, TimePoint t) { return std::chrono::duration<double, std::milli>(s.Now() - t).count(); }

int64_t Seconds(Duration d) { return std::chrono::duration_cast<std::chrono::seconds>(d).count(); }

// Catalog failures other than "no such product" become 503 for the app, with a hint of when to retry.
Status CatalogFailure(const Status& s) {
  if (s.code() == StatusCode::kNotFound) return s;
  return Unavailable("the catalog is unavailable right now (" + s.message() + ")");
}

}  // namespace

MobileBff::MobileBff(const Config& config, DownstreamClients& clients, Scheduler& scheduler,
                     std::shared_ptr<AccessTokenValidator> tokens)
    : options_(config.mobile),
      max_body_bytes_(static_cast<size_t>(config.server.max_body_bytes)),
      clients_(clients),
      scheduler_(scheduler),
      tokens_(std::move(tokens)),
      cache_(
          ResponseCacheOptions{static_cast<size_t>(config.mobile.cache_max_entries),
                               static_cast<size_t>(config.mobile.cache_max_bytes), std::chrono::seconds(config.mobile.max_age_s),
                               std::chrono::seconds(config.mobile.stale_while_revalidate_s),
                               std::chrono::seconds(config.mobile.stale_if_error_s)},
          scheduler) {}

void MobileBff::Register(ApiFront& front) {
  front.Route("GET", "/mobile/v1/products/{sku}", "mobile", [this](auto c, auto r) { GetProduct(std::move(c), std::move(r)); });
  front.Route("GET", "/mobile/v1/products", "mobile", [this](auto c, auto r) { GetProducts(std::move(c), std::move(r)); });
  front.Route("POST", "/mobile/v1/auth/token", "mobile", [this](auto c, auto r) { Token(std::move(c), std::move(r)); });
  front.Route("POST", "/mobile/v1/cart/items", "mobile", [this](auto c, auto r) { AddCartItem(std::move(c), std::move(r)); });
}

std::string MobileBff::ShapeProduct(const nlohmann::json& p) {
  return Pick(p, {{"id", "sku"}, {"name", "name"}, {"price", "price"}, {"currency", "currency"}, {"thumbnail_url", "thumbnail_url"}})
      .dump();
}

std::string MobileBff::CacheControl() const {
  return "public, max-age=" + std::to_string(options_.max_age_s) +
         ", stale-while-revalidate=" + std::to_string(options_.stale_while_revalidate_s);
}

void MobileBff::ServeCached(const ApiCall& call, const CachedResponse& entry, Duration age, bool stale_on_error,
                            Respond respond) {
  HttpResponse r;
  r.headers.Set("ETag", entry.etag);
  r.headers.Set("Cache-Control", CacheControl());
  // Age lets the app's own cache subtract the time the copy already spent here from max-age.
  r.headers.Set("Age", std::to_string(Seconds(age)));
  if (stale_on_error) r.headers.Set("Warning", "110 - \"Response is Stale\"");
  if (IfNoneMatchMatches(call.http().headers.Get("If-None-Match"), entry.etag)) {
    r.status = 304;
  } else {
    r.status = 200;
    r.headers.Set("Content-Type", entry.content_type);
    r.body = entry.body;
  }
  respond(std::move(r));
}

void MobileBff::RefreshInBackground(const ApiCall& call, const std::string& sku) {
  if (!cache_.BeginRefresh(sku)) return;  // one refresh per key at a time
  RequestContext ctx = call.ctx();
  ctx.deadline = TimePoint::max();  // the client has its answer; the refresh has its own timeout
  clients_.catalog().GetProduct(ctx, scheduler_.Now() + milliseconds(options_.catalog_timeout_ms), sku,
                                [this, sku, trace_id = call.trace_id()](StatusOr<nlohmann::json> p) {
                                  if (p.ok()) {
                                    cache_.Put(sku, ShapeProduct(*p));
                                  } else if (p.status().code() == StatusCode::kNotFound) {
                                    cache_.Invalidate(sku);
                                  } else {
                                    log::Warn("background refresh failed; serving the stale copy",
                                              {{"sku", sku}, {"reason", p.status().message()}},
                                              log::Scope(trace_id, "mobile"));
                                  }
                                  cache_.EndRefresh(sku);
                                });
}

void MobileBff::GetProduct(std::shared_ptr<ApiCall> call, Respond respond) {
  std::string sku = call->param("sku");
  Status valid = CheckId(sku, "sku");
  if (!valid.ok()) return respond(ErrorResponse(valid, call->trace_id()));

  CacheLookup hit = cache_.Get(sku);
  if (ActiveSpan lookup = call->ctx().StartChildSpan("cache.lookup", SpanKind::kInternal); lookup.recording()) {
    // Recorded after the fact: the lookup itself is too quick to be worth a span open around it.
    const bool fresh = hit.freshness == Freshness::kFresh, stale = hit.freshness == Freshness::kStale;
    lookup.SetAttribute(span_attr::kCacheHit, fresh || stale)
        .SetAttribute(span_attr::kCacheResult, fresh ? "hit" : stale ? "stale" : "miss");
  }
  if (hit.freshness == Freshness::kFresh) {
    call->AddTiming("cache", -1, "hit");
    return ServeCached(*call, *hit.entry, hit.age, false, std::move(respond));
  }
  if (hit.freshness == Freshness::kStale) {
    call->AddTiming("cache", -1, "stale");
    RefreshInBackground(*call, sku);
    return ServeCached(*call, *hit.entry, hit.age, false, std::move(respond));
  }
  call->AddTiming("cache", -1, "miss");
  TimePoint t0 = scheduler_.Now();
  clients_.catalog().GetProduct(
      call->ctx(), t0 + milliseconds(options_.catalog_timeout_ms), sku,
      [this, call, sku, t0, respond = std::move(respond)](StatusOr<nlohmann::json> p) {
        call->AddTiming("catalog", MsSince(scheduler_, t0));
        if (p.ok()) {
          cache_.Put(sku, ShapeProduct(*p));
          CacheLookup fresh = cache_.Peek(sku);
          if (fresh.entry) return ServeCached(*call, *fresh.entry, fresh.age, false, respond);
          // Too large to cache: answer directly.
          CachedResponse direct;
          direct.body = ShapeProduct(*p);
          direct.etag = StrongEtag(direct.body);
          return ServeCached(*call, direct, Duration::zero(), false, respond);
        }
        if (p.status().code() == StatusCode::kNotFound) {
          cache_.Invalidate(sku);
          return respond(ErrorResponse(NotFound("no product " + sku), call->trace_id()));
        }
        // The catalog failed: a stale copy beats an error.
        CacheLookup old = cache_.Peek(sku);
        if (old.entry) {
          cache_.CountStaleOnError();
          call->AddTiming("cache", -1, "stale-on-error");
          return ServeCached(*call, *old.entry, old.age, true, respond);
        }
        respond(ErrorResponse(CatalogFailure(p.status()), call->trace_id(), options_.retry_after_s));
      });
}

void MobileBff::GetProducts(std::shared_ptr<ApiCall> call, Respond respond) {
  if (!call->http().HasQueryParam("ids")) {
    return respond(ErrorResponse(InvalidArgument("ids is required: ?ids=SKU-1,SKU-2"), call->trace_id()));
  }
  std::string ids_param = call->http().QueryParam("ids");
  std::vector<std::string> ids;
  std::set<std::string> seen;
  size_t pos = 0;
  while (pos <= ids_param.size()) {
    size_t comma = ids_param.find(',', pos);
    if (comma == std::string::npos) comma = ids_param.size();
    std::string id = ids_param.substr(pos, comma - pos);
    pos = comma + 1;
    Status v = CheckId(id, "ids");
    if (!v.ok()) return respond(ErrorResponse(v, call->trace_id()));
    if (seen.insert(id).second) ids.push_back(id);
  }
  if (ids.size() > kMaxBatchIds) {
    return respond(ErrorResponse(InvalidArgument("at most " + std::to_string(kMaxBatchIds) + " ids per request"),
                                 call->trace_id()));
  }
  TimePoint t0 = scheduler_.Now();
  clients_.catalog().BatchGet(
      call->ctx(), t0 + milliseconds(options_.catalog_timeout_ms), ids,
      [this, call, ids, t0, respond = std::move(respond)](StatusOr<nlohmann::json> batch) {
        call->AddTiming("catalog", MsSince(scheduler_, t0));
        OrderedJson products = OrderedJson::array();
        OrderedJson missing = OrderedJson::array();
        bool stale = false;
        if (batch.ok()) {
          std::map<std::string, std::string> shaped;
          if (batch->contains("products") && (*batch)["products"].is_array()) {
            for (const auto& p : (*batch)["products"]) {
              if (!p.is_object() || !p.contains("sku") || !p["sku"].is_string()) continue;
              std::string body = ShapeProduct(p);
              cache_.Put(p["sku"].get<std::string>(), body);
              shaped[p["sku"].get<std::string>()] = std::move(body);
            }
          }
          for (const auto& id : ids) {
            auto it = shaped.find(id);
            if (it != shaped.end()) {
              products.push_back(OrderedJson::parse(it->second));
            } else {
              missing.push_back(id);
            }
          }
        } else {
          // Every id must have a cached copy to stand in for the failed catalog.
          for (const auto& id : ids) {
            CacheLookup old = cache_.Peek(id);
            if (!old.entry) return respond(ErrorResponse(CatalogFailure(batch.status()), call->trace_id(), options_.retry_after_s));
            products.push_back(OrderedJson::parse(old.entry->body));
          }
          cache_.CountStaleOnError();
          stale = true;
        }
        OrderedJson out;
        out["products"] = std::move(products);
        out["missing"] = std::move(missing);
        CachedResponse r;
        r.body = out.dump();
        r.etag = StrongEtag(r.body);
        ServeCached(*call, r, Duration::zero(), stale, respond);
      });
}

void MobileBff::Token(std::shared_ptr<ApiCall> call, Respond respond) {
  const HttpRequest& http = call->http();
  if (http.body.size() > max_body_bytes_) {
    return respond(ErrorResponse(Status(StatusCode::kPayloadTooLarge, "body too large"), call->trace_id()));
  }
  // Apps may send JSON or the OAuth2 form encoding.
  std::map<std::string, std::string> fields;
  std::string_view ct = http.headers.Get("Content-Type");
  if (ct.rfind("application/x-www-form-urlencoded", 0) == 0) {
    for (auto& [k, v] : ParseForm(http.body)) fields[k] = v;
  } else {
    auto body = ParseJsonObjectBody(http, max_body_bytes_);
    if (!body.ok()) return respond(ErrorResponse(body.status(), call->trace_id()));
    for (auto it = body->begin(); it != body->end(); ++it) {
      if (!it.value().is_string()) {
        return respond(ErrorResponse(InvalidArgument(it.key() + " must be a string"), call->trace_id()));
      }
      fields[it.key()] = it.value().get<std::string>();
    }
  }
  std::string grant = fields["grant_type"];
  std::vector<std::pair<std::string, std::string>> form = {{"grant_type", grant}};
  auto require = [&](const char* name) -> Status {
    const std::string& v = fields[name];
    if (v.empty()) return InvalidArgument(std::string(name) + " is required for grant_type " + grant);
    if (v.size() > kMaxCredentialLength) return InvalidArgument(std::string(name) + " is too long");
    form.emplace_back(name, v);
    return Status::Ok();
  };
  Status s;
  if (grant == "password") {
    s = require("username");
    if (s.ok()) s = require("password");
  } else if (grant == "refresh_token") {
    s = require("refresh_token");
  } else {
    s = InvalidArgument("grant_type must be password or refresh_token");
  }
  if (!s.ok()) return respond(ErrorResponse(s, call->trace_id()));
  if (grant == "password") {
    // Password guessing is limited per account, whichever addresses it comes from.
    if (auto refused = call->ChargeLogin(fields["username"])) return respond(std::move(*refused));
  }

  TimePoint t0 = scheduler_.Now();
  clients_.identity().Token(
      call->ctx(), t0 + milliseconds(options_.cart_timeout_ms), form,
      [this, call, t0, respond = std::move(respond)](StatusOr<nlohmann::json> tok) {
        call->AddTiming("identity", MsSince(scheduler_, t0));
        HttpResponse r;
        if (tok.ok()) {
          r = JsonResponse(200, Pick(*tok, {{"access_token", "access_token"},
                                           {"refresh_token", "refresh_token"},
                                           {"token_type", "token_type"},
                                           {"expires_in", "expires_in"}})
                                    .dump());
        } else if (tok.status().message().find("invalid_grant") != std::string::npos) {
          r = ErrorResponse(401, "invalid_grant", "wrong username or password, or an expired refresh token", call->trace_id());
        } else if (tok.status().code() == StatusCode::kInvalidArgument) {
          r = ErrorResponse(400, "invalid_request", tok.status().message(), call->trace_id());
        } else {
          r = ErrorResponse(Unavailable("identity is unavailable right now"), call->trace_id(), options_.retry_after_s);
        }
        r.headers.Set("Cache-Control", "no-store");
        respond(std::move(r));
      });
}

void MobileBff::AddCartItem(std::shared_ptr<ApiCall> call, Respond respond) {
  std::string auth(call->http().headers.Get("Authorization"));
  TimePoint t0 = scheduler_.Now();
  ActiveSpan auth_span = call->ctx().StartChildSpan("auth.check", SpanKind::kInternal);
  auth_span.SetAttribute(span_attr::kAuthKind, "jwt");
  tokens_->Validate(auth, [this, call, t0, auth_span, respond = std::move(respond)](StatusOr<AuthenticatedUser> user) mutable {
    auth_span.SetStatus(user.ok() ? Status::Ok() : user.status());
    auth_span.End();
    call->AddTiming("auth", MsSince(scheduler_, t0));
    if (!user.ok()) {
      HttpResponse r = ErrorResponse(user.status(), call->trace_id(), options_.retry_after_s);
      if (user.status().code() == StatusCode::kUnauthenticated) r.headers.Set("WWW-Authenticate", "Bearer");
      return respond(std::move(r));
    }
    if (auto refused = call->ChargeUser(user->user_id)) return respond(std::move(*refused));
    auto body = ParseJsonObjectBody(call->http(), max_body_bytes_);
    if (!body.ok()) return respond(ErrorResponse(body.status(), call->trace_id()));
    auto sku = RequireId(*body, "sku");
    if (!sku.ok()) return respond(ErrorResponse(sku.status(), call->trace_id()));
    auto qty = RequireInt(*body, "qty", kMinQty, kMaxQty);
    if (!qty.ok()) return respond(ErrorResponse(qty.status(), call->trace_id()));

    call->ctx().subject = user->user_id;
    AddToCartOptions opts;
    opts.inventory_timeout = milliseconds(options_.catalog_timeout_ms);
    opts.cart_timeout = milliseconds(options_.cart_timeout_ms);
    TimePoint t1 = scheduler_.Now();
    AddToCart(clients_, call->ctx(), *sku, static_cast<int>(*qty), opts,
              [this, call, t1, respond](StatusOr<nlohmann::json> cart) {
                call->AddTiming("cart", MsSince(scheduler_, t1));
                if (!cart.ok()) return respond(ErrorResponse(cart.status(), call->trace_id(), options_.retry_after_s));
                OrderedJson out;
                out["cart"] = Pick(*cart, {{"items", "items"}, {"total", "total"}, {"currency", "currency"}});
                out["cart"]["items"] = PickEach((*cart)["items"], {{"sku", "sku"}, {"qty", "qty"}, {"price", "price"}});
                HttpResponse r = JsonResponse(200, out.dump());
                r.headers.Set("Cache-Control", "no-store");
                respond(std::move(r));
              });
  });
}

}  // namespace bff
