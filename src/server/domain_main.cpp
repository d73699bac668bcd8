// bff-domain: the reference domain services as their own process, behind an async HTTP listener.
#include <condition_variable>
#include <csignal>
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
#include "server/http_listener.h"

int main(int argc, char** argv) {
  CLI::App app{"bff-domain: reference domain services (catalog, inventory, reviews, recommendations, promotions, "
               "cart, analytics, identity)"};
  std::string listen = "127.0.0.1:8090", data = "data-domain", faults_json, log_level = "info", config_path;
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
  if (!config_path.empty()) {
    auto cfg = bff::LoadConfigFile(config_path);
    if (!cfg.ok()) {
      std::fprintf(stderr, "bff-domain: bad configuration: %s\n", cfg.status().message().c_str());
      return 2;
    }
    opts.initial_faults = cfg->domain.faults;
    opts.password_iterations = cfg->domain.password_iterations;
  }
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
  auto listener = bff::HttpListener::Create(io, hp->first, hp->second,
                                            [services](bff::HttpRequest req, std::function<void(bff::HttpResponse)> respond) {
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
  stop_pool();
  domain.value().reset();
  bff::log::Info("bff-domain stopped");
  return 0;
}
