// Asynchronous HTTP/1.1 server on Boost.Beast: acceptor, per-connection sessions on strands, host:port parsing.
#include "server/http_listener.h"

#include <algorithm>
#include <cctype>
#include <exception>
#include <limits>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "common/log.h"

namespace bff {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

// Bytes asked for when waiting for the first byte of a request; the parser asks for more as it needs.
constexpr size_t kFirstReadBytes = 4096;
// After an error answer the peer may still be sending (an oversized body, say). Reading and discarding
// for a bounded time before closing keeps the kernel from resetting the connection, which could destroy
// the error answer before the client reads it.
constexpr auto kLingerTimeout = std::chrono::seconds(2);
constexpr size_t kLingerMaxBytes = 1 << 20;
constexpr size_t kLingerChunkBytes = 16 * 1024;
// An accept error such as running out of descriptors is retried after a pause instead of in a busy loop.
constexpr auto kAcceptRetryDelay = std::chrono::milliseconds(100);
constexpr std::string_view kContinueResponse = "HTTP/1.1 100 Continue\r\n\r\n";
constexpr unsigned kMinStatus = 100;
constexpr unsigned kMaxStatus = 999;

bool IsHttpParseError(const beast::error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_target).category();
}

std::string ErrorBody(std::string_view code, std::string_view message) {
  nlohmann::json j;
  j["error"] = {{"code", code}, {"message", message}};
  return j.dump();
}

// Header text that would break the response framing is dropped.
bool SafeHeaderText(std::string_view s) {
  return std::none_of(s.begin(), s.end(), [](char c) { return c == '\r' || c == '\n' || c == '\0'; });
}

// Framing headers are computed here, never taken from a handler.
bool IsFramingHeader(std::string_view name) {
  return EqualsIgnoreCase(name, "Content-Length") || EqualsIgnoreCase(name, "Transfer-Encoding") ||
         EqualsIgnoreCase(name, "Connection") || EqualsIgnoreCase(name, "Keep-Alive");
}

class Session;

class ListenerImpl final : public HttpListener {
 public:
  ListenerImpl(net::io_context& io, HttpHandler handler, HttpListenerOptions options)
      : io_(io), acceptor_(io), accept_retry_timer_(io), handler_(std::move(handler)), options_(options) {}

  Status Open(const tcp::endpoint& endpoint);
  void StartAccepting() {
    std::lock_guard<std::mutex> lock(accept_mu_);
    DoAcceptLocked();
  }

  uint16_t port() const override { return port_; }
  void Stop() override;
  size_t in_flight() const override { return in_flight_.load(); }
  size_t open_connections() const override { return open_.load(); }

  bool stopped() const { return stopped_.load(); }
  const HttpListenerOptions& options() const { return options_; }
  const HttpHandler& handler() const { return handler_; }
  void RequestStarted() { ++in_flight_; }
  void RequestFinished() { --in_flight_; }
  uint64_t Register(const std::shared_ptr<Session>& s);
  void SessionEnded(uint64_t id);

 private:
  std::shared_ptr<ListenerImpl> self() { return std::static_pointer_cast<ListenerImpl>(shared_from_this()); }
  void DoAcceptLocked();
  void OnAccept(beast::error_code ec, tcp::socket socket);

  net::io_context& io_;
  // Guards the acceptor object: Stop() closes it from any thread while accepts are started from handlers.
  std::mutex accept_mu_;
  tcp::acceptor acceptor_;
  net::steady_timer accept_retry_timer_;  // guarded by accept_mu_
  bool accept_paused_ = false;            // at max_connections; guarded by accept_mu_
  HttpHandler handler_;
  HttpListenerOptions options_;
  uint16_t port_ = 0;
  std::atomic<bool> stopped_{false};
  std::atomic<size_t> in_flight_{0};
  std::atomic<size_t> open_{0};

  std::mutex sessions_mu_;
  uint64_t next_session_id_ = 1;
  std::unordered_map<uint64_t, std::weak_ptr<Session>> sessions_;
};

