// bffd process wiring: builds the core from config, serves the admin port, drains on SIGTERM/SIGINT.
#include "server/daemon.h"

#include <sys/resource.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <future>

#include "common/log.h"
#include "common/crypto.h"
#include "downstream/in_process_transport.h"
#include "security/secret_file.h"
#include "server/iot_metrics.h"
#include "server/keys_command.h"
#include "observability/process_metrics.h"
#include "observability/trace_context.h"

namespace bff {
namespace {

// "127.0.0.1:5683" -> "127.0.0.1"; "[::1]:5683" -> "[::1]".
std::string HostOf(const std::string& host_port) { return host_port.substr(0, host_port.rfind(':')); }

constexpr int kDemoShelfPage = 200;
constexpr auto kStartupCallTimeout = std::chrono::seconds(10);
// /readyz asks the catalog for one product; no answer by then counts as not ready.
constexpr auto kReadinessTimeout = std::chrono::seconds(2);
// Least time given to hand queued spans to the collector at shutdown, even after a drain used all of its own.
constexpr auto kSpanFlushFloor = std::chrono::milliseconds(200);

HttpResponse JsonError(int status, std::string_view code, const std::string& message, const std::string& trace_id) {
  nlohmann::json body = {{"error", {{"code", code}, {"message", message}, {"trace_id", trace_id}}}};
  return HttpResponse::Json(status, body.dump());
}

// Every HTTP connection is a descriptor, and Debian's default soft limit (1024) would stop accepting long
// before server.http_max_connections. The hard limit is the operator's (systemd LimitNOFILE, ulimit -Hn);
// the soft one is raised to it, as nginx does with worker_rlimit_nofile.
void RaiseOpenFileLimit(int max_connections) {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) {
    log::Warn("cannot read the open-file limit", {{"error", std::strerror(errno)}});
    return;
  }
  const rlim_t before = lim.rlim_cur;
  if (lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) {
      log::Warn("cannot raise the open-file limit", {{"error", std::strerror(errno)}, {"soft", static_cast<int64_t>(before)}});
      return;
    }
  }
  log::Info("open-file limit", {{"soft_before", static_cast<int64_t>(before)}, {"soft", static_cast<int64_t>(lim.rlim_cur)},
                                {"hard", static_cast<int64_t>(lim.rlim_max)}});
  if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < static_cast<rlim_t>(max_connections)) {
    log::Warn("open-file limit below server.http_max_connections; accepts will fail first",
              {{"limit", static_cast<int64_t>(lim.rlim_cur)}, {"http_max_connections", max_connections}});
  }
}

}  // namespace

StatusOr<nlohmann::json> WaitForJson(const std::function<void(JsonCallback)>& fn, Duration timeout) {
  auto promise = std::make_shared<std::promise<StatusOr<nlohmann::json>>>();
  auto future = promise->get_future();
  fn([promise](StatusOr<nlohmann::json> r) { promise->set_value(std::move(r)); });
  if (future.wait_for(timeout) != std::future_status::ready) return DeadlineExceeded("no answer in time");
  return future.get();
}

Daemon::Daemon(Config config)
    : config_(std::move(config)), work_(boost::asio::make_work_guard(io_)), scheduler_(io_) {}

