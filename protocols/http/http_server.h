// HTTP/1.1 front for the mobile and web BFFs, served by cpp-httplib (kept out of this header).
//
// Every request, whatever its method and path, goes to one asynchronous handler; the httplib worker
// thread waits for the answer with a deadline (never spins). httplib holds a keep-alive connection on one
// worker thread for its lifetime, so the pool is sized to the connections expected (a setting).
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
  uint16_t port = 8080;                      // 0 = any free port; port() tells which
  size_t threads = 64;                       // worker pool: one per keep-alive connection expected, with
                                             // headroom; a connection beyond it waits until one ends
  size_t max_body_bytes = 16 * 1024;         // larger bodies: 413 JSON error
  int read_timeout_ms = 5000;
  int write_timeout_ms = 5000;
  int keep_alive_timeout_s = 5;
  size_t keep_alive_max_requests = 100000;  // httplib's own default, 5, reconnects constantly
  int listen_backlog = 1024;                 // Debian's httplib listens with 5; re-listened with this
  std::chrono::milliseconds handler_timeout{15000};  // no answer by then: 504 JSON error
};

using HttpAsyncHandler = std::function<void(HttpRequest req, std::function<void(HttpResponse)> respond)>;

class HttpServer {
 public:
  // Binds and starts serving on its own threads. Fails (naming host:port) when the address cannot be bound.
  static StatusOr<std::unique_ptr<HttpServer>> Start(HttpServerOptions options, HttpAsyncHandler handler);
  virtual ~HttpServer() = default;
  virtual uint16_t port() const = 0;
  // Stops accepting; requests in flight are answered first. Idempotent.
  virtual void Stop() = 0;
  // Requests handed to the handler and not yet answered.
  virtual size_t in_flight() const = 0;
  // Requests answered 504 because the handler did not answer within handler_timeout.
  virtual uint64_t handler_timeouts() const = 0;
  // Accepted connections waiting for a free worker thread (each worker holds one connection at a time).
  virtual size_t queued_connections() const = 0;
  // Worker threads serving a connection now; `threads` minus this are idle.
  virtual size_t busy_workers() const = 0;
};

}  // namespace bff
