// HttpServer on cpp-httplib 0.11: catch-all routes, a bounded wait on the asynchronous handler, JSON errors.
#include "protocols/http/http_server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <httplib.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include <nlohmann/json.hpp>

#include "common/log.h"
#include "observability/trace_context.h"

namespace bff {
namespace {

// Every path goes to the one handler; routing proper is the API layer's job.
constexpr char kCatchAllPattern[] = ".*";
// Set on answers that came from the handler so the error hook leaves them alone; never sent.
constexpr char kHandlerAnswerMarker[] = "X-Bff-Handler-Answer";
// httplib gzips/brotlis compressible bodies whenever the client accepts it; below this size the
// compressor's set-up costs more than the bytes it saves.
constexpr size_t kMinCompressBytes = 1024;
// Start() waits this long for the listener thread to enter its accept loop.
constexpr std::chrono::seconds kListenerStartTimeout{10};

// httplib's own request annotations, not headers the client sent.
bool IsHttplibPseudoHeader(const std::string& name) {
  return name == "REMOTE_ADDR" || name == "REMOTE_PORT" || name == "LOCAL_ADDR" || name == "LOCAL_PORT";
}

// Headers httplib writes itself from the connection state and the body; a copy from the handler would duplicate them.
bool IsFramingHeader(const std::string& name) {
  return EqualsIgnoreCase(name, "Content-Length") || EqualsIgnoreCase(name, "Connection") ||
         EqualsIgnoreCase(name, "Keep-Alive") || EqualsIgnoreCase(name, "Transfer-Encoding");
}

bool StatusHasNoBody(int status) { return status == 204 || status == 304 || (status >= 100 && status < 200); }

std::string_view CodeForLibraryError(int status) {
  switch (status) {
    case 400: return "bad_request";
    case 404: return "not_found";
    case 413: return "payload_too_large";
    case 414: return "uri_too_long";
    case 416: return "range_not_satisfiable";
    case 500: return "internal";
    default: return "http_error";
  }
}

std::string ErrorBody(std::string_view code, std::string_view message, const std::string& trace_id) {
  nlohmann::json body = {{"error", {{"code", code}, {"message", message}, {"trace_id", trace_id}}}};
  return body.dump();
}

// An error this adapter answers by itself, in the form and with the headers every answer carries.
HttpResponse GeneratedError(const httplib::Request& req, int status, std::string_view code, const std::string& message,
                            std::chrono::steady_clock::time_point started) {
  // Headers are empty when the request line itself was malformed; a new trace starts then.
  auto trace = TraceContext::AcceptOrCreate(req.get_header_value("traceparent"));
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
  HttpResponse r = HttpResponse::Json(status, ErrorBody(code, message, trace.trace_id));
  r.headers.Set("traceparent", trace.ToTraceparent());
  r.headers.Set("Server-Timing", "total;dur=" + std::to_string(ms));
  return r;
}

HttpRequest ToBffRequest(const httplib::Request& req) {
  HttpRequest out;
  out.method = req.method;
  out.path = req.path;  // httplib has already percent-decoded it
  // The raw query as the client sent it: req.params is decoded and reordered, req.target is not.
  if (auto q = req.target.find('?'); q != std::string::npos) {
    out.query = req.target.substr(q + 1);
    if (auto hash = out.query.find('#'); hash != std::string::npos) out.query.resize(hash);
  }
  for (const auto& [name, value] : req.headers) {
    if (!IsHttplibPseudoHeader(name)) out.headers.Add(name, value);
  }
  out.body = req.body;
  return out;
}

void ToHttplibResponse(HttpResponse answer, httplib::Response& res) {
  res.status = answer.status;
  std::string content_type;
  for (auto& [name, value] : answer.headers) {
    if (EqualsIgnoreCase(name, "Content-Type")) {
      content_type = value;
    } else if (!IsFramingHeader(name)) {
      res.set_header(name, value);
    }
  }
  if (StatusHasNoBody(answer.status) || answer.body.empty()) {
    if (!content_type.empty()) res.set_header("Content-Type", content_type);
    return;
  }
  res.set_header("Content-Type", content_type.empty() ? "application/octet-stream" : content_type);
  res.body = std::move(answer.body);
}

// One handed-off request: the handler's answer, whenever and from whichever thread it comes.
class PendingAnswer {
 public:
  void Deliver(HttpResponse response) {
    {
      std::lock_guard lock(mu_);
      if (answer_) return;  // the handler answers once; a second answer is a bug we survive
      answer_ = std::move(response);
    }
    cv_.notify_one();
  }