// One accepted connection. Every member is touched only on the session's strand; the pending operation
// (or the respond callback while a handler works) keeps the session alive.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<ListenerImpl> owner)
      : executor_(socket.get_executor()), stream_(std::move(socket)), owner_(std::move(owner)) {}
  ~Session() {
    if (id_ != 0) owner_->SessionEnded(id_);
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // The session's strand; never changes, so any thread may post to it.
  const net::any_io_executor& executor() const { return executor_; }

  void Start() {
    id_ = owner_->Register(shared_from_this());
    net::post(executor(), [self = shared_from_this()] { self->ReadNext(); });
  }

  // After Stop(): a connection waiting between requests is closed now; one in the middle of a request
  // finishes it and closes after the answer.
  void OnStop() {
    if (state_ == State::kIdle) CloseNow();
  }

  // The handler's answer, on the strand.
  void Deliver(HttpResponse res);

 private:
  enum class State { kIdle, kReading, kHandling, kWriting, kClosed };

  const HttpListenerOptions& options() const { return owner_->options(); }

  void ReadNext();
  void OnFirstBytes(beast::error_code ec, size_t n);
  void ReadHeader();
  void OnHeader(beast::error_code ec);
  void ReadBody();
  void OnRequest(beast::error_code ec);
  // Answers or closes after a failed read.
  void HandleReadError(beast::error_code ec);
  void Dispatch();
  void SendError(http::status status, std::string_view code, std::string_view message);
  void Write(bool counted);
  void OnWrite(bool counted, beast::error_code ec);
  void CloseNow();
  void Linger();

  const net::any_io_executor executor_;
  beast::tcp_stream stream_;
  std::shared_ptr<ListenerImpl> owner_;
  uint64_t id_ = 0;
  State state_ = State::kIdle;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> res_;
  unsigned request_version_ = 11;
  bool request_keep_alive_ = false;
  bool request_is_head_ = false;
  bool close_after_write_ = false;
  bool error_close_ = false;
  size_t lingered_bytes_ = 0;
};

// Shared by every copy of one respond callback: answers once, and answers 500 when every copy is dropped
// unanswered, so a buggy handler cannot hold a connection forever.
class Responder {
 public:
  explicit Responder(std::shared_ptr<Session> session) : session_(std::move(session)) {}
  ~Responder() {
    if (answered_.exchange(true)) return;
    log::Error("http handler dropped its respond callback without answering");
    Post(HttpResponse::Json(500, ErrorBody("internal", "the request was not answered")));
  }
  Responder(const Responder&) = delete;
  Responder& operator=(const Responder&) = delete;

  void Respond(HttpResponse res) {
    if (answered_.exchange(true)) {
      log::Warn("http handler answered a request more than once; extra answer ignored");
      return;
    }
    Post(std::move(res));
  }

 private:
  void Post(HttpResponse res) {
    // Posting after the io_context shut down destroys the task, and with it the session.
    net::post(session_->executor(),
              [session = session_, res = std::move(res)]() mutable { session->Deliver(std::move(res)); });
  }

  std::shared_ptr<Session> session_;
  std::atomic<bool> answered_{false};
};

// ---- Session ----

void Session::ReadNext() {
  if (owner_->stopped()) {
    CloseNow();
    return;
  }
  parser_.emplace();
  parser_->body_limit(options().max_body_bytes);
  parser_->header_limit(static_cast<std::uint32_t>(
      std::min<size_t>(options().max_header_bytes, std::numeric_limits<std::uint32_t>::max())));
  if (buffer_.size() > 0) {
    ReadHeader();
    return;
  }
  // Between requests only the idle limit applies; the read limit starts with the first byte.
  state_ = State::kIdle;
  stream_.expires_after(std::chrono::milliseconds(options().idle_timeout_ms));
  stream_.async_read_some(buffer_.prepare(kFirstReadBytes),
                          [self = shared_from_this()](beast::error_code ec, size_t n) { self->OnFirstBytes(ec, n); });
}

void Session::OnFirstBytes(beast::error_code ec, size_t n) {
  if (ec) {
    // Idle timeout, the client closing, or Stop(): nothing was asked, nothing to answer.
    CloseNow();
    return;
  }
  buffer_.commit(n);
  ReadHeader();
}

