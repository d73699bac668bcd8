// Asynchronous HTTP/1.1 listener (Boost.Beast) for the domain process and bffd's admin port.
//
// A listener makes sessions; each session is kept alive by its pending operation. Handlers answer
// through a callback, possibly much later (timers), so a slow answer holds a socket, not a thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>

#include "common/http_message.h"
#include "common/status.h"

namespace bff {

using HttpHandler = std::function<void(HttpRequest req, std::function<void(HttpResponse)> respond)>;

struct HttpListenerOptions {
  size_t max_body_bytes = 1 << 20;       // larger bodies get 413
  size_t max_header_bytes = 16 * 1024;   // larger headers get 431/400
  int idle_timeout_ms = 60000;           // keep-alive connection idle limit
  int read_timeout_ms = 30000;           // time to read one whole request once it started
  size_t max_connections = 10000;        // further accepts wait
  int backlog = 1024;
};

class HttpListener : public std::enable_shared_from_this<HttpListener> {
 public:
  // Binds host:port (port 0 = any free port) and starts accepting on `io`.
  static StatusOr<std::shared_ptr<HttpListener>> Create(boost::asio::io_context& io, const std::string& host,
                                                        uint16_t port, HttpHandler handler,
                                                        HttpListenerOptions options = {});
  virtual ~HttpListener() = default;
  virtual uint16_t port() const = 0;
  // Stops accepting; idle keep-alive connections are closed, requests in flight finish and then close.
  virtual void Stop() = 0;
  // Requests received and not yet answered.
  virtual size_t in_flight() const = 0;
  virtual size_t open_connections() const = 0;
};

// Parses "host:port" ("127.0.0.1:8080", "[::1]:80", ":8080" = all interfaces). Port must be 0..65535.
StatusOr<std::pair<std::string, uint16_t>> ParseHostPort(const std::string& s);

}  // namespace bff
