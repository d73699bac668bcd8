// Request pipeline of the reference domain services: budget, faults, credential, routing, admin API.
#include "domain/domain_services.h"

#include <cmath>
#include <exception>
#include <filesystem>
#include <system_error>

#include "common/log.h"
#include "domain/faults.h"
#include "domain/http_util.h"
#include "domain/router.h"
#include "domain/services.h"
#include "domain/store.h"
#include "security/internal_credential.h"

namespace bff {
namespace domain {
namespace {

constexpr char kHealthPath[] = "/healthz";
constexpr std::string_view kAdminPrefix = "/admin/v1/faults";
// Budgets beyond a day are treated as a day; nobody waits longer for a demo service.
constexpr int64_t kMaxBudgetMs = 24LL * 3600 * 1000;
// The answer an error_rate fault gives; told apart from real failures in the error log.
constexpr std::string_view kInjectedErrorMessage = "injected error";

HttpResponse NoContent() {
  HttpResponse r;
  r.status = 204;
  return r;
}

std::string FirstSegment(std::string_view path) {
  if (path.size() < 2 || path[0] != '/') return {};
  size_t end = path.find('/', 1);
  return std::string(path.substr(1, end == std::string_view::npos ? std::string_view::npos : end - 1));
}

// Parses the budget header: nullopt when absent; an error for anything but an integer.
StatusOr<std::optional<int64_t>> ParseBudget(const HttpRequest& req) {
  if (!req.headers.Has(kBudgetHeader)) return std::optional<int64_t>();
  std::string_view v = req.headers.Get(kBudgetHeader);
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  bool negative = !v.empty() && v.front() == '-';
  if (negative) v.remove_prefix(1);
  if (v.empty() || v.size() > 18) return InvalidArgument(std::string(kBudgetHeader) + " must be an integer");
  int64_t ms = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return InvalidArgument(std::string(kBudgetHeader) + " must be an integer");
    ms = ms * 10 + (c - '0');
  }
  ms = negative ? -ms : std::min(ms, kMaxBudgetMs);
  return std::optional<int64_t>(ms);
}

Status ValidateFault(const Fault& f) {
  if (f.latency_ms < 0 || f.latency_ms > kMaxFaultLatencyMs) {
    return InvalidArgument("latency_ms: must be from 0 to " + std::to_string(kMaxFaultLatencyMs));
  }
  if (!std::isfinite(f.error_rate) || f.error_rate < 0.0 || f.error_rate > 1.0) {
    return InvalidArgument("error_rate: must be from 0 to 1");
  }
  return Status::Ok();
}

class Core : public std::enable_shared_from_this<Core> {
 public:
  Core(const DomainOptions& options, Scheduler& scheduler, std::string secret)
      : options_(options), scheduler_(scheduler), verifier_(std::move(secret)) {}

  Status Init() {
    auto db = Db::Open(options_.data_dir + "/domain.db");
    if (!db.ok()) return db.status();
    db_ = std::shared_ptr<Db>(std::move(*db));
    if (Status s = InitializeSchemaAndSeed(*db_, options_.password_iterations); !s.ok()) return s;
    auto catalog = CatalogService::Load(*db_);
    if (!catalog.ok()) return catalog.status();
    catalog_ = *catalog;
    auto inventory = InventoryService::Load(db_, scheduler_, *catalog_);
    if (!inventory.ok()) return inventory.status();
    inventory_ = *inventory;
    auto identity = IdentityService::Create(db_, options_);
    if (!identity.ok()) return identity.status();
    identity_ = *identity;
    content_ = std::make_shared<ContentServices>(db_, *catalog_);
    cart_ = std::make_shared<CartService>(db_, *catalog_);
    analytics_ = std::make_shared<AnalyticsService>(db_);
    catalog_->Register(router_);
    inventory_->Register(router_);
    content_->Register(router_);
    cart_->Register(router_);
    analytics_->Register(router_);
    identity_->Register(router_);
    return Status::Ok();
  }

  void Handle(HttpRequest req, Responder done) {
    // Work happens on the scheduler's threads, never on the caller's (an HTTP listener or a BFF).
    scheduler_.Post(
        [self = shared_from_this(), req = std::move(req), done = std::move(done),
         arrival = scheduler_.Now()]() mutable { self->Process(std::move(req), std::move(done), arrival); });
  }

  Status SetFault(const std::string& service, const Fault& fault) {
    if (!IsServiceName(service)) return NotFound("unknown service " + service);
    if (Status s = ValidateFault(fault); !s.ok()) return s;
    Release(faults_.Set(service, fault), "fault changed");
    log::Info("domain: fault set", {{"service", service}, {"fault", fault.ToJson()}});
    return Status::Ok();
  }

