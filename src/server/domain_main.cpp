// bff-domain: the reference domain services as their own process, behind an async HTTP listener.
#include <condition_variable>
#include <csignal>
#include <fstream>
#include <mutex>
#include <cstdio>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <CLI/CLI.hpp>

#include "common/config.h"
#include "common/log.h"
#include "common/scheduler.h"
#include "domain/domain_services.h"
#include "common/crypto.h"
#include "observability/tracing.h"
#include "security/internal_credential.h"
#include "server/http_listener.h"

namespace {

// Appends what the domain received to a file, so tests can prove no client token, cookie or API key
// reached it. The Authorization value itself is never written: only whether it is bffd's credential
// and, if not, a hash of it (so a test can compare it with a client token's hash).
class RequestRecorder {
 public:
  RequestRecorder(const std::string& path, const std::string& secret) : out_(path, std::ios::app), verifier_(secret) {}

  void Record(const bff::HttpRequest& req) {
    nlohmann::json headers = nlohmann::json::object();
    for (const auto& [name, value] : req.headers) {
      if (bff::EqualsIgnoreCase(name, "Authorization")) {
        std::string token = value.rfind("Bearer ", 0) == 0 ? value.substr(7) : value;
        auto id = verifier_.Verify(token, bff::UnixNow());
        headers[name] = id.ok() ? "internal-credential client=" + id->client + " subject=" + id->subject
                                : "other sha256=" + bff::HexEncode(bff::Sha256(value));
      } else {
        headers[name] = value;
      }
    }
    nlohmann::json line = {{"method", req.method}, {"path", req.path}, {"query", req.query}, {"headers", headers},
                           {"body", req.body}};
    std::lock_guard<std::mutex> lock(mu_);
    out_ << line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
    out_.flush();
  }

 private:
  std::mutex mu_;
  std::ofstream out_;
  bff::CredentialVerifier verifier_;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bff-domain: reference domain services (catalog, inventory, reviews, recommendations, promotions, "
               "cart, analytics, identity)"};
  std::string listen = "127.0.0.1:8090", data = "data-domain", faults_json, log_level = "info", config_path, record_path,
      trace_collector;
  int threads = 2, drain_ms = 5000, password_iterations = 100000;
  bool allow_unauthenticated = false, version = false;
  app.add_option("--listen", listen, "ADDR:PORT to serve on (port 0 picks a free port; the log says which)");
  app.add_option("--data", data, "data directory (SQLite database, identity key, internal credential key)");
  app.add_option("--config", config_path, "bffd.toml to read [domain] faults and password_iterations from");
  app.add_option("--faults", faults_json, "faults at start, JSON: '{\"reviews\": {\"latency_ms\": 200}}'");
  app.add_option("--threads", threads, "Asio threads")->check(CLI::Range(1, 64));
  app.add_option("--password-iterations", password_iterations, "PBKDF2 iterations for demo passwords")->check(CLI::Range(1000, 10000000));
  app.add_option("--log-level", log_level, "debug, info, warn or error");
  app.add_flag("--allow-unauthenticated", allow_unauthenticated,
               "accept calls without bffd's internal credential (local debugging only)");
  app.add_option("--record-requests", record_path,
                 "append every request received (method, path, headers, body) to FILE as JSON lines, for tests that "
                 "check what reached the domain; Authorization is recorded only as whether it is bffd's credential");
  app.add_option("--trace-collector", trace_collector,
                 "OTLP/HTTP base URL to export spans to, e.g. http://127.0.0.1:4318 (tracing.collector_url)");
  app.add_flag("--version", version, "print the version and exit");
  CLI11_PARSE(app, argc, argv);
  if (version) {
    std::printf("bff-domain %s\n", bff::VersionString().c_str());
    return 0;
  }
  bff::log::Level level;
  if (!bff::log::ParseLevel(log_level, &level)) {
    std::fprintf(stderr, "bff-domain: --log-level: expected debug, info, warn or error\n");
    return 2;
  }
  bff::log::SetLevel(level);