Daemon::~Daemon() {
  if (mqtt_) mqtt_->Stop(milliseconds(0));
  if (coap_) coap_->Stop();
  if (key_registry_) key_registry_->Stop();
  if (admin_) admin_->Stop();
  if (domain_) domain_->ReleaseHeld();
  if (http_) http_->Stop();
  if (tokens_) tokens_->Stop();
  if (domain_) domain_->ReleaseHeld();
  if (http_transport_) http_transport_->Shutdown();
  work_.reset();
  io_.stop();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

StatusOr<std::unique_ptr<Daemon>> Daemon::Create(const Config& config) {
  Status valid = ValidateConfig(config);
  if (!valid.ok()) return valid;
  std::unique_ptr<Daemon> d(new Daemon(config));
  Status s = d->Start();
  if (!s.ok()) return s;
  return d;
}

Status Daemon::Start() {
  RaiseOpenFileLimit(config_.server.http_max_connections);
  std::error_code ec;
  std::filesystem::create_directories(config_.data_dir, ec);
  if (ec) return Unavailable("data_dir: cannot create '" + config_.data_dir + "': " + ec.message());

  SetNewTraceSamplePercent(config_.tracing.sample_percent);
  auto tracing = MakeTracing(TracingSettingsFrom(config_.tracing));
  if (!tracing.ok()) return tracing.status();
  tracing_ = std::move(tracing).value();
  if (tracing_.exporter) log::Info("exporting spans", {{"endpoint", tracing_.exporter->endpoint()}});

  for (int i = 0; i < config_.server.threads; ++i) threads_.emplace_back([this] { io_.run(); });

  auto secret = LoadOrCreateInternalSecret(config_.data_dir);
  if (!secret.ok()) return secret.status();
  minter_ = std::make_unique<CredentialMinter>(*secret, std::chrono::seconds(config_.security.credential_ttl_s));

  Transport* base = nullptr;
  if (config_.embedded()) {
    DomainOptions opts;
    opts.data_dir = config_.data_dir;
    opts.initial_faults = config_.domain.faults;
    opts.password_iterations = config_.domain.password_iterations;
    opts.tracer = tracing_.tracer;
    auto domain = DomainServices::Create(opts, scheduler_);
    if (!domain.ok()) return Status(domain.status().code(), "embedded domain: " + domain.status().message());
    domain_ = std::move(domain).value();
    in_process_ = std::make_unique<InProcessTransport>(*domain_, scheduler_);
    base = in_process_.get();
  } else {
    std::map<Service, std::string> urls;
    for (Service s : kAllServices) urls[s] = config_.BaseUrlFor(std::string(ServiceName(s)));
    HttpTransportOptions opts;
    opts.max_connections_per_service = static_cast<size_t>(config_.domain.max_connections_per_service);
    opts.max_idle_per_service = opts.max_connections_per_service;
    opts.connect_timeout_ms = config_.domain.connect_timeout_ms;
    auto t = HttpTransport::Create(io_, urls, opts);
    if (!t.ok()) return Status(t.status().code(), "domain.mode: " + t.status().message());
    http_transport_ = std::move(t).value();
    base = http_transport_.get();
  }
  if (config_.domain.coalesce_reads) {
    coalescing_ = std::make_unique<CoalescingTransport>(*base, scheduler_);
    base = coalescing_.get();
  }
  // Outermost, so each call is counted as the typed clients made it.
  if (config_.server.metrics) {
    metered_ = std::make_unique<MeteredTransport>(*base, scheduler_, metrics_);
    base = metered_.get();
  }
  clients_ = std::make_unique<DownstreamClients>(*base, *minter_, scheduler_, domain_.get());

  auto keys = ApiKeyStore::Open(config_.data_dir);
  if (!keys.ok()) return Status(keys.status().code(), "key store: " + keys.status().message());
  keys_ = std::move(keys).value();
  if (config_.iot.demo_fleet > 0 && keys_->Count() == 0) {
    Status p = ProvisionDemoFleet();
    if (!p.ok()) log::Warn("demo fleet not provisioned; will retry at next start", {{"reason", p.message()}});
  }

  auto hp = ParseHostPort(config_.server.admin);
  if (!hp.ok()) return Status(hp.status().code(), "server.admin: " + hp.status().message());
  auto admin = HttpListener::Create(io_, hp->first, hp->second,
                                    [this](HttpRequest req, std::function<void(HttpResponse)> respond) {
                                      HandleAdmin(std::move(req), std::move(respond));
                                    });
  if (!admin.ok()) return Status(admin.status().code(), "server.admin: " + admin.status().message());
  admin_ = std::move(admin).value();

  Status bffs = StartHttpBffs();
  if (!bffs.ok()) return bffs;
  Status iot = StartIot();
  if (!iot.ok()) return iot;

  RegisterDaemonMetrics();

  signals_ = std::make_unique<boost::asio::signal_set>(io_, SIGINT, SIGTERM, SIGHUP);
  WaitForSignal();

  auto http_hp = ParseHostPort(config_.server.http);
  log::Info("bffd ready", {{"version", VersionString()},
                           {"admin", "http://" + hp->first + ":" + std::to_string(admin_->port())},
                           {"http", "http://" + http_hp->first + ":" + std::to_string(http_->port())},
                           {"coap", coap_port() ? "coap://" + HostOf(config_.server.coap) + ":" + std::to_string(coap_port()) : ""},
                           {"coaps", coaps_port() ? "coaps://" + HostOf(config_.server.coaps) + ":" + std::to_string(coaps_port()) : ""},
                           {"domain", config_.domain.mode},
                           {"data_dir", config_.data_dir},
                           {"threads", config_.server.threads}});
  return Status::Ok();
}

Status Daemon::StartHttpBffs() {
  ApiFront::Options front_opts;
  front_opts.request_timeout = milliseconds(config_.server.request_timeout_ms);
  front_opts.tracer = &tracing_.tracer;
  const Config::RateLimit& rl = config_.rate_limit;
  http_limiter_ = std::make_unique<TokenBucketLimiter>(scheduler_, static_cast<size_t>(rl.max_tracked));
  front_opts.limiter = http_limiter_.get();
  front_opts.limits.client_rps = rl.client_rps;
  front_opts.limits.client_burst = rl.client_burst;
  front_opts.limits.user_rps = rl.user_rps;
  front_opts.limits.user_burst = rl.user_burst;
  front_opts.limits.logins_per_minute = rl.logins_per_minute;
  front_opts.limits.login_burst = rl.login_burst;
  for (const std::string& proxy : rl.trusted_proxies) {
    auto network = IpNetwork::Parse(proxy);  // checked with the rest of the config
    if (network.ok()) front_opts.limits.trusted_proxies.push_back(*network);
  }
  front_ = std::make_unique<ApiFront>(front_opts, scheduler_, recorded_metrics());

  AccessTokenOptions token_opts;
  token_opts.issuer = config_.mobile.token_issuer;
  token_opts.audience = config_.mobile.token_audience;
  DownstreamClients* clients = clients_.get();
  Scheduler* sched = &scheduler_;
  tokens_ = AccessTokenValidator::Create(
      token_opts,
      [clients, sched](AccessTokenValidator::JwksCallback done) {
        RequestContext ctx;
        ctx.trace = TraceContext::NewRoot();
        clients->identity().Jwks(ctx, sched->Now() + std::chrono::seconds(5), std::move(done));
      },
      scheduler_);
  tokens_->Start();

  SessionOptions session_opts;
  session_opts.idle_timeout = std::chrono::seconds(config_.web.session_idle_s);
  session_opts.absolute_timeout = std::chrono::seconds(config_.web.session_absolute_s);
  sessions_ = std::make_unique<InMemorySessionStore>(session_opts);

  mobile_ = std::make_unique<MobileBff>(config_, *clients_, scheduler_, tokens_);
  mobile_->Register(*front_);
  web_ = std::make_unique<WebBff>(config_, *clients_, scheduler_, *sessions_, recorded_metrics());
  web_->Register(*front_);

  auto hp = ParseHostPort(config_.server.http);
  if (!hp.ok()) return Status(hp.status().code(), "server.http: " + hp.status().message());
  HttpServerOptions http_opts;
  http_opts.host = hp->first;
  http_opts.port = hp->second;
  http_opts.threads = static_cast<size_t>(config_.server.http_threads);
  http_opts.max_body_bytes = static_cast<size_t>(config_.server.max_body_bytes);
  http_opts.max_header_bytes = static_cast<size_t>(config_.server.http_max_header_bytes);
  http_opts.max_connections = static_cast<size_t>(config_.server.http_max_connections);
  http_opts.keep_alive_max_requests = static_cast<size_t>(config_.server.http_max_requests_per_connection);
  http_opts.header_timeout = milliseconds(config_.server.http_header_timeout_ms);
  http_opts.body_timeout = milliseconds(config_.server.http_body_timeout_ms);
  http_opts.idle_timeout = milliseconds(config_.server.http_idle_timeout_ms);
  http_opts.write_timeout = milliseconds(config_.server.http_write_timeout_ms);
  http_opts.handler_timeout = milliseconds(config_.server.request_timeout_ms + 1000);
  ApiFront* front = front_.get();
  auto server = HttpServer::Start(http_opts, [front](HttpRequest req, std::function<void(HttpResponse)> respond) {
    front->Handle(std::move(req), std::move(respond));
  });
  if (!server.ok()) return Status(server.status().code(), "server.http: " + server.status().message());
  http_ = std::move(server).value();
  return Status::Ok();
}

void Daemon::WaitForSignal() {
  signals_->async_wait([this](const boost::system::error_code& e, int sig) {
    if (e) return;
    if (sig == SIGHUP) {
      // Key changes are also noticed by polling; SIGHUP makes them take effect at once.
      log::Info("SIGHUP: reloading device keys");
      if (key_registry_) key_registry_->Reload();
      WaitForSignal();
      return;
    }
    log::Info("signal received, draining", {{"signal", sig == SIGINT ? "SIGINT" : "SIGTERM"}});
    Stop();
  });
}

void Daemon::RegisterDaemonMetrics() {
  if (!config_.server.metrics) return;
  RegisterProcessMetrics(metrics_);
  metrics_.Gauges("bffd_build_info", "Always 1; the version label says which bffd is running.", {"version"})
      .With({VersionString()})
      .Set(1);
  if (mobile_) ExportCacheMetrics(mobile_->cache(), "mobile", metrics_);
  if (http_) {
    HttpServer* http = http_.get();
    metrics_.GaugeCallback("bffd_http_requests_in_flight", "HTTP requests handed to the BFFs and not yet answered.",
                           [http] { return static_cast<double>(http->in_flight()); });
    metrics_.GaugeCallback("bffd_http_connections_open", "HTTP connections open now on server.http.",
                           [http] { return static_cast<double>(http->open_connections()); });
    metrics_.CounterCallback("bffd_http_connections_refused_total",
                             "HTTP connections answered 503 and closed because server.http_max_connections were open.",
                             [http] { return static_cast<double>(http->refused_connections()); });
    auto& timeouts = metrics_.Counters("bffd_http_timeouts_total",
                                       "HTTP connections or requests that ran past a limit: header and body (408, "
                                       "closed), idle (closed), handler (504).",
                                       {"kind"});
    for (auto [kind, name] : {std::pair{HttpTimeout::kHeader, "header"}, std::pair{HttpTimeout::kBody, "body"},
                              std::pair{HttpTimeout::kIdle, "idle"}, std::pair{HttpTimeout::kHandler, "handler"}}) {
      timeouts.AddCallback({name}, [http, kind = kind] { return static_cast<double>(http->timeouts(kind)); });
    }
  }
  if (coalescing_) {
    CoalescingTransport* c = coalescing_.get();
    metrics_.CounterCallback("bffd_downstream_coalesced_total",
                             "Downstream reads that shared an identical call already in flight instead of sending their own.",
                             [c] { return static_cast<double>(c->coalesced_calls()); });
  }
  if (mqtt_) {
    MqttAdapter* mqtt = mqtt_.get();
    metrics_.GaugeCallback("bffd_mqtt_connected", "1 while the MQTT broker session is up, else 0.",
                           [mqtt] { return mqtt->connected() ? 1.0 : 0.0; });
  }
  ExportIotMetrics(metrics_, iot_.get(), mqtt_.get(), coap_.get(), domain_.get());
  RegisterTracingMetrics();
}

void Daemon::RegisterTracingMetrics() {
  if (!tracing_.exporter) return;
  // The exporter outlives the registry's readers: both live until the daemon goes.
  const OtlpExporterCounters* c = &tracing_.exporter->counters();
  auto read = [](const std::atomic<uint64_t>& v) { return static_cast<double>(v.load(std::memory_order_relaxed)); };
  metrics_.CounterCallback("bffd_spans_exported_total", "Spans the trace collector accepted (answered 2xx).",
                           [c, read] { return read(c->exported_spans); });
  metrics_.CounterCallback("bffd_spans_rejected_total",
                           "Spans the trace collector reported as rejected in an otherwise accepted batch.",
                           [c, read] { return read(c->rejected_spans); });
  metrics_.CounterCallback("bffd_span_batches_exported_total", "Span batches the trace collector accepted.",
                           [c, read] { return read(c->exported_batches); });
  metrics_.CounterCallback("bffd_span_batches_failed_total",
                           "Span batches that failed (refused, timed out, non-2xx) and were dropped.",
                           [c, read] { return read(c->failed_batches); });
  CounterFamily& dropped = metrics_.Counters(
      "bffd_spans_dropped_total",
      "Spans dropped instead of exported: queue_full (the export queue was full), failed (in a failed batch), "
      "shutdown (recorded after shutdown began, or still queued when the drain ended).",
      {"reason"});
  dropped.AddCallback({"queue_full"}, [c, read] { return read(c->dropped_spans_queue_full); });
  dropped.AddCallback({"failed"}, [c, read] { return read(c->dropped_spans_failed); });
  dropped.AddCallback({"shutdown"}, [c, read] { return read(c->dropped_spans_shutdown); });
}

Status Daemon::StartIot() {
  key_registry_ = std::make_unique<KeyRegistry>(*keys_, config_.data_dir + "/keys.db", scheduler_);
  key_registry_->Start();
  limiter_ = std::make_unique<TokenBucketLimiter>(scheduler_);
  iot_ = std::make_unique<IotBff>(config_, *clients_, scheduler_, *key_registry_, *limiter_);
  iot_->set_tracer(&tracing_.tracer);
  if (config_.mqtt.enabled) {
    auto password = LoadOrCreateSecretFile(MqttPasswordPath(config_), [] { return RandomHex(24) + "\n"; });
    if (!password.ok()) return Status(password.status().code(), "mqtt: " + password.status().message());
    MqttAdapterOptions o;
    o.uri = config_.mqtt.uri;
    o.client_id = config_.mqtt.client_id;
    o.username = kBffdMqttUser;
    o.password = *password;
    while (!o.password.empty() && (o.password.back() == '\n' || o.password.back() == '\r')) o.password.pop_back();
    o.shared_subscription = config_.mqtt.shared_subscription;
    o.max_in_flight = static_cast<size_t>(config_.mqtt.max_in_flight);
    auto mqtt = MqttAdapter::Start(o, *iot_, scheduler_);
    if (!mqtt.ok()) return Status(mqtt.status().code(), "mqtt.uri: " + mqtt.status().message());
    mqtt_ = std::move(mqtt).value();
  }
  if (!config_.server.coap.empty() || !config_.server.coaps.empty()) {
    CoapServerOptions o;
    o.coap_address = config_.server.coap;
    o.coaps_address = config_.server.coaps;
    o.max_age_s = config_.iot.stock_freshness_s;
    o.max_payload_bytes = static_cast<size_t>(config_.iot.max_payload_bytes);
    o.session_idle_s = config_.iot.coap_session_idle_s;
    o.receive_buffer_bytes = config_.iot.coap_receive_buffer_bytes;
    o.metrics = recorded_metrics();
    // The DTLS handshake needs the key itself: the store opens its sealed copy, for active devices only.
    ApiKeyStore* keys = keys_.get();
    auto coap = CoapServer::Start(o, *iot_, [keys](const std::string& device) -> std::string {
      auto psk = keys->DtlsPsk(device);
      return psk.ok() ? *psk : std::string();
    });
    if (!coap.ok()) {
      std::string key = config_.server.coaps.empty() || coap.status().message().find("DTLS") == std::string::npos
                            ? "server.coap"
                            : "server.coaps";
      return Status(coap.status().code(), key + ": " + coap.status().message());
    }
    coap_ = std::move(coap).value();
  }
  return Status::Ok();
}

Status Daemon::ProvisionDemoFleet() {
  std::vector<ApiKeyRecord> records;
  std::string cursor;
  RequestContext ctx;
  ctx.trace = TraceContext::NewRoot();
  while (records.size() < static_cast<size_t>(config_.iot.demo_fleet)) {
    auto page = WaitForJson(
        [&](JsonCallback cb) {
          clients_->inventory().ListShelves(ctx, scheduler_.Now() + kStartupCallTimeout, kDemoShelfPage, cursor, cb);
        },
        kStartupCallTimeout + std::chrono::seconds(1));
    if (!page.ok()) return page.status();
    if (!page->contains("shelves") || !(*page)["shelves"].is_array()) return Internal("inventory: malformed shelf list");
    for (auto& shelf : (*page)["shelves"]) {
      if (records.size() >= static_cast<size_t>(config_.iot.demo_fleet)) break;
      std::string shelf_id = shelf.value("shelf_id", "");
      if (shelf_id.empty()) continue;
      ApiKeyRecord r;
      // Device ids mirror their shelf: shelf-01-02 is watched by sensor-01-02.
      r.device_id = shelf_id.rfind("shelf-", 0) == 0 ? "sensor-" + shelf_id.substr(6) : "sensor-" + shelf_id;
      r.shelves = {shelf_id};
      records.push_back(std::move(r));
    }
    auto next = page->value("next_cursor", nlohmann::json(nullptr));
    if (!next.is_string() || next.get<std::string>().empty()) break;
    cursor = next.get<std::string>();
  }
  if (records.empty()) return FailedPrecondition("inventory lists no shelves");
  auto keys = keys_->AddMany(records);
  if (!keys.ok()) return keys.status();
  std::string contents;
  for (size_t i = 0; i < records.size(); ++i) {
    contents += records[i].device_id + " " + records[i].shelves[0] + " " + (*keys)[i] + "\n";
  }
  demo_keys_file_ = config_.data_dir + "/demo-keys.txt";
  Status w = WriteSecretFile(demo_keys_file_, contents);
  if (!w.ok()) return w;
  log::Info("demo fleet provisioned", {{"devices", records.size()}, {"keys_file", demo_keys_file_}});
  return Status::Ok();
}

void Daemon::HandleAdmin(HttpRequest req, std::function<void(HttpResponse)> respond) {
  TraceContext trace = TraceContext::AcceptOrCreate(req.headers.Get("traceparent"), req.headers.Get("tracestate"));
  TimePoint started = Clock::now();
  auto finish = [respond = std::move(respond), trace, started](HttpResponse r) {
    r.headers.Set("traceparent", trace.ToTraceparent());
    double ms = std::chrono::duration<double, std::milli>(Clock::now() - started).count();
    char buf[64];
    std::snprintf(buf, sizeof(buf), "total;dur=%.1f", ms);
    r.headers.Set("Server-Timing", buf);
    respond(std::move(r));
  };
  log::Debug("admin request", {{"method", req.method}, {"path", req.path}}, trace.trace_id);
  if (req.path == "/healthz") {
    if (req.method != "GET") return finish(JsonError(405, "method_not_allowed", "use GET", trace.trace_id));
    return finish(HttpResponse::Json(200, R"({"status":"ok"})"));
  }
  if (req.path == "/readyz") {
    if (req.method != "GET") return finish(JsonError(405, "method_not_allowed", "use GET", trace.trace_id));
    return HandleReadiness(trace, std::move(finish));
  }
  if (req.path == "/metrics") {
    if (req.method != "GET") return finish(JsonError(405, "method_not_allowed", "use GET", trace.trace_id));
    if (!config_.server.metrics) {
      return finish(JsonError(404, "not_found", "metrics are off (server.metrics = false)", trace.trace_id));
    }
    HttpResponse r;
    r.status = 200;
    r.headers.Set("Content-Type", kPrometheusContentType);
    r.headers.Set("Cache-Control", "no-store");
    r.body = metrics_.Render();
    return finish(std::move(r));
  }
  if (req.path == "/admin/v1/log-level") return HandleLogLevel(req, trace, std::move(finish));
  if (req.path.rfind("/admin/v1/faults", 0) == 0) {
    if (!domain_) {
      return finish(JsonError(404, "not_found",
                              "fault injection lives in the domain process when bffd uses a remote domain; use "
                              "bff-domain's /admin/v1/faults",
                              trace.trace_id));
    }
    domain_->Handle(std::move(req), finish);
    return;
  }
  finish(JsonError(404, "not_found", "no such admin path: " + req.path, trace.trace_id));
}

void Daemon::HandleReadiness(const TraceContext& trace, std::function<void(HttpResponse)> finish) {
  RequestContext ctx;
  ctx.trace = trace;
  clients_->catalog().ListProducts(
      ctx, scheduler_.Now() + kReadinessTimeout, 1, "", [this, finish, trace](StatusOr<nlohmann::json> r) {
        // Every reason at once: an operator fixing one should not discover the next on the following probe.
        std::vector<std::string> reasons;
        if (mqtt_ && !mqtt_->connected()) reasons.push_back("mqtt: not connected to " + config_.mqtt.uri);
        if (!r.ok()) reasons.push_back("domain: " + r.status().message());
        if (reasons.empty()) return finish(HttpResponse::Json(200, R"({"status":"ready"})"));
        nlohmann::json body = {{"status", "not_ready"}, {"reasons", reasons}, {"trace_id", trace.trace_id}};
        finish(HttpResponse::Json(503, body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)));
      });
}