  std::optional<HttpResponse> WaitFor(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return answer_.has_value(); });
    return std::move(answer_);
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<HttpResponse> answer_;
};

// httplib keeps the listening socket in a protected member and has no getter in 0.11; a subclass that adds
// only an accessor is the one way to reach it without scanning descriptors or re-implementing bind.
class ListeningServer final : public httplib::Server {
 public:
  int listening_socket() const { return svr_sock_; }
  // For a socket bound but never handed to listen_after_bind(): stop() would not close it.
  void CloseUnstarted() {
    int fd = svr_sock_.exchange(INVALID_SOCKET);
    if (fd != INVALID_SOCKET) ::close(fd);
  }
};

// httplib's pool with counts of what waits and what runs: a worker holds a keep-alive connection for its
// lifetime, so connections past the pool size wait in its queue, which is what an operator must see.
class CountingThreadPool final : public httplib::TaskQueue {
 public:
  CountingThreadPool(size_t threads, std::atomic<size_t>& queued, std::atomic<size_t>& busy)
      : pool_(threads), queued_(queued), busy_(busy) {}

  void enqueue(std::function<void()> fn) override {
    queued_.fetch_add(1, std::memory_order_relaxed);
    pool_.enqueue([this, fn = std::move(fn)] {
      queued_.fetch_sub(1, std::memory_order_relaxed);
      busy_.fetch_add(1, std::memory_order_relaxed);
      fn();
      busy_.fetch_sub(1, std::memory_order_relaxed);
    });
  }
  void shutdown() override { pool_.shutdown(); }

 private:
  httplib::ThreadPool pool_;
  std::atomic<size_t>& queued_;
  std::atomic<size_t>& busy_;
};

class HttplibServer final : public HttpServer {
 public:
  HttplibServer(HttpServerOptions options, HttpAsyncHandler handler)
      : options_(std::move(options)), handler_(std::move(handler)) {}
  ~HttplibServer() override { Stop(); }

  Status Listen();

  uint16_t port() const override { return port_; }
  size_t in_flight() const override { return in_flight_.load(); }
  uint64_t handler_timeouts() const override { return handler_timeouts_.load(); }
  size_t queued_connections() const override { return queued_.load(std::memory_order_relaxed); }
  size_t busy_workers() const override { return busy_.load(std::memory_order_relaxed); }

  void Stop() override {
    std::lock_guard lock(stop_mu_);
    if (stopped_) return;
    stopped_ = true;
    // stop() closes the listening socket; the accept loop then shuts the pool down, which lets each worker
    // finish the request it holds before its keep-alive loop sees the closed socket and ends.
    server_.stop();
    if (listener_.joinable()) listener_.join();
  }

 private:
  void Configure();
  void HandleRouted(const httplib::Request& req, httplib::Response& res);
  void RenderLibraryError(const httplib::Request& req, httplib::Response& res) const;
  static void FinishHeaders(const httplib::Request& req, httplib::Response& res);

