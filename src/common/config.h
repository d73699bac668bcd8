// bffd configuration: defaults, TOML loading with strict validation, command-line overrides.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace bff {

struct Config {
  struct Server {
    std::string http = "127.0.0.1:8080";    // mobile and web BFFs (HTTP)
    std::string admin = "127.0.0.1:9464";   // health, fault injection, metrics: loopback by default
    std::string coap = "0.0.0.0:5683";      // IoT BFF, plain CoAP (UDP)
    std::string coaps = "0.0.0.0:5684";     // IoT BFF, CoAP over DTLS-PSK
    int threads = 2;                        // Asio pool size
    int drain_timeout_ms = 10000;           // SIGTERM: time allowed for requests in flight
    int http_threads = 2;                   // HTTP event-loop threads; connections do not hold them
    int http_max_connections = 10000;       // open at once on server.http; past it: 503 and closed
    int http_max_header_bytes = 8192;       // request line and headers; larger: 431
    int http_header_timeout_ms = 10000;     // first byte to end of headers; past it: 408, closed
    int http_body_timeout_ms = 10000;       // end of headers to end of body; past it: 408, closed
    int http_idle_timeout_ms = 60000;       // keep-alive wait for the next request; past it: closed
    int http_write_timeout_ms = 10000;      // one whole answer to a client that reads it
    int http_max_requests_per_connection = 100000;  // the last answer carries Connection: close
    int request_timeout_ms = 5000;          // deadline of one client request, across all its downstream calls
    int max_body_bytes = 16384;             // larger request bodies: 413
    bool metrics = true;                    // record Prometheus metrics (GET /metrics on the admin listener)
  } server;
  struct Mobile {
    int max_age_s = 3600;                  // Cache-Control max-age of product answers
    int stale_while_revalidate_s = 600;    // served stale (and refreshed in the background) this long after
    int stale_if_error_s = 86400;          // a stale copy may stand in for a failed catalog this long
    int cache_max_entries = 20000;
    int cache_max_bytes = 64 << 20;
    int catalog_timeout_ms = 800;
    int cart_timeout_ms = 2000;
    int retry_after_s = 5;                 // Retry-After on 503
    std::string token_issuer = "bff-identity";
    std::string token_audience = "bffd";
  } mobile;
  struct Web {
    int catalog_timeout_ms = 800;
    int inventory_timeout_ms = 150;
    int reviews_timeout_ms = 150;
    int recommendations_timeout_ms = 200;  // recommendations and the batch name lookup together
    int promotions_timeout_ms = 150;
    int cart_timeout_ms = 2000;
    int session_idle_s = 1800;
    int session_absolute_s = 43200;
    bool cookie_secure = true;             // false only for plain-http local development
    std::string cookie_name = "bffd_session";
    int retry_after_s = 5;
  } web;
  struct Mqtt {
    bool enabled = true;
    std::string uri = "tcp://127.0.0.1:1883";
    std::string client_id = "bffd";         // fixed, so the broker keeps bffd's persistent session
    bool shared_subscription = false;       // $share/bffd/...: several instances split device traffic
    int max_in_flight = 4096;               // messages being processed before back-pressure
  } mqtt;
  struct Domain {
    std::string mode = "embedded";              // "embedded" or a base URL used for every service
    std::map<std::string, std::string> services;  // per-service base URL overrides (service name -> URL)
    int timeout_ms = 2000;                      // default per-call downstream timeout
    int max_connections_per_service = 64;
    int connect_timeout_ms = 1000;
    bool coalesce_reads = true;                 // identical in-flight GETs share one downstream call
    nlohmann::json faults = nlohmann::json::object();  // embedded domain: faults applied at start
    int password_iterations = 100000;           // embedded identity service
  } domain;
  struct Security {
    int credential_ttl_s = 60;  // lifetime of the internal credential minted for downstream calls
  } security;
  struct Iot {
    int demo_fleet = 1000;        // demo device keys provisioned at first start (0 = none)
    int stock_freshness_s = 300;  // how long shelf stock flags are cached for devices
    int max_payload_bytes = 1024;  // larger device payloads are refused (4.13 / error map)
    int inventory_timeout_ms = 2000;
    int coap_session_idle_s = 60;              // libcoap forgets a quiet client's session after this
    int coap_receive_buffer_bytes = 4 << 20;   // UDP receive buffer of the CoAP sockets (a fleet waking at once)
  } iot;
  struct RateLimit {
    int client_rps = 1000;          // requests/s per client address on server.http (an IPv6 client by its /64); 0: off
    int client_burst = 2000;
    int user_rps = 50;              // authenticated requests/s per user (bearer token subject, web session user); 0: off
    int user_burst = 100;
    int logins_per_minute = 20;     // password attempts per username (mobile token, web session); 0: off
    int login_burst = 20;
    std::vector<std::string> trusted_proxies;  // addresses or blocks whose X-Forwarded-For names the client
    int max_tracked = 100000;       // buckets kept; refilled ones are forgotten first
  } rate_limit;
  struct Tracing {
    std::string collector_url;       // OTLP/HTTP base URL ("http://127.0.0.1:4318"); empty: no export
    bool log_spans = false;          // one JSON log line per span (development)
    int max_queue = 8192;            // spans waiting to be sent; past it, spans are dropped (counted)
    int max_batch = 512;             // spans per POST, at most max_queue
    int max_delay_ms = 1000;         // longest a span waits for its batch to fill
    int timeout_ms = 5000;           // one export, connect to answer
    std::string service_name = "bffd";  // resource service.name
    int sample_percent = 100;        // share of new traces recorded; a caller's sampled flag is honoured
  } tracing;
  std::string data_dir = "data";
  std::string log_level = "info";

  bool embedded() const { return domain.mode == "embedded"; }
  // Base URL for a service when not embedded: per-service override, else domain.mode.
  std::string BaseUrlFor(const std::string& service) const;
};

// Loads `path` (TOML). Unknown keys, wrong types and bad values are errors naming the key.
StatusOr<Config> LoadConfigFile(const std::string& path);
// Parses TOML text (for tests); `origin` names the source in messages.
StatusOr<Config> ParseConfig(const std::string& toml_text, const std::string& origin = "config");
// Checks every value (addresses, ranges, URLs, service names); message names the key.
Status ValidateConfig(const Config& config);

std::string VersionString();

}  // namespace bff