void Daemon::HandleLogLevel(const HttpRequest& req, const TraceContext& trace, std::function<void(HttpResponse)> finish) {
  auto current = [] {
    return HttpResponse::Json(200, nlohmann::json{{"level", log::LevelName(log::GetLevel())}}.dump());
  };
  if (req.method == "GET") return finish(current());
  if (req.method != "PUT") return finish(JsonError(405, "method_not_allowed", "use GET or PUT", trace.trace_id));
  auto body = nlohmann::json::parse(req.body, nullptr, false);
  log::Level level;
  if (!body.is_object() || !body.contains("level") || !body["level"].is_string() ||
      !log::ParseLevel(body["level"].get<std::string>(), &level)) {
    return finish(JsonError(400, "invalid_argument", R"(expected {"level": "debug" | "info" | "warn" | "error"})",
                            trace.trace_id));
  }
  log::Level before = log::GetLevel();
  log::SetLevel(level);
  // Written whatever the new level, so the change itself is always on record.
  log::Write(log::Level::kInfo, "log level changed", {{"from", log::LevelName(before)}, {"to", log::LevelName(level)}},
             trace.trace_id);
  finish(current());
}

void Daemon::Stop() {
  std::lock_guard<std::mutex> lock(mu_);
  stop_requested_ = true;
  cv_.notify_all();
}

