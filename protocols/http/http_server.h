// HTTP/1.1 front for the mobile and web BFFs, served by Boost.Beast on its own small Asio pool.
//
// Every request, whatever its method and path, goes to one asynchronous handler. Connections are
// asynchronous sessions: an idle or slow connection holds a socket and a small buffer, never a thread,
// and every phase of a connection (idle, request header, request body, handler, write) has its own limit.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/http_message.h"
#include "common/status.h"

namespace bff {

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;                         // 0 = any free port; port() tells which
  size_t threads = 2;                           // event-loop threads; connections do not hold them
  size_t max_body_bytes = 16 * 1024;            // larger bodies: 413 JSON error
  size_t max_header_bytes = 8 * 1024;           // request line and headers; larger: 431 JSON error
  std::chrono::milliseconds header_timeout{10000};  // first byte to end of headers; past it: 408, closed
  std::chrono::milliseconds body_timeout{10000};    // end of headers to end of body; past it: 408, closed
  std::chrono::milliseconds idle_timeout{60000};    // keep-alive wait for a next request; past it: closed
  std::chrono::milliseconds write_timeout{10000};   // one whole answer to a reader that does not read
  size_t max_connections = 10000;               // open at once; past it: 503 and closed, counted
  size_t keep_alive_max_requests = 100000;      // answers per connection; the last carries Connection: close
  int listen_backlog = 4096;                    // capped by net.core.somaxconn
  std::chrono::milliseconds handler_timeout{15000};  // no answer by then: 504 JSON error
};

using HttpAsyncHandler = std::function<void(HttpRequest req, std::function<void(HttpResponse)> respond)>;

// The limits a connection can run into, each counted separately.
enum class HttpTimeout { kHeader, kBody, kIdle, kHandler };

class HttpServer {
 public:
  // Binds and starts serving on its own threads. Fails (naming host:port) when the address cannot be bound.
  static StatusOr<std::unique_ptr<HttpServer>> Start(HttpServerOptions options, HttpAsyncHandler handler);
  virtual ~HttpServer() = default;
  virtual uint16_t port() const = 0;
  // Stops accepting and closes connections between requests; requests in flight are answered first
  // (each within handler_timeout), then the threads end. Idempotent.
  virtual void Stop() = 0;
  // Requests handed to the handler and not yet answered.
  virtual size_t in_flight() const = 0;
  // Connections open now.
  virtual size_t open_connections() const = 0;
  // Connections refused because max_connections were open.
  virtual uint64_t refused_connections() const = 0;
  // Connections or requests that ran past the given limit.
  virtual uint64_t timeouts(HttpTimeout kind) const = 0;
  // Requests answered 504 because the handler did not answer within handler_timeout.
  uint64_t handler_timeouts() const { return timeouts(HttpTimeout::kHandler); }
};

}  // namespace bff