  void ClearFault(const std::string& service) {
    Release(faults_.Clear(service), "fault cleared");
    log::Info("domain: fault cleared", {{"service", service}});
  }

  void ClearFaults() {
    Release(faults_.ClearAll(), "faults cleared");
    log::Info("domain: all faults cleared");
  }

  void ReleaseHeld() { Release(faults_.TakeAllHeld(), "held requests released"); }

  nlohmann::json Faults() const { return faults_.ToJson(); }

  bool Quiet(std::string_view service) const { return faults_.Quiet(service); }
  void SubmitShelfReading(ShelfReading reading, TimePoint deadline, ShelfReadingCallback done) {
    inventory_->Submit(std::move(reading), deadline, std::move(done));
  }
  size_t QueuedShelfReadings() const { return inventory_->queued_readings(); }

 private:
  static void Release(std::vector<Responder> held, std::string_view why) {
    for (auto& r : held)
      r(ErrorResponse(503, "unavailable", std::string("request held by a hang fault: ") + std::string(why)));
  }

  // Logs the outcome at debug level (ids and paths only: never the Authorization header or a body).
  static Responder Logged(Responder done, const HttpRequest& req, std::string trace_id) {
    return [done = std::move(done), method = req.method, path = req.path, trace_id = std::move(trace_id),
            start = Clock::now()](HttpResponse resp) {
      if (log::Enabled(log::Level::kDebug)) {
        auto us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count();
        log::Debug("domain request", {{"method", method}, {"path", path}, {"status", resp.status}, {"us", us}},
                   trace_id);
      }
      // A 500 other than an injected one is the service failing (a full disk, a broken database):
      // always worth a line. The message is the service's own, never client input.
      if (resp.status == 500) {
        auto body = nlohmann::json::parse(resp.body, nullptr, false);
        std::string error = body.is_object() && body.contains("error") && body["error"].is_object()
                                ? body["error"].value("message", "")
                                : "";
        if (error != kInjectedErrorMessage) log::Error("domain: request failed", {{"method", method}, {"path", path}, {"status", resp.status}, {"error", error}},
                   trace_id);
      }
      try {
        done(std::move(resp));
      } catch (const std::exception& e) {
        log::Error("domain: responder threw", {{"error", e.what()}, {"path", path}}, trace_id);
      } catch (...) {
        log::Error("domain: responder threw", {{"path", path}}, trace_id);
      }
    };
  }

  // Wraps `respond` so the call's server span (child of the caller's traceparent) ends with the answer.
  // Named "METHOD service" until the route is known; errors are 5xx answers only, as the caller's
  // refusals (404, 409) are the service doing its job.
  Responder Traced(Responder respond, Call& call, const std::string& service) const {
    TraceContext trace =
        TraceContext::AcceptOrCreate(call.req.headers.Get("traceparent"), call.req.headers.Get("tracestate"));
    call.span = options_.tracer.Start(call.req.method + " " + service, SpanKind::kServer, trace);
    if (!call.span.recording()) return respond;
    call.span.SetAttribute(span_attr::kProtocol, "http")
        .SetAttribute(span_attr::kHttpMethod, call.req.method);
    return [respond = std::move(respond), span = call.span](HttpResponse resp) mutable {
      span.SetAttribute(span_attr::kHttpStatusCode, resp.status);
      if (resp.status >= 500) span.SetError("HTTP " + std::to_string(resp.status));
      span.End();
      respond(std::move(resp));
    };
  }