int Daemon::Run() {
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return stop_requested_; });
  }
  Drain();
  return 0;
}

void Daemon::Drain() {
  TimePoint deadline = Clock::now() + milliseconds(config_.server.drain_timeout_ms);
  if (admin_) admin_->Stop();
  // Stop() lets the HTTP front finish what it accepted; run it beside the admin drain.
  std::thread http_stop([this] {
    if (http_) http_->Stop();
  });
  auto in_flight = [this] { return (admin_ ? admin_->in_flight() : 0) + (http_ ? http_->in_flight() : 0); };
  while (Clock::now() < deadline && in_flight() > 0) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  size_t abandoned = in_flight();
  if (mqtt_) mqtt_->Stop(milliseconds(std::max<int64_t>(0, MillisUntil(deadline, Clock::now()))));
  if (coap_) coap_->Stop();
  if (key_registry_) key_registry_->Stop();
  if (domain_) domain_->ReleaseHeld();  // answers held by "hang" faults must not block the exit
  http_stop.join();
  if (tokens_) tokens_->Stop();
  if (domain_) domain_->ReleaseHeld();
  if (http_transport_) http_transport_->Shutdown();
  // The spans of the requests just drained, within what is left of the drain (a short floor, so a
  // drain that used all its time still hands over what is queued when the collector is quick).
  TimePoint span_deadline = std::max(deadline, Clock::now() + kSpanFlushFloor);
  if (!tracing_.Shutdown(span_deadline)) log::Warn("spans left behind at shutdown");
  if (signals_) {
    boost::system::error_code ignored;
    signals_->cancel(ignored);
  }
  log::Info("drained", {{"abandoned", abandoned}});
}

}  // namespace bff