  const HttpServerOptions options_;
  const HttpAsyncHandler handler_;
  ListeningServer server_;
  std::thread listener_;
  uint16_t port_ = 0;
  std::atomic<size_t> in_flight_{0};
  std::atomic<uint64_t> handler_timeouts_{0};
  std::atomic<size_t> queued_{0};
  std::atomic<size_t> busy_{0};
  std::promise<void> accepting_;
  std::once_flag accepting_once_;
  std::mutex stop_mu_;
  bool stopped_ = false;
};

void HttplibServer::Configure() {
  // Nagle's algorithm meets the client's delayed ACK on every keep-alive response: ~44 ms a request.
  server_.set_tcp_nodelay(true);
  // httplib's default sets SO_REUSEPORT, so a second daemon on the same port would start silently and
  // take half the connections. SO_REUSEADDR alone still allows a restart over TIME_WAIT sockets.
  server_.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  const size_t threads = options_.threads;
  server_.new_task_queue = [this, threads]() -> httplib::TaskQueue* {
    // httplib calls this once, from listen_after_bind(), after it marks itself running and before it
    // accepts: from here on stop() is effective.
    std::call_once(accepting_once_, [this] { accepting_.set_value(); });
    return new CountingThreadPool(threads, queued_, busy_);
  };
  server_.set_keep_alive_timeout(options_.keep_alive_timeout_s);
  server_.set_keep_alive_max_count(options_.keep_alive_max_requests);
  server_.set_read_timeout(std::chrono::milliseconds(options_.read_timeout_ms));
  server_.set_write_timeout(std::chrono::milliseconds(options_.write_timeout_ms));
  server_.set_payload_max_length(options_.max_body_bytes);

  auto route = [this](const httplib::Request& req, httplib::Response& res) { HandleRouted(req, res); };
  // HEAD requests reach the GET route with their own method; httplib drops the body on the wire.
  server_.Get(kCatchAllPattern, route);
  server_.Post(kCatchAllPattern, route);
  server_.Put(kCatchAllPattern, route);
  server_.Patch(kCatchAllPattern, route);
  server_.Delete(kCatchAllPattern, route);
  server_.Options(kCatchAllPattern, route);

  // httplib runs this for every answer with status >= 400, the handler's included (those carry the marker).
  server_.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req, httplib::Response& res) {
    if (!res.has_header(kHandlerAnswerMarker)) RenderLibraryError(req, res);
    // "Unhandled" keeps httplib from applying Range headers and compression to the error body.
    return httplib::Server::HandlerResponse::Unhandled;
  }));
  server_.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    // The error hook turns this into the JSON error; httplib's default would echo the exception text.
    res = httplib::Response();
    res.status = 500;
  });
  server_.set_post_routing_handler([](const httplib::Request& req, httplib::Response& res) { FinishHeaders(req, res); });
}

void HttplibServer::HandleRouted(const httplib::Request& req, httplib::Response& res) {
  const auto started = std::chrono::steady_clock::now();
  auto pending = std::make_shared<PendingAnswer>();
  std::optional<HttpResponse> answer;
  in_flight_.fetch_add(1);
  try {
    handler_(ToBffRequest(req), [pending](HttpResponse r) { pending->Deliver(std::move(r)); });
    answer = pending->WaitFor(options_.handler_timeout);
    if (!answer) {
      // The handler may still answer later: `pending` outlives this call and the late answer is dropped.
      handler_timeouts_.fetch_add(1);
      answer = GeneratedError(req, 504, "deadline_exceeded", "the request took too long", started);
      log::Warn("http handler did not answer in time",
                {{"method", req.method}, {"path", req.path}, {"timeout_ms", options_.handler_timeout.count()}});
    }
  } catch (const std::exception& e) {
    log::Error("http handler threw", {{"method", req.method}, {"path", req.path}, {"what", e.what()}});
    answer = GeneratedError(req, 500, "internal", "internal error", started);
  } catch (...) {
    log::Error("http handler threw", {{"method", req.method}, {"path", req.path}});
    answer = GeneratedError(req, 500, "internal", "internal error", started);
  }
  in_flight_.fetch_sub(1);

  // process_request() owns `req` as a non-const local and hands it to routes by const reference, so
  // adjusting it here is well defined. Range requests make no sense on these APIs and httplib would slice
  // the body while keeping our status; small bodies are not worth compressing.
  auto& owned = const_cast<httplib::Request&>(req);
  owned.ranges.clear();
  if (answer->body.size() < kMinCompressBytes) owned.headers.erase("Accept-Encoding");

  ToHttplibResponse(std::move(*answer), res);
  res.set_header(kHandlerAnswerMarker, "1");
}

