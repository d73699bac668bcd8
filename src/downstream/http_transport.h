// Downstream transport over HTTP/1.1 (Boost.Beast): async calls on the Asio pool, keep-alive pool per service.
#pragma once

#include <map>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>

#include "downstream/transport.h"

namespace bff {

struct HttpTransportOptions {
  size_t max_connections_per_service = 64;  // callers queue for a connection beyond this
  size_t max_idle_per_service = 64;         // idle keep-alive connections kept
  int idle_timeout_ms = 30000;              // idle pooled connections are closed after this
  int connect_timeout_ms = 1000;
  size_t max_response_bytes = 8 << 20;
};

// Base URL of one service: "http://host:port" optionally followed by a path prefix that is prepended.
struct ServiceEndpoint {
  std::string host;
  std::string port;
  std::string path_prefix;  // "" or "/something" (no trailing slash)
};
StatusOr<ServiceEndpoint> ParseBaseUrl(const std::string& url);  // http:// only

class HttpTransport : public Transport {
 public:
  static StatusOr<std::shared_ptr<HttpTransport>> Create(boost::asio::io_context& io,
                                                         std::map<Service, std::string> base_urls,
                                                         HttpTransportOptions options = {});
  ~HttpTransport() override = default;
  // Closes idle connections and fails queued callers with kUnavailable; calls in flight end normally.
  virtual void Shutdown() = 0;
  // Open connections to one service (idle + busy), for tests and metrics.
  virtual size_t open_connections(Service s) const = 0;
};

}  // namespace bff