  void Process(HttpRequest req, Responder done, TimePoint arrival) {
    auto call = std::make_shared<Call>();
    call->trace_id = TraceIdOf(req);
    Responder respond = Logged(std::move(done), req, call->trace_id);
    call->req = std::move(req);
    const std::string& path = call->req.path;

    // /healthz and the admin API carry no credential: they are served only on the domain's own
    // listener (loopback by default) or in-process, never through a BFF's public front.
    if (path == kHealthPath) {
      if (call->req.method != "GET" && call->req.method != "HEAD") return respond(MethodNotAllowed("GET"));
      return respond(JsonResponse(200, {{"status", "ok"}}));
    }
    if (path == kAdminPrefix || path.rfind(std::string(kAdminPrefix) + "/", 0) == 0) {
      return respond(Guarded([&] { return Admin(call->req); }, call->trace_id));
    }

    std::string service = FirstSegment(path);
    if (!IsServiceName(service)) return respond(ErrorResponse(404, "not_found", "no such path"));
    if (options_.tracer.enabled()) respond = Traced(std::move(respond), *call, service);

    auto budget = ParseBudget(call->req);
    if (!budget.ok()) return respond(ErrorResponse(budget.status()));
    if (budget->has_value() && **budget <= 0) {
      return respond(ErrorResponse(504, "deadline_exceeded", "time budget exhausted before the call started"));
    }
    const TimePoint deadline = budget->has_value() ? arrival + std::chrono::milliseconds(**budget) : TimePoint::max();

    FaultTable::Decision d = faults_.Admit(service, respond);
    switch (d.action) {
      case FaultTable::Action::kDown:
        return respond(ErrorResponse(503, "unavailable", service + " is down (injected fault)"));
      case FaultTable::Action::kHeld:
        // A hang ignores the budget: it models a service that never answers, and the caller's own
        // deadline is what ends the wait. Answered 503 when the hang is released.
        return;
      case FaultTable::Action::kProceed:
        break;
    }
    if (d.latency_ms > 0) {
      const TimePoint ready = scheduler_.Now() + std::chrono::milliseconds(d.latency_ms);
      if (ready > deadline) {
        // Nobody will read an answer after the budget: give up when it runs out.
        scheduler_.RunAt(deadline, [respond = std::move(respond)] {
          respond(ErrorResponse(504, "deadline_exceeded", "time budget ran out during injected latency"));
        });
        return;
      }
      scheduler_.RunAt(ready, [self = shared_from_this(), call, respond = std::move(respond),
                               rate = d.error_rate]() mutable { self->Continue(call, std::move(respond), rate); });
      return;
    }
    Continue(call, std::move(respond), d.error_rate);
  }

  void Continue(const std::shared_ptr<Call>& call, Responder respond, double error_rate) {
    if (faults_.RollError(error_rate)) {
      return respond(ErrorResponse(500, "internal", std::string(kInjectedErrorMessage)));
    }
    if (Status s = Authenticate(*call); !s.ok()) {
      HttpResponse r = ErrorResponse(s);
      r.headers.Set("WWW-Authenticate", "Bearer");
      return respond(std::move(r));
    }
    Router::Match m = router_.Find(call->req.method, call->req.path);
    if (m.handler == nullptr) {
      if (!m.allow.empty()) return respond(MethodNotAllowed(m.allow));
      return respond(ErrorResponse(404, "not_found", "no such path"));
    }
    if (!m.invalid_param.empty()) {
      return respond(ErrorResponse(400, "invalid_argument", m.invalid_param + ": must match [A-Za-z0-9._-]{1,64}"));
    }
    call->params = std::move(m.params);
    if (call->span.recording()) {
      call->span.SetName(call->req.method + " " + *m.pattern).SetAttribute(span_attr::kHttpRoute, *m.pattern);
    }
    call->done = std::move(respond);
    Reply reply;
    try {
      reply = (*m.handler)(*call);
    } catch (const std::exception& e) {
      log::Error("domain: handler failed", {{"path", call->req.path}, {"error", e.what()}}, call->trace_id);
      reply = ErrorResponse(500, "internal", "internal error");
    } catch (...) {
      log::Error("domain: handler failed", {{"path", call->req.path}}, call->trace_id);
      reply = ErrorResponse(500, "internal", "internal error");
    }
    // A handler that took call->done answers later; otherwise it answered now.
    if (reply && call->done) call->done(std::move(*reply));
  }

  Status Authenticate(Call& call) const {
    std::string_view header = call.req.headers.Get("Authorization");
    if (header.empty()) {
      if (options_.allow_unauthenticated) return Status::Ok();
      return Unauthenticated("missing internal credential");
    }
    constexpr std::string_view kBearer = "Bearer ";
    if (header.size() <= kBearer.size() || !EqualsIgnoreCase(header.substr(0, kBearer.size()), kBearer)) {
      return Unauthenticated("Authorization must be a Bearer credential");
    }
    auto identity = verifier_.Verify(header.substr(kBearer.size()), UnixNow());
    if (!identity.ok()) return Unauthenticated("invalid internal credential");
    call.subject = identity->subject;
    return Status::Ok();
  }

  template <typename F>
  HttpResponse Guarded(F&& f, const std::string& trace_id) {
    try {
      return f();
    } catch (const std::exception& e) {
      log::Error("domain: admin request failed", {{"error", e.what()}}, trace_id);
    } catch (...) {
      log::Error("domain: admin request failed", nullptr, trace_id);
    }
    return ErrorResponse(500, "internal", "internal error");
  }

  static HttpResponse MethodNotAllowed(const std::string& allow) {
    HttpResponse r = ErrorResponse(405, "method_not_allowed", "allowed: " + allow);
    r.headers.Set("Allow", allow);
    return r;
  }