void Session::ReadHeader() {
  state_ = State::kReading;
  stream_.expires_after(std::chrono::milliseconds(options().read_timeout_ms));
  http::async_read_header(stream_, buffer_, *parser_,
                          [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
}

void Session::OnHeader(beast::error_code ec) {
  if (ec) {
    HandleReadError(ec);
    return;
  }
  const auto& req = parser_->get();
  // Clients such as curl wait for this before sending a large body.
  if (req.version() >= 11 && EqualsIgnoreCase(req[http::field::expect], "100-continue") && !parser_->is_done()) {
    net::async_write(stream_, net::buffer(kContinueResponse.data(), kContinueResponse.size()),
                     [self = shared_from_this()](beast::error_code wec, size_t) {
                       if (wec) {
                         self->CloseNow();
                         return;
                       }
                       self->ReadBody();
                     });
    return;
  }
  ReadBody();
}

void Session::ReadBody() {
  http::async_read(stream_, buffer_, *parser_,
                   [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRequest(ec); });
}

void Session::OnRequest(beast::error_code ec) {
  if (ec) {
    HandleReadError(ec);
    return;
  }
  Dispatch();
}

void Session::HandleReadError(beast::error_code ec) {
  if (ec == http::error::body_limit) {
    SendError(http::status::payload_too_large, "payload_too_large",
              "request body exceeds " + std::to_string(options().max_body_bytes) + " bytes");
  } else if (ec == http::error::header_limit) {
    SendError(http::status::request_header_fields_too_large, "header_too_large",
              "request header exceeds " + std::to_string(options().max_header_bytes) + " bytes");
  } else if (ec != http::error::partial_message && ec != http::error::end_of_stream && IsHttpParseError(ec)) {
    SendError(http::status::bad_request, "bad_request", "malformed HTTP request");
  } else {
    // Timeout, reset, or the client went away mid-request: there is nobody to answer.
    if (ec != http::error::end_of_stream && ec != net::error::operation_aborted) {
      log::Debug("http connection closed while reading a request", {{"error", ec.message()}});
    }
    CloseNow();
  }
}

void Session::Dispatch() {
  auto& msg = parser_->get();
  request_version_ = msg.version();
  request_keep_alive_ = msg.keep_alive();
  request_is_head_ = msg.method() == http::verb::head;

  HttpRequest req;
  req.method = std::string(msg.method_string());
  std::string_view target = msg.target();
  size_t q = target.find('?');
  req.path = PercentDecode(target.substr(0, q), /*plus_as_space=*/false);
  if (q != std::string_view::npos) req.query = std::string(target.substr(q + 1));
  for (const auto& field : msg) req.headers.Add(std::string(field.name_string()), std::string(field.value()));
  req.body = std::move(msg.body());
  parser_.reset();

  state_ = State::kHandling;
  owner_->RequestStarted();
  auto responder = std::make_shared<Responder>(shared_from_this());
  std::function<void(HttpResponse)> respond = [responder](HttpResponse res) { responder->Respond(std::move(res)); };
  responder.reset();
  try {
    owner_->handler()(std::move(req), std::move(respond));
  } catch (const std::exception& e) {
    // The respond callback, if dropped by the unwinding, answers 500 from its guard.
    log::Error("http handler threw", {{"error", e.what()}});
  } catch (...) {
    log::Error("http handler threw a non-standard exception");
  }
}

void Session::Deliver(HttpResponse res) {
  if (state_ != State::kHandling) {
    owner_->RequestFinished();
    return;
  }
  res_ = {};
  res_.version(request_version_);
  unsigned status = res.status >= static_cast<int>(kMinStatus) && res.status <= static_cast<int>(kMaxStatus)
                        ? static_cast<unsigned>(res.status)
                        : 500u;
  res_.result(status);
  if (http::int_to_status(status) == http::status::unknown) res_.reason(HttpReason(static_cast<int>(status)));
  for (const auto& [name, value] : res.headers) {
    if (IsFramingHeader(name)) continue;
    if (name.empty() || !SafeHeaderText(name) || !SafeHeaderText(value)) {
      log::Warn("http handler set an invalid header; dropped", {{"header", name}});
      continue;
    }
    res_.insert(name, value);
  }
  bool bodyless_status = status < 200 || status == 204 || status == 304;
  if (bodyless_status) {
    // These answers carry no body and no length.
  } else if (request_is_head_) {
    // HEAD announces the length of the body GET would have returned.
    std::string_view given = res.headers.Get("Content-Length");
    if (!res.body.empty() || given.empty()) {
      res_.content_length(res.body.size());
    } else {
      res_.set(http::field::content_length, given);
    }
  } else {
    res_.body() = std::move(res.body);
    res_.content_length(res_.body().size());
  }
  close_after_write_ = !request_keep_alive_ || owner_->stopped();
  res_.keep_alive(!close_after_write_);
  Write(/*counted=*/true);
}

void Session::SendError(http::status status, std::string_view code, std::string_view message) {
  res_ = {};
  res_.version(11);
  res_.result(status);
  res_.set(http::field::content_type, "application/json");
  res_.body() = ErrorBody(code, message);
  res_.content_length(res_.body().size());
  res_.keep_alive(false);
  close_after_write_ = true;
  error_close_ = true;
  parser_.reset();
  Write(/*counted=*/false);
}

void Session::Write(bool counted) {
  state_ = State::kWriting;
  stream_.expires_after(std::chrono::milliseconds(options().read_timeout_ms));
  http::async_write(stream_, res_, [self = shared_from_this(), counted](beast::error_code ec, size_t) {
    self->OnWrite(counted, ec);
  });
}

void Session::OnWrite(bool counted, beast::error_code ec) {
  if (counted) owner_->RequestFinished();
  res_ = {};
  if (ec) {
    log::Debug("http response write failed", {{"error", ec.message()}});
    CloseNow();
    return;
  }
  if (close_after_write_) {
    if (error_close_) {
      Linger();
    } else {
      CloseNow();
    }
    return;
  }
  ReadNext();
}

void Session::CloseNow() {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  beast::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  stream_.close();
}

void Session::Linger() {
  if (state_ != State::kClosed && lingered_bytes_ == 0) {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.expires_after(kLingerTimeout);
    buffer_.consume(buffer_.size());
  }
  state_ = State::kClosed;
  stream_.async_read_some(buffer_.prepare(kLingerChunkBytes), [self = shared_from_this()](beast::error_code ec, size_t n) {
    self->lingered_bytes_ += n;
    self->buffer_.consume(self->buffer_.size());
    if (ec || self->lingered_bytes_ >= kLingerMaxBytes) {
      self->stream_.close();
      return;
    }
    self->Linger();
  });
}

// ---- ListenerImpl ----

Status ListenerImpl::Open(const tcp::endpoint& endpoint) {
  beast::error_code ec;
  auto fail = [&](std::string_view what) {
    return Unavailable("cannot " + std::string(what) + " " + endpoint.address().to_string() + ":" +
                       std::to_string(endpoint.port()) + ": " + ec.message());
  };
  acceptor_.open(endpoint.protocol(), ec);
  if (ec) return fail("open a socket for");
  // SO_REUSEADDR only: SO_REUSEPORT would let a second process share the port silently.
  acceptor_.set_option(net::socket_base::reuse_address(true), ec);
  if (ec) return fail("set SO_REUSEADDR on");
  acceptor_.bind(endpoint, ec);
  if (ec) return fail("bind");
  acceptor_.listen(options_.backlog, ec);
  if (ec) return fail("listen on");
  tcp::endpoint local = acceptor_.local_endpoint(ec);
  if (ec) return fail("read the port of");
  port_ = local.port();
  return Status::Ok();
}

void ListenerImpl::DoAcceptLocked() {
  if (stopped_ || !acceptor_.is_open()) return;
  if (open_.load() >= options_.max_connections) {
    accept_paused_ = true;
    return;
  }
  accept_paused_ = false;
  // Each connection gets its own strand, so its handlers never run concurrently.
  acceptor_.async_accept(net::make_strand(io_), [self = self()](beast::error_code ec, tcp::socket socket) {
    self->OnAccept(ec, std::move(socket));
  });
}

void ListenerImpl::OnAccept(beast::error_code ec, tcp::socket socket) {
  if (ec == net::error::operation_aborted || stopped_) {
    beast::error_code ignored;
    socket.close(ignored);
    return;
  }
  if (ec) {
    // Out of descriptors and similar: keep serving the connections already open and try again later.
    log::Warn("http accept failed", {{"error", ec.message()}, {"port", port_}});
    std::lock_guard<std::mutex> lock(accept_mu_);
    if (stopped_) return;
    accept_retry_timer_.expires_after(kAcceptRetryDelay);
    accept_retry_timer_.async_wait([self = self()](const beast::error_code& wait_ec) {
      if (wait_ec) return;
      std::lock_guard<std::mutex> retry_lock(self->accept_mu_);
      self->DoAcceptLocked();
    });
    return;
  }
  beast::error_code opt_ec;
  socket.set_option(tcp::no_delay(true), opt_ec);
  ++open_;
  auto session = std::make_shared<Session>(std::move(socket), self());
  session->Start();
  std::lock_guard<std::mutex> lock(accept_mu_);
  DoAcceptLocked();
}

uint64_t ListenerImpl::Register(const std::shared_ptr<Session>& s) {
  std::lock_guard<std::mutex> lock(sessions_mu_);
  uint64_t id = next_session_id_++;
  sessions_.emplace(id, s);
  return id;
}

void ListenerImpl::SessionEnded(uint64_t id) {
  {
    std::lock_guard<std::mutex> lock(sessions_mu_);
    sessions_.erase(id);
  }
  --open_;
  std::lock_guard<std::mutex> lock(accept_mu_);
  if (accept_paused_) DoAcceptLocked();
}

void ListenerImpl::Stop() {
  if (stopped_.exchange(true)) return;
  {
    std::lock_guard<std::mutex> lock(accept_mu_);
    beast::error_code ec;
    acceptor_.close(ec);
    accept_retry_timer_.cancel();
    accept_paused_ = false;
  }
  std::vector<std::shared_ptr<Session>> live;
  {
    std::lock_guard<std::mutex> lock(sessions_mu_);
    for (auto& [id, weak] : sessions_) {
      if (auto s = weak.lock()) live.push_back(std::move(s));
    }
  }
  for (auto& s : live) net::post(s->executor(), [s] { s->OnStop(); });
}

bool ValidHostName(std::string_view host) {
  return std::all_of(host.begin(), host.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
  });
}

}  // namespace