void HttplibServer::RenderLibraryError(const httplib::Request& req, httplib::Response& res) const {
  std::string_view code = CodeForLibraryError(res.status);
  std::string message(HttpReason(res.status));
  if (res.status == 413) message = "request body larger than " + std::to_string(options_.max_body_bytes) + " bytes";
  // Nothing ran for these requests: the duration is reported as zero rather than measured.
  HttpResponse answer = GeneratedError(req, res.status, code, message, std::chrono::steady_clock::now());
  log::Debug("http request refused by the server", {{"status", res.status}, {"code", code}});
  res.headers.clear();
  ToHttplibResponse(std::move(answer), res);
  // httplib sizes bodies only on its routed path; without this the client would read until the
  // keep-alive timeout closed the connection.
  res.set_header("Content-Length", std::to_string(res.body.size()));
}

void HttplibServer::FinishHeaders(const httplib::Request&, httplib::Response& res) {
  res.headers.erase(kHandlerAnswerMarker);
  // No byte ranges are served, whatever httplib announces for HEAD.
  res.headers.erase("Accept-Ranges");
  // httplib adds "Content-Length: 0" to every empty answer; 204 must not carry it and on 304 it would
  // claim a zero-length representation.
  if (StatusHasNoBody(res.status)) {
    res.headers.erase("Content-Length");
  } else if (res.get_header_value_count("Content-Length") > 1) {
    // An error rendered on httplib's routed path (a throwing route) is sized twice, by us and by httplib.
    res.headers.erase("Content-Length");
    res.set_header("Content-Length", std::to_string(res.body.size()));
  }
  // A compressed representation differs from the identity one: shared caches must key on the encoding.
  if (res.has_header("Content-Encoding")) {
    bool varies = false;
    for (auto [it, end] = res.headers.equal_range("Vary"); it != end; ++it) {
      std::string v = it->second;
      for (auto& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (v.find("accept-encoding") != std::string::npos) varies = true;
    }
    if (!varies) res.set_header("Vary", "Accept-Encoding");
  }
}

Status HttplibServer::Listen() {
  Configure();
  const std::string where = options_.host + ":" + std::to_string(options_.port);
  errno = 0;
  int bound = -1;
  if (options_.port == 0) {
    bound = server_.bind_to_any_port(options_.host);
  } else if (server_.bind_to_port(options_.host, options_.port)) {
    bound = options_.port;
  }
  if (bound <= 0) {
    std::string reason = errno != 0 ? std::strerror(errno) : "cannot bind";
    return Unavailable("cannot listen on " + where + ": " + reason);
  }
  port_ = static_cast<uint16_t>(bound);

  // Debian's compiled httplib listens with a backlog of 5: a burst of clients connecting at once
  // overflows it and waits for SYN retransmits. Calling listen() again on a listening socket only
  // updates its backlog (capped by net.core.somaxconn).
  if (::listen(server_.listening_socket(), options_.listen_backlog) != 0) {
    server_.CloseUnstarted();
    return Internal("cannot raise the listen backlog on " + where + ": " + std::strerror(errno));
  }

  std::future<void> accepting = accepting_.get_future();
  listener_ = std::thread([this] {
    if (!server_.listen_after_bind()) log::Error("http listener stopped on an accept error", {{"port", port_}});
    std::call_once(accepting_once_, [this] { accepting_.set_value(); });
  });
  // Until the accept loop runs, httplib's stop() is a no-op; waiting here makes Stop() right after
  // Start() reliable.
  if (accepting.wait_for(kListenerStartTimeout) != std::future_status::ready) {
    return Internal("http listener on " + where + " did not start");
  }
  return Status::Ok();
}

}  // namespace

StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(HttpServerOptions options, HttpAsyncHandler handler) {
  if (!handler) return InvalidArgument("http server needs a handler");
  if (options.threads == 0) return InvalidArgument("http server threads must be at least 1");
  if (options.max_body_bytes == 0) return InvalidArgument("http server max_body_bytes must be at least 1");
  if (options.listen_backlog <= 0) return InvalidArgument("http server listen_backlog must be positive");
  if (options.keep_alive_max_requests == 0) return InvalidArgument("http server keep_alive_max_requests must be at least 1");
  if (options.handler_timeout.count() <= 0) return InvalidArgument("http server handler_timeout must be positive");

  auto server = std::make_unique<HttplibServer>(std::move(options), std::move(handler));
  if (Status s = server->Listen(); !s.ok()) return s;
  log::Info("http server listening", {{"port", server->port()}});
  return std::unique_ptr<HttpServer>(std::move(server));
}

}  // namespace bff
