// Web BFF: product page fan-out (catalog critical; stock, reviews, related, promotions optional with
// their own timeouts and fallbacks), server-side sessions with CSRF tokens, and add-to-cart.
#include "clients/web/web_bff.h"

#include "api/shaping.h"
#include "cache/response_cache.h"
#include "common/crypto.h"
#include "common/log.h"
#include "orchestration/add_to_cart.h"
#include "orchestration/fanout.h"
#include "security/input_validation.h"

namespace bff {
namespace {

using nlohmann::json;

constexpr int kTopReviews = 3;
constexpr size_t kMaxRelated = 8;
constexpr size_t kMaxUsernameLength = 64;
constexpr size_t kMaxPasswordLength = 256;
constexpr int kMinQty = 1;
constexpr int kMaxQty = 99;

double MsSince(Scheduler& s, TimePoint t) { return std::chrono::duration<double, std::milli>(s.Now() - t).count(); }

// Value of one cookie from a Cookie header ("a=1; b=2").
std::string CookieValue(std::string_view header, std::string_view name) {
  size_t pos = 0;
  while (pos < header.size()) {
    while (pos < header.size() && (header[pos] == ' ' || header[pos] == ';')) ++pos;
    size_t end = header.find(';', pos);
    if (end == std::string_view::npos) end = header.size();
    std::string_view pair = header.substr(pos, end - pos);
    size_t eq = pair.find('=');
    if (eq != std::string_view::npos && pair.substr(0, eq) == name) return std::string(pair.substr(eq + 1));
    pos = end + 1;
  }
  return {};
}

// The web page's parts, filled by the fan-out (each under the fan-out's lock).
struct Page {
  json product;
  OrderedJson stock = nullptr;
  OrderedJson reviews = OrderedJson{{"average", nullptr}, {"count", 0}, {"top", OrderedJson::array()}};
  OrderedJson related = OrderedJson::array();
  OrderedJson promotions = OrderedJson::array();
};

}  // namespace

WebBff::WebBff(const Config& config, DownstreamClients& clients, Scheduler& scheduler, SessionStore& sessions,
               MetricsRegistry* metrics)
    : options_(config.web),
      max_body_bytes_(static_cast<size_t>(config.server.max_body_bytes)),
      clients_(clients),
      scheduler_(scheduler),
      sessions_(sessions),
      fanout_metrics_(metrics ? std::make_unique<FanOutMetrics>(*metrics) : nullptr) {}

void WebBff::Register(ApiFront& front) {
  front.Route("GET", "/web/v1/products/{sku}", "web", [this](auto c, auto r) { GetProduct(std::move(c), std::move(r)); });
  front.Route("POST", "/web/v1/session", "web", [this](auto c, auto r) { Login(std::move(c), std::move(r)); });
  front.Route("DELETE", "/web/v1/session", "web", [this](auto c, auto r) { Logout(std::move(c), std::move(r)); });
  front.Route("GET", "/web/v1/me", "web", [this](auto c, auto r) { Me(std::move(c), std::move(r)); });
  front.Route("POST", "/web/v1/cart/items", "web", [this](auto c, auto r) { AddCartItem(std::move(c), std::move(r)); });
}

void WebBff::GetProduct(std::shared_ptr<ApiCall> call, Respond respond) {
  std::string sku = call->param("sku");
  Status valid = CheckId(sku, "sku");
  if (!valid.ok()) return respond(ErrorResponse(valid, call->trace_id()));
  if (auto session = SessionOf(*call)) call->ctx().subject = session->user_id;

  auto page = std::make_shared<Page>();
  auto fan = FanOut::Create(scheduler_, call->ctx().deadline, fanout_metrics_.get());
  RequestContext ctx = call->ctx();
  DownstreamClients& c = clients_;

  fan->Add<json>(
      "catalog", Criticality::kCritical, milliseconds(options_.catalog_timeout_ms),
      [&c, ctx, sku](TimePoint d, JsonCallback done) { c.catalog().GetProduct(ctx, d, sku, std::move(done)); },
      [page](json p) { page->product = std::move(p); });

  fan->Add<json>(
      "inventory", Criticality::kOptional, milliseconds(options_.inventory_timeout_ms),
      [&c, ctx, sku](TimePoint d, JsonCallback done) { c.inventory().GetStock(ctx, d, sku, std::move(done)); },
      [page](json s) {
        int64_t available = s.value("available", int64_t{0});
        page->stock = OrderedJson{{"available", available}, {"in_stock", available > 0}};
      },
      [page](const Status&) { page->stock = nullptr; });

  fan->Add<json>(
      "reviews", Criticality::kOptional, milliseconds(options_.reviews_timeout_ms),
      [&c, ctx, sku](TimePoint d, JsonCallback done) { c.reviews().GetReviews(ctx, d, sku, kTopReviews, std::move(done)); },
      [page](json r) {
        page->reviews = OrderedJson{
            {"average", OrderedJson(r.value("rating_avg", json(nullptr)))},
            {"count", OrderedJson(r.value("count", json(0)))},
            {"top", PickEach(r.value("reviews", json::array()),
                             {{"id", "id"}, {"author", "author"}, {"rating", "rating"}, {"title", "title"}, {"body", "body"},
                              {"created_at", "created_at"}},
                             kTopReviews)}};
      });

  // Related products: recommendations, then ONE batch lookup of their names (never one call per sku).
  fan->Add<json>(
      "recommendations", Criticality::kOptional, milliseconds(options_.recommendations_timeout_ms),
      [&c, ctx, sku](TimePoint d, JsonCallback done) {
        c.recommendations().GetRelated(ctx, d, sku, [&c, ctx, d, done = std::move(done)](StatusOr<json> rec) mutable {
          if (!rec.ok()) return done(rec.status());
          std::vector<std::string> skus;
          for (const auto& s : rec->value("related", json::array())) {
            if (s.is_string() && IsValidId(s.get<std::string>()) && skus.size() < kMaxRelated) skus.push_back(s.get<std::string>());
          }
          if (skus.empty()) return done(json{{"products", json::array()}});
          c.catalog().BatchGet(ctx, d, skus, std::move(done));
        });
      },
      [page](json batch) {
        page->related = PickEach(batch.value("products", json::array()),
                                 {{"id", "sku"}, {"name", "name"}, {"price", "price"}, {"thumbnail_url", "thumbnail_url"}},
                                 kMaxRelated);
      });

  fan->Add<json>(
      "promotions", Criticality::kOptional, milliseconds(options_.promotions_timeout_ms),
      [&c, ctx, sku](TimePoint d, JsonCallback done) { c.promotions().GetPromotions(ctx, d, sku, std::move(done)); },
      [page](json p) {
        page->promotions = PickEach(p.value("promotions", json::array()),
                                    {{"id", "id"}, {"label", "label"}, {"discount_pct", "discount_pct"}, {"ends_at", "ends_at"}});
      });

  fan->Run([this, call, page, sku, respond = std::move(respond)](FanOutResult result) {
    for (const CallOutcome& o : result.calls) {
      if (o.started) call->AddTiming(o.name, std::chrono::duration<double, std::milli>(o.elapsed).count());
    }
    if (!result.status.ok()) {
      if (result.status.code() == StatusCode::kNotFound) {
        return respond(ErrorResponse(NotFound("no product " + sku), call->trace_id()));
      }
      return respond(ErrorResponse(Unavailable("the catalog is unavailable right now (" + result.status.message() + ")"),
                                   call->trace_id(), options_.retry_after_s));
    }
    std::string degraded;
    for (const auto& d : result.degraded) {
      log::Info("degraded", {{"part", d}, {"route", "web.product"}}, call->log_scope());
      degraded += (degraded.empty() ? "" : ",") + d;
    }
    if (!degraded.empty()) call->span().SetAttribute(span_attr::kDegraded, degraded);
    OrderedJson out = Pick(page->product, {{"id", "sku"},
                                           {"name", "name"},
                                           {"description", "description"},
                                           {"specs", "specs"},
                                           {"price", "price"},
                                           {"currency", "currency"},
                                           {"images", "images"}});
    out["promotions"] = std::move(page->promotions);
    out["stock"] = std::move(page->stock);
    out["reviews"] = std::move(page->reviews);
    out["related"] = std::move(page->related);
    out["degraded"] = result.degraded;
    HttpResponse r = JsonResponse(200, out.dump());
    std::string etag = StrongEtag(r.body);
    r.headers.Set("ETag", etag);
    r.headers.Set("Cache-Control", "private, no-cache");
    if (IfNoneMatchMatches(call->http().headers.Get("If-None-Match"), etag)) {
      r.status = 304;
      r.body.clear();
      r.headers.Remove("Content-Type");
    }
    respond(std::move(r));
  });
}

std::string WebBff::SessionCookie(const std::string& value, int64_t max_age_s) const {
  std::string c = options_.cookie_name + "=" + value + "; Path=/; HttpOnly; SameSite=Lax; Max-Age=" + std::to_string(max_age_s);
  if (options_.cookie_secure) c += "; Secure";
  return c;
}

std::optional<Session> WebBff::SessionOf(const ApiCall& call) {
  std::string id = CookieValue(call.http().headers.Get("Cookie"), options_.cookie_name);
  if (id.empty() || id.size() > 128) return std::nullopt;
  return sessions_.Touch(id);
}

StatusOr<Session> WebBff::CheckSession(ApiCall& call, bool require_csrf) {
  TimePoint t0 = scheduler_.Now();
  ActiveSpan span = call.ctx().StartChildSpan("auth.check", SpanKind::kInternal);
  span.SetAttribute(span_attr::kAuthKind, "session");
  auto checked = [&]() -> StatusOr<Session> {
    auto session = SessionOf(call);
    if (!session) return Unauthenticated("log in first: no valid session");
    if (!require_csrf) return *session;
    std::string_view csrf = call.http().headers.Get("X-CSRF-Token");
    if (csrf.empty() || !ConstantTimeEquals(csrf, session->csrf_token)) {
      return PermissionDenied("missing or wrong X-CSRF-Token");
    }
    return *session;
  }();
  span.SetStatus(checked.ok() ? Status::Ok() : checked.status());
  call.AddTiming("auth", MsSince(scheduler_, t0));
  return checked;
}

void WebBff::Login(std::shared_ptr<ApiCall> call, Respond respond) {
  auto body = ParseJsonObjectBody(call->http(), max_body_bytes_);
  if (!body.ok()) return respond(ErrorResponse(body.status(), call->trace_id()));
  auto username = RequireString(*body, "username", kMaxUsernameLength);
  if (!username.ok()) return respond(ErrorResponse(username.status(), call->trace_id()));
  auto password = RequireString(*body, "password", kMaxPasswordLength);
  if (!password.ok()) return respond(ErrorResponse(password.status(), call->trace_id()));
  if (username->empty() || password->empty()) {
    return respond(ErrorResponse(InvalidArgument("username and password are required"), call->trace_id()));
  }
  // Password guessing is limited per account, whichever addresses it comes from.
  if (auto refused = call->ChargeLogin(*username)) return respond(std::move(*refused));
  TimePoint t0 = scheduler_.Now();
  clients_.identity().VerifyPassword(
      call->ctx(), t0 + milliseconds(options_.cart_timeout_ms), *username, *password,
      [this, call, t0, user = *username, respond = std::move(respond)](StatusOr<json> who) {
        call->AddTiming("identity", MsSince(scheduler_, t0));
        if (!who.ok()) {
          if (who.status().code() == StatusCode::kUnauthenticated) {
            return respond(ErrorResponse(401, "unauthenticated", "wrong username or password", call->trace_id()));
          }
          return respond(ErrorResponse(Unavailable("identity is unavailable right now"), call->trace_id(), options_.retry_after_s));
        }
        std::string user_id = who->value("user_id", "");
        if (!IsValidId(user_id)) return respond(ErrorResponse(Unavailable("identity answered without a user"), call->trace_id()));
        auto session = sessions_.Create(user_id, user);
        if (!session.ok()) return respond(ErrorResponse(session.status(), call->trace_id()));
        OrderedJson out;
        out["user"] = OrderedJson{{"id", user_id}, {"username", user}};
        out["csrf_token"] = session->csrf_token;
        HttpResponse r = JsonResponse(201, out.dump());
        r.headers.Set("Set-Cookie", SessionCookie(session->id, options_.session_absolute_s));
        r.headers.Set("Cache-Control", "no-store");
        respond(std::move(r));
      });
}

void WebBff::Logout(std::shared_ptr<ApiCall> call, Respond respond) {
  auto session = SessionWithCsrf(*call);
  if (!session.ok()) return respond(ErrorResponse(session.status(), call->trace_id()));
  if (auto refused = call->ChargeUser(session->user_id)) return respond(std::move(*refused));
  sessions_.Delete(CookieValue(call->http().headers.Get("Cookie"), options_.cookie_name));
  HttpResponse r;
  r.status = 204;
  r.headers.Set("Set-Cookie", SessionCookie("", 0));
  r.headers.Set("Cache-Control", "no-store");
  respond(std::move(r));
}

void WebBff::Me(std::shared_ptr<ApiCall> call, Respond respond) {
  auto session = CheckSession(*call, false);
  if (!session.ok()) return respond(ErrorResponse(session.status(), call->trace_id()));
  if (auto refused = call->ChargeUser(session->user_id)) return respond(std::move(*refused));
  OrderedJson out;
  out["user"] = OrderedJson{{"id", session->user_id}, {"username", session->username}};
  out["csrf_token"] = session->csrf_token;
  HttpResponse r = JsonResponse(200, out.dump());
  r.headers.Set("Cache-Control", "no-store");
  respond(std::move(r));
}

void WebBff::AddCartItem(std::shared_ptr<ApiCall> call, Respond respond) {
  auto session = SessionWithCsrf(*call);
  if (!session.ok()) return respond(ErrorResponse(session.status(), call->trace_id()));
  if (auto refused = call->ChargeUser(session->user_id)) return respond(std::move(*refused));
  auto body = ParseJsonObjectBody(call->http(), max_body_bytes_);
  if (!body.ok()) return respond(ErrorResponse(body.status(), call->trace_id()));
  auto sku = RequireId(*body, "sku");
  if (!sku.ok()) return respond(ErrorResponse(sku.status(), call->trace_id()));
  auto qty = RequireInt(*body, "qty", kMinQty, kMaxQty);
  if (!qty.ok()) return respond(ErrorResponse(qty.status(), call->trace_id()));
  call->ctx().subject = session->user_id;
  AddToCartOptions opts;
  opts.inventory_timeout = milliseconds(options_.cart_timeout_ms);
  opts.cart_timeout = milliseconds(options_.cart_timeout_ms);
  TimePoint t0 = scheduler_.Now();
  AddToCart(clients_, call->ctx(), *sku, static_cast<int>(*qty), opts,
            [this, call, t0, respond = std::move(respond)](StatusOr<json> cart) {
              call->AddTiming("cart", MsSince(scheduler_, t0));
              if (!cart.ok()) return respond(ErrorResponse(cart.status(), call->trace_id(), options_.retry_after_s));
              OrderedJson out;
              out["cart"] = Pick(*cart, {{"items", "items"}, {"total", "total"}, {"currency", "currency"}});
              out["cart"]["items"] = PickEach((*cart)["items"], {{"sku", "sku"}, {"qty", "qty"}, {"price", "price"}});
              HttpResponse r = JsonResponse(200, out.dump());
              r.headers.Set("Cache-Control", "no-store");
              respond(std::move(r));
            });
}

}  // namespace bff