StatusOr<std::shared_ptr<HttpListener>> HttpListener::Create(boost::asio::io_context& io, const std::string& host,
                                                            uint16_t port, HttpHandler handler,
                                                            HttpListenerOptions options) {
  if (!handler) return InvalidArgument("http listener needs a handler");
  if (options.max_connections == 0) return InvalidArgument("http listener max_connections must be at least 1");
  if (options.idle_timeout_ms <= 0 || options.read_timeout_ms <= 0) {
    return InvalidArgument("http listener timeouts must be positive");
  }
  if (options.backlog <= 0) return InvalidArgument("http listener backlog must be positive");

  std::string bind_host = host.empty() ? "0.0.0.0" : host;
  beast::error_code ec;
  net::ip::address address = net::ip::make_address(bind_host, ec);
  if (ec) {
    // A name such as "localhost": resolved once, at start-up.
    tcp::resolver resolver(io);
    auto results = resolver.resolve(bind_host, std::to_string(port), ec);
    if (ec || results.empty()) {
      return InvalidArgument("cannot resolve listen address '" + bind_host + "': " +
                             (ec ? ec.message() : std::string("no addresses")));
    }
    address = results.begin()->endpoint().address();
  }

  auto listener = std::make_shared<ListenerImpl>(io, std::move(handler), options);
  Status st = listener->Open(tcp::endpoint(address, port));
  if (!st.ok()) return st;
  listener->StartAccepting();
  return std::shared_ptr<HttpListener>(std::move(listener));
}