  HttpResponse Admin(const HttpRequest& req) {
    std::vector<std::string_view> parts = SplitPath(req.path);
    if (parts.size() == 3) {
      if (req.method == "GET") return JsonResponse(200, Faults());
      if (req.method == "DELETE") {
        ClearFaults();
        return NoContent();
      }
      return MethodNotAllowed("GET, DELETE");
    }
    if (parts.size() != 4 || req.path.find("//") != std::string::npos) {
      return ErrorResponse(404, "not_found", "no such path");
    }
    const std::string service(parts[3]);
    if (!IsServiceName(service)) return ErrorResponse(404, "not_found", "unknown service");
    if (req.method == "GET") return JsonResponse(200, faults_.Get(service).ToJson());
    if (req.method == "DELETE") {
      ClearFault(service);
      return NoContent();
    }
    if (req.method != "PUT") return MethodNotAllowed("GET, PUT, DELETE");
    // Content-Type is not insisted on here: this is an operator's tool, often driven by curl -d.
    auto body = ParseJsonObject(req.body);
    if (!body.ok()) return ErrorResponse(body.status());
    auto fault = Fault::FromJson(*body);
    if (!fault.ok()) return ErrorResponse(fault.status());
    if (Status s = SetFault(service, *fault); !s.ok()) return ErrorResponse(s);
    return JsonResponse(200, faults_.Get(service).ToJson());
  }

  DomainOptions options_;
  Scheduler& scheduler_;
  CredentialVerifier verifier_;
  FaultTable faults_;
  Router router_;
  std::shared_ptr<Db> db_;
  std::shared_ptr<CatalogService> catalog_;
  std::shared_ptr<InventoryService> inventory_;
  std::shared_ptr<ContentServices> content_;
  std::shared_ptr<CartService> cart_;
  std::shared_ptr<AnalyticsService> analytics_;
  std::shared_ptr<IdentityService> identity_;
};

// The public handle. The core is shared with pending timers and writer tasks, so it outlives this
// handle until they have run.
class ServicesImpl : public DomainServices {
 public:
  explicit ServicesImpl(std::shared_ptr<Core> core) : core_(std::move(core)) {}
  ~ServicesImpl() override { core_->ReleaseHeld(); }

  void Handle(HttpRequest req, Responder done) override { core_->Handle(std::move(req), std::move(done)); }
  Status SetFault(const std::string& service, const Fault& fault) override { return core_->SetFault(service, fault); }
  void ClearFaults() override { core_->ClearFaults(); }
  nlohmann::json Faults() const override { return core_->Faults(); }
  void ReleaseHeld() override { core_->ReleaseHeld(); }
  bool DirectCallsAllowed(std::string_view service) const override { return core_->Quiet(service); }
  void SubmitShelfReading(ShelfReading reading, TimePoint deadline, ShelfReadingCallback done) override {
    core_->SubmitShelfReading(std::move(reading), deadline, std::move(done));
  }
  size_t queued_shelf_readings() const override { return core_->QueuedShelfReadings(); }

 private:
  std::shared_ptr<Core> core_;
};

}  // namespace
}  // namespace domain

StatusOr<std::unique_ptr<DomainServices>> DomainServices::Create(const DomainOptions& options, Scheduler& scheduler) {
  if (options.data_dir.empty()) return InvalidArgument("data_dir: required");
  if (options.password_iterations < 1) return InvalidArgument("password_iterations: must be at least 1");
  if (options.access_token_ttl_s < 1) return InvalidArgument("access_token_ttl_s: must be at least 1");
  if (options.refresh_token_ttl_s < 1) return InvalidArgument("refresh_token_ttl_s: must be at least 1");
  auto faults = domain::ParseFaultTable(options.initial_faults);
  if (!faults.ok()) return InvalidArgument("initial_faults." + faults.status().message());

  std::error_code ec;
  std::filesystem::create_directories(options.data_dir, ec);
  if (ec) return Unavailable("data_dir " + options.data_dir + ": " + ec.message());
  auto secret = LoadOrCreateInternalSecret(options.data_dir);
  if (!secret.ok()) return Status(secret.status().code(), "internal credential secret: " + secret.status().message());

  auto core = std::make_shared<domain::Core>(options, scheduler, std::move(*secret));
  if (Status s = core->Init(); !s.ok()) return s;
  for (const auto& [service, fault] : *faults) {
    if (Status s = core->SetFault(service, fault); !s.ok())
      return InvalidArgument("initial_faults." + service + "." + s.message());
  }
  if (options.allow_unauthenticated) {
    log::Warn(
        "domain: accepting calls without the internal credential (allow_unauthenticated); for local debugging only");
  }
  return std::unique_ptr<DomainServices>(new domain::ServicesImpl(std::move(core)));
}

}  // namespace bff
