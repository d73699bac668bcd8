// Process wiring for bffd: Asio pool, downstream layer (embedded or HTTP), admin listener, signals, drain.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "api/api.h"
#include "clients/mobile/mobile_bff.h"
#include "clients/web/web_bff.h"
#include "common/config.h"
#include "clients/iot/iot_bff.h"
#include "protocols/http/http_server.h"
#include "protocols/coap/coap_server.h"
#include "protocols/mqtt/mqtt_adapter.h"
#include "security/key_registry.h"
#include "security/rate_limiter.h"
#include "security/access_token_validator.h"
#include "security/session_store.h"
#include "common/scheduler.h"
#include "domain/domain_services.h"
#include "downstream/clients.h"
#include "downstream/http_transport.h"
#include "downstream/metered_transport.h"
#include "observability/metrics.h"
#include "observability/tracing.h"
#include "orchestration/coalescing_transport.h"
#include "security/api_key_store.h"
#include "security/internal_credential.h"
#include "server/http_listener.h"

namespace bff {

class Daemon {
 public:
  // Builds everything and starts the Asio pool and listeners. Fails with a message naming what could not start.
  static StatusOr<std::unique_ptr<Daemon>> Create(const Config& config);
  ~Daemon();

  // Blocks until SIGTERM/SIGINT or Stop(); drains requests in flight within server.drain_timeout_ms and
  // returns the process exit code (0 after a clean drain).
  int Run();
  // Begins shutdown from any thread.
  void Stop();

  uint16_t admin_port() const { return admin_ ? admin_->port() : 0; }
  uint16_t http_port() const { return http_ ? http_->port() : 0; }
  uint16_t coap_port() const { return coap_ ? coap_->coap_port() : 0; }
  uint16_t coaps_port() const { return coap_ ? coap_->coaps_port() : 0; }
  DownstreamClients& clients() { return *clients_; }
  // The daemon's one registry, served on the admin listener's /metrics. Components built here get it (or
  // handles registered in it) from the daemon.
  MetricsRegistry& metrics() { return metrics_; }
  // The registry for components to record into; nullptr when server.metrics is off.
  MetricsRegistry* recorded_metrics() { return config_.server.metrics ? &metrics_ : nullptr; }
  Scheduler& scheduler() { return scheduler_; }
  // Off unless [tracing] asks for spans; every entry point puts it in its RequestContext.
  const Tracer& tracer() const { return tracing_.tracer; }
  const Config& config() const { return config_; }
  // Provisioned-at-first-start demo keys file ("device_id shelf_id key" per line), or empty.
  const std::string& demo_keys_file() const { return demo_keys_file_; }

 private:
  explicit Daemon(Config config);
  Status Start();
  Status ProvisionDemoFleet();
  Status StartHttpBffs();
  Status StartIot();
  void HandleAdmin(HttpRequest req, std::function<void(HttpResponse)> respond);
  void HandleReadiness(const TraceContext& trace, std::function<void(HttpResponse)> finish);
  void HandleLogLevel(const HttpRequest& req, const TraceContext& trace, std::function<void(HttpResponse)> finish);
  void RegisterDaemonMetrics();
  void RegisterTracingMetrics();
  void Drain();
  void WaitForSignal();

  Config config_;
  // First member, so destroyed last: scrape callbacks read components declared below.
  MetricsRegistry metrics_;
  // Before everything that records spans; shut down in Drain() before the pool stops.
  Tracing tracing_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  AsioScheduler scheduler_;
  std::vector<std::thread> threads_;
  std::unique_ptr<CredentialMinter> minter_;
  std::unique_ptr<DomainServices> domain_;
  std::unique_ptr<Transport> in_process_;
  std::shared_ptr<HttpTransport> http_transport_;
  std::unique_ptr<CoalescingTransport> coalescing_;
  std::unique_ptr<MeteredTransport> metered_;
  std::unique_ptr<DownstreamClients> clients_;
  std::unique_ptr<ApiKeyStore> keys_;
  std::shared_ptr<HttpListener> admin_;
  std::unique_ptr<TokenBucketLimiter> http_limiter_;  // HTTP client addresses, users and logins: outlives front_
  std::unique_ptr<ApiFront> front_;
  std::shared_ptr<AccessTokenValidator> tokens_;
  std::unique_ptr<SessionStore> sessions_;
  std::unique_ptr<MobileBff> mobile_;
  std::unique_ptr<WebBff> web_;
  std::unique_ptr<HttpServer> http_;
  std::unique_ptr<KeyRegistry> key_registry_;
  std::unique_ptr<TokenBucketLimiter> limiter_;       // device keys, across MQTT and CoAP
  std::unique_ptr<IotBff> iot_;
  std::unique_ptr<MqttAdapter> mqtt_;
  std::unique_ptr<CoapServer> coap_;
  std::unique_ptr<boost::asio::signal_set> signals_;
  std::string demo_keys_file_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_requested_ = false;
};

// Runs `fn(callback)` and waits up to `timeout` for the callback (for start-up and CLI paths only,
// never on a request path).
StatusOr<nlohmann::json> WaitForJson(const std::function<void(JsonCallback)>& fn, Duration timeout);

}  // namespace bff