  bff::DomainOptions opts;
  opts.data_dir = data;
  opts.allow_unauthenticated = allow_unauthenticated;
  opts.password_iterations = password_iterations;
  bff::Config::Tracing tracing_config;
  tracing_config.service_name = "bff-domain";
  if (!config_path.empty()) {
    auto cfg = bff::LoadConfigFile(config_path);
    if (!cfg.ok()) {
      std::fprintf(stderr, "bff-domain: bad configuration: %s\n", cfg.status().message().c_str());
      return 2;
    }
    opts.initial_faults = cfg->domain.faults;
    opts.password_iterations = cfg->domain.password_iterations;
    std::string service_name = tracing_config.service_name;
    tracing_config = cfg->tracing;
    // The shared file names bffd's own service; the domain keeps its name unless the file changed it.
    if (tracing_config.service_name == bff::Config::Tracing{}.service_name) tracing_config.service_name = service_name;
  }
  if (!trace_collector.empty()) tracing_config.collector_url = trace_collector;
  bff::Config check;
  check.tracing = tracing_config;
  if (bff::Status valid = bff::ValidateConfig(check); !valid.ok()) {
    std::fprintf(stderr, "bff-domain: bad configuration: %s\n", valid.message().c_str());
    return 2;
  }
  bff::SetNewTraceSamplePercent(tracing_config.sample_percent);
  auto tracing = bff::MakeTracing(bff::TracingSettingsFrom(tracing_config));
  if (!tracing.ok()) {
    std::fprintf(stderr, "bff-domain: bad configuration: %s\n", tracing.status().message().c_str());
    return 2;
  }
  opts.tracer = tracing->tracer;
  if (tracing->exporter) bff::log::Info("exporting spans", {{"endpoint", tracing->exporter->endpoint()}});
  if (!faults_json.empty()) {
    auto j = nlohmann::json::parse(faults_json, nullptr, false);
    if (!j.is_object()) {
      std::fprintf(stderr, "bff-domain: --faults: expected a JSON object keyed by service name\n");
      return 2;
    }
    for (auto it = j.begin(); it != j.end(); ++it) opts.initial_faults[it.key()] = it.value();
  }
  auto hp = bff::ParseHostPort(listen);
  if (!hp.ok()) {
    std::fprintf(stderr, "bff-domain: --listen: %s\n", hp.status().message().c_str());
    return 2;
  }
  if (allow_unauthenticated) {
    bff::log::Warn("!!! --allow-unauthenticated: calls WITHOUT bffd's internal credential are accepted. "
                   "Local debugging only; never expose this process. !!!");
  }

  boost::asio::io_context io;
  auto work = boost::asio::make_work_guard(io);
  bff::AsioScheduler scheduler(io);
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i) pool.emplace_back([&io] { io.run(); });
  auto stop_pool = [&] {
    work.reset();
    io.stop();
    for (auto& t : pool) t.join();
  };

  auto domain = bff::DomainServices::Create(opts, scheduler);
  if (!domain.ok()) {
    std::fprintf(stderr, "bff-domain: cannot start: %s\n", domain.status().message().c_str());
    stop_pool();
    return 1;
  }
  bff::DomainServices* services = domain->get();
  std::unique_ptr<RequestRecorder> recorder;
  if (!record_path.empty()) {
    auto secret = bff::LoadOrCreateInternalSecret(data);
    if (!secret.ok()) {
      std::fprintf(stderr, "bff-domain: --record-requests: %s\n", secret.status().message().c_str());
      stop_pool();
      return 1;
    }
    recorder = std::make_unique<RequestRecorder>(record_path, *secret);
  }
  RequestRecorder* rec = recorder.get();
  auto listener = bff::HttpListener::Create(io, hp->first, hp->second,
                                            [services, rec](bff::HttpRequest req, std::function<void(bff::HttpResponse)> respond) {
                                              if (rec) rec->Record(req);
                                              services->Handle(std::move(req), std::move(respond));
                                            });
  if (!listener.ok()) {
    std::fprintf(stderr, "bff-domain: --listen %s: %s\n", listen.c_str(), listener.status().message().c_str());
    stop_pool();
    return 1;
  }
  bff::log::Info("bff-domain listening", {{"host", hp->first}, {"port", (*listener)->port()}, {"data_dir", data},
                                          {"version", bff::VersionString()}});

  // Block the main thread until SIGINT/SIGTERM, then drain.
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (ec) return;
    std::lock_guard<std::mutex> lock(mu);
    stop = true;
    cv.notify_all();
  });
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return stop; });
  }
  bff::log::Info("bff-domain draining");
  (*listener)->Stop();
  services->ReleaseHeld();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(drain_ms);
  while ((*listener)->in_flight() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // Spans of the requests just drained go out before the pool stops, within what is left of the drain.
  tracing->Shutdown(std::max(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(100)));
  stop_pool();
  domain.value().reset();
  bff::log::Info("bff-domain stopped");
  return 0;
}