StatusOr<std::pair<std::string, uint16_t>> ParseHostPort(const std::string& s) {
  auto bad = [&](std::string_view why) {
    return InvalidArgument("invalid address '" + s + "': " + std::string(why) + " (expected HOST:PORT)");
  };
  std::string host;
  std::string_view port_text;
  if (!s.empty() && s[0] == '[') {
    size_t close = s.find(']');
    if (close == std::string::npos) return bad("missing ']'");
    host = s.substr(1, close - 1);
    if (close + 1 >= s.size() || s[close + 1] != ':') return bad("missing ':PORT' after ']'");
    port_text = std::string_view(s).substr(close + 2);
    beast::error_code ec;
    net::ip::make_address_v6(host, ec);
    if (ec) return bad("not an IPv6 address in brackets");
  } else {
    size_t colon = s.rfind(':');
    if (colon == std::string::npos) return bad("missing ':PORT'");
    host = s.substr(0, colon);
    port_text = std::string_view(s).substr(colon + 1);
    if (host.find(':') != std::string::npos) return bad("IPv6 addresses go in brackets");
    if (!ValidHostName(host)) return bad("bad character in host");
    if (host.empty()) host = "0.0.0.0";
  }
  if (port_text.empty() || port_text.size() > 5) return bad("port must be 0..65535");
  unsigned port = 0;
  for (char c : port_text) {
    if (c < '0' || c > '9') return bad("port must be a number");
    port = port * 10 + static_cast<unsigned>(c - '0');
  }
  if (port > 65535) return bad("port must be 0..65535");
  return std::make_pair(host, static_cast<uint16_t>(port));
}

}  // namespace bff
