// HTTP/1.1 downstream transport on Boost.Beast: per-service keep-alive pools, queued callers, deadlines.
#include "downstream/http_transport.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <deque>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "common/log.h"

namespace bff {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

constexpr std::uint32_t kMaxResponseHeaderBytes = 64 * 1024;
constexpr std::string_view kHttpScheme = "http://";
constexpr unsigned kDefaultHttpPort = 80;

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool IsTokenChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool IsToken(std::string_view s) { return !s.empty() && std::all_of(s.begin(), s.end(), IsTokenChar); }

bool SafeHeaderValue(std::string_view s) {
  return std::none_of(s.begin(), s.end(), [](char c) { return c == '\r' || c == '\n' || c == '\0'; });
}

// The request path is decoded; characters that would change its meaning on the wire are encoded again.
std::string EncodePath(std::string_view path) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(path.size());
  for (unsigned char c : path) {
    if (std::isalnum(c) || std::string_view("/-._~!$&'()*+,;=:@").find(static_cast<char>(c)) != std::string_view::npos) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

// The query is passed raw; only bytes that cannot appear in a request line are encoded.
std::string EncodeQuery(std::string_view query) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(query.size());
  for (unsigned char c : query) {
    if (c <= 0x20 || c >= 0x7f || c == '#') {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

// Headers the transport owns: framing and the connection's own identity.
bool IsTransportHeader(std::string_view name) {
  return EqualsIgnoreCase(name, "Host") || EqualsIgnoreCase(name, "Content-Length") ||
         EqualsIgnoreCase(name, "Transfer-Encoding") || EqualsIgnoreCase(name, "Connection") ||
         EqualsIgnoreCase(name, "Keep-Alive");
}

// One downstream call, from Send() to its callback.
struct Call {
  http::request<http::string_body> req;
  bool is_head = false;
  TimePoint deadline;
  ResponseCallback done;
  bool retried = false;  // already moved once to a fresh connection after a stale one failed
  std::atomic<bool> completed{false};
  // Waiting for a connection; both guarded by the pool's mutex.
  bool queued = false;
  std::unique_ptr<net::steady_timer> queue_timer;
};

class Pool;

class Pool;

// What a connection does after its call: wait in the pool, close, or serve a waiting call at once.
struct NextStep {
  enum Kind { kPark, kClose, kServe } kind = kClose;
  uint64_t generation = 0;     // kPark: identifies this stay in the idle list
  std::shared_ptr<Call> call;  // kServe
};

// One keep-alive connection. Its I/O runs on its own strand; pool bookkeeping is under the pool's mutex.
class Conn : public std::enable_shared_from_this<Conn> {
 public:
  Conn(net::io_context& io, std::shared_ptr<Pool> pool)
      : executor_(net::make_strand(io)), stream_(executor_), idle_timer_(executor_), pool_(std::move(pool)) {}

  // The connection's strand; never changes, so any thread may post to it.
  const net::any_io_executor& executor() const { return executor_; }

  // Each runs on the strand.
  void Connect(std::shared_ptr<Call> call);
  void Run(std::shared_ptr<Call> call);
  void Close();

  uint64_t idle_generation_ = 0;  // guarded by the pool's mutex; bumped whenever it leaves the idle list

 private:
  void OnResolved(beast::error_code ec, const tcp::resolver::results_type& results);
  void StartConnect(const std::vector<tcp::endpoint>& endpoints);
  void OnConnected(beast::error_code ec);
  void Exchange();
  void OnWritten(beast::error_code ec);
  void OnRead(beast::error_code ec);
  void Finish(StatusOr<HttpResponse> result, bool reusable);
  void Fail(beast::error_code ec, bool nothing_received, std::string_view stage);
  void FailConnect(Status status);
  void Park(uint64_t generation);

  const net::any_io_executor executor_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::response_parser<http::string_body>> parser_;
  net::steady_timer idle_timer_;  // idle expiry while pooled; resolve guard while connecting
  std::optional<tcp::resolver> resolver_;
  TimePoint connect_until_;
  bool resolve_timed_out_ = false;
  bool connect_limited_by_call_ = false;  // the call's deadline, not connect_timeout, bounds the connect
  bool reused_ = false;                   // completed an exchange before: only then can it be stale
  std::shared_ptr<Pool> pool_;
  std::shared_ptr<Call> call_;
};

// The connections and waiting callers of one service.
class Pool : public std::enable_shared_from_this<Pool> {
 public:
  Pool(net::io_context& io, Service service, ServiceEndpoint endpoint, const HttpTransportOptions& options)
      : io_(io), name_(ServiceName(service)), endpoint_(std::move(endpoint)), options_(options) {
    beast::error_code ec;
    auto address = net::ip::make_address(endpoint_.host, ec);
    if (!ec) numeric_endpoints_.emplace_back(address, static_cast<unsigned short>(std::stoul(endpoint_.port)));
    host_header_ = endpoint_.host.find(':') != std::string::npos ? "[" + endpoint_.host + "]" : endpoint_.host;
    if (endpoint_.port != std::to_string(kDefaultHttpPort)) host_header_ += ":" + endpoint_.port;
  }

  const std::string& name() const { return name_; }
  const ServiceEndpoint& endpoint() const { return endpoint_; }
  const HttpTransportOptions& options() const { return options_; }
  const std::vector<tcp::endpoint>& numeric_endpoints() const { return numeric_endpoints_; }
  const std::string& host_header() const { return host_header_; }

  void Submit(std::shared_ptr<Call> call);
  // The connection finished its call; `reusable` when it may serve another.
  NextStep Release(const std::shared_ptr<Conn>& conn, bool reusable);
  // A busy or connecting connection failed; its slot is free.
  void Closed();
  // A reused connection turned out stale: the call moves to a fresh connection in the same slot.
  void Retry(std::shared_ptr<Call> call) { StartNew(std::move(call)); }
  // True when `conn` was still idle in this generation and has been taken out to be closed.
  bool IdleExpired(const std::shared_ptr<Conn>& conn, uint64_t generation);
  void Shutdown();
  size_t open() const {
    std::lock_guard<std::mutex> lock(mu_);
    return open_;
  }

  // Runs the callback once, never inline in the caller's stack.
  void Complete(const std::shared_ptr<Call>& call, StatusOr<HttpResponse> result);

 private:
  void StartNew(std::shared_ptr<Call> call);
  // Hands a freed slot to the first waiter still within its deadline, if any.
  std::shared_ptr<Call> TakeSlotForWaiterLocked(std::vector<std::shared_ptr<Call>>& expired);
  std::shared_ptr<Call> PopWaiterLocked(std::vector<std::shared_ptr<Call>>& expired);
  void Enqueue(const std::shared_ptr<Call>& call);
  void QueueTimedOut(const std::shared_ptr<Call>& call);
  void FailExpired(const std::vector<std::shared_ptr<Call>>& expired);

  net::io_context& io_;
  std::string name_;
  ServiceEndpoint endpoint_;
  HttpTransportOptions options_;
  std::vector<tcp::endpoint> numeric_endpoints_;  // empty when the host is a name, resolved per connection
  std::string host_header_;

  mutable std::mutex mu_;
  bool shutdown_ = false;
  size_t open_ = 0;                          // connecting + busy + idle
  std::vector<std::shared_ptr<Conn>> idle_;  // most recently used at the back
  std::deque<std::shared_ptr<Call>> waiting_;
};

// ---- Pool ----

void Pool::Complete(const std::shared_ptr<Call>& call, StatusOr<HttpResponse> result) {
  if (call->completed.exchange(true)) {
    log::Error("downstream call completed twice; second result dropped", {{"service", name_}});
    return;
  }
  net::post(io_, [done = std::move(call->done), result = std::move(result)]() mutable { done(std::move(result)); });
}

void Pool::Submit(std::shared_ptr<Call> call) {
  enum { kRejected, kReuse, kOpen } action;
  std::shared_ptr<Conn> conn;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shutdown_) {
      action = kRejected;
    } else if (!idle_.empty()) {
      // LIFO: the most recently used connection is the least likely to have been closed by the server.
      action = kReuse;
      conn = std::move(idle_.back());
      idle_.pop_back();
      ++conn->idle_generation_;
    } else if (open_ < options_.max_connections_per_service) {
      action = kOpen;
      ++open_;
    } else {
      Enqueue(call);
      return;
    }
  }
  switch (action) {
    case kRejected:
      Complete(call, Unavailable(name_ + ": the downstream transport is shut down"));
      break;
    case kReuse:
      net::post(conn->executor(), [conn, call = std::move(call)]() mutable { conn->Run(std::move(call)); });
      break;
    case kOpen:
      StartNew(std::move(call));
      break;
  }
}

void Pool::StartNew(std::shared_ptr<Call> call) {
  auto conn = std::make_shared<Conn>(io_, shared_from_this());
  net::post(conn->executor(), [conn, call = std::move(call)]() mutable { conn->Connect(std::move(call)); });
}

void Pool::Enqueue(const std::shared_ptr<Call>& call) {
  call->queued = true;
  call->queue_timer = std::make_unique<net::steady_timer>(io_, call->deadline);
  // Started and cancelled only under mu_, so the timer object is never used from two threads at once.
  call->queue_timer->async_wait(
      [self = shared_from_this(), call](const beast::error_code&) { self->QueueTimedOut(call); });
  waiting_.push_back(call);
}

void Pool::QueueTimedOut(const std::shared_ptr<Call>& call) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!call->queued) return;  // a connection took it, or Shutdown() failed it
    call->queued = false;
    waiting_.erase(std::find(waiting_.begin(), waiting_.end(), call));
  }
  log::Debug("downstream call timed out waiting for a connection", {{"service", name_}});
  Complete(call, DeadlineExceeded(name_ + ": deadline exceeded waiting for a free connection"));
}

std::shared_ptr<Call> Pool::PopWaiterLocked(std::vector<std::shared_ptr<Call>>& expired) {
  TimePoint now = Clock::now();
  while (!waiting_.empty()) {
    auto call = std::move(waiting_.front());
    waiting_.pop_front();
    call->queued = false;
    call->queue_timer->cancel();
    if (call->deadline <= now) {
      expired.push_back(std::move(call));
      continue;
    }
    return call;
  }
  return nullptr;
}

std::shared_ptr<Call> Pool::TakeSlotForWaiterLocked(std::vector<std::shared_ptr<Call>>& expired) {
  if (shutdown_ || open_ >= options_.max_connections_per_service) return nullptr;
  auto call = PopWaiterLocked(expired);
  if (call) ++open_;
  return call;
}

void Pool::FailExpired(const std::vector<std::shared_ptr<Call>>& expired) {
  for (const auto& call : expired) {
    Complete(call, DeadlineExceeded(name_ + ": deadline exceeded waiting for a free connection"));
  }
}

NextStep Pool::Release(const std::shared_ptr<Conn>& conn, bool reusable) {
  NextStep step;
  std::vector<std::shared_ptr<Call>> expired;
  std::shared_ptr<Call> for_new_conn;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (reusable && !shutdown_) {
      step.call = PopWaiterLocked(expired);
      if (step.call) {
        step.kind = NextStep::kServe;
      } else if (idle_.size() < options_.max_idle_per_service) {
        step.kind = NextStep::kPark;
        step.generation = ++conn->idle_generation_;
        idle_.push_back(conn);
      }
    }
    if (step.kind == NextStep::kClose) {
      --open_;
      for_new_conn = TakeSlotForWaiterLocked(expired);
    }
  }
  FailExpired(expired);
  if (for_new_conn) StartNew(std::move(for_new_conn));
  return step;
}

void Pool::Closed() {
  std::vector<std::shared_ptr<Call>> expired;
  std::shared_ptr<Call> next;
  {
    std::lock_guard<std::mutex> lock(mu_);
    --open_;
    next = TakeSlotForWaiterLocked(expired);
  }
  FailExpired(expired);
  if (next) StartNew(std::move(next));
}

bool Pool::IdleExpired(const std::shared_ptr<Conn>& conn, uint64_t generation) {
  std::vector<std::shared_ptr<Call>> expired;
  std::shared_ptr<Call> next;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (conn->idle_generation_ != generation) return false;
    auto it = std::find(idle_.begin(), idle_.end(), conn);
    if (it == idle_.end()) return false;
    idle_.erase(it);
    ++conn->idle_generation_;
    --open_;
    next = TakeSlotForWaiterLocked(expired);
  }
  FailExpired(expired);
  if (next) StartNew(std::move(next));
  return true;
}

void Pool::Shutdown() {
  std::vector<std::shared_ptr<Conn>> idle;
  std::deque<std::shared_ptr<Call>> waiting;
  {
    std::lock_guard<std::mutex> lock(mu_);
    shutdown_ = true;
    idle.swap(idle_);
    open_ -= idle.size();
    for (auto& conn : idle) ++conn->idle_generation_;
    waiting.swap(waiting_);
    for (auto& call : waiting) {
      call->queued = false;
      call->queue_timer->cancel();
    }
  }
  for (auto& conn : idle) net::post(conn->executor(), [conn] { conn->Close(); });
  for (auto& call : waiting) Complete(call, Unavailable(name_ + ": the downstream transport is shut down"));
}

// ---- Conn ----

void Conn::Connect(std::shared_ptr<Call> call) {
  call_ = std::move(call);
  TimePoint now = Clock::now();
  if (call_->deadline <= now) {
    FailConnect(DeadlineExceeded(pool_->name() + ": deadline exceeded before connecting"));
    return;
  }
  TimePoint limit = now + std::chrono::milliseconds(pool_->options().connect_timeout_ms);
  connect_limited_by_call_ = call_->deadline < limit;
  connect_until_ = std::min(call_->deadline, limit);
  if (!pool_->numeric_endpoints().empty()) {
    StartConnect(pool_->numeric_endpoints());
    return;
  }
  // The resolver has no timeout of its own: the timer cancels it.
  resolver_.emplace(executor());
  resolve_timed_out_ = false;
  idle_timer_.expires_at(connect_until_);
  idle_timer_.async_wait([self = shared_from_this()](const beast::error_code& ec) {
    if (ec || !self->resolver_) return;
    self->resolve_timed_out_ = true;
    self->resolver_->cancel();
  });
  resolver_->async_resolve(pool_->endpoint().host, pool_->endpoint().port,
                           [self = shared_from_this()](beast::error_code ec, tcp::resolver::results_type results) {
                             self->OnResolved(ec, results);
                           });
}

void Conn::OnResolved(beast::error_code ec, const tcp::resolver::results_type& results) {
  idle_timer_.cancel();
  bool timed_out = resolve_timed_out_;
  resolver_.reset();
  if (timed_out) {
    FailConnect(connect_limited_by_call_ ? DeadlineExceeded(pool_->name() + ": deadline exceeded resolving the host")
                                         : Unavailable(pool_->name() + ": resolving the host timed out"));
    return;
  }
  if (ec || results.empty()) {
    FailConnect(Unavailable(pool_->name() + ": cannot resolve host: " +
                            (ec ? ec.message() : std::string("no addresses"))));
    return;
  }
  std::vector<tcp::endpoint> endpoints;
  for (const auto& entry : results) endpoints.push_back(entry.endpoint());
  StartConnect(endpoints);
}

void Conn::StartConnect(const std::vector<tcp::endpoint>& endpoints) {
  stream_.expires_at(connect_until_);
  stream_.async_connect(endpoints, [self = shared_from_this()](beast::error_code ec, const tcp::endpoint&) {
    self->OnConnected(ec);
  });
}

void Conn::OnConnected(beast::error_code ec) {
  if (ec) {
    if (ec == beast::error::timeout) {
      FailConnect(connect_limited_by_call_
                      ? DeadlineExceeded(pool_->name() + ": deadline exceeded while connecting")
                      : Unavailable(pool_->name() + ": connect timed out after " +
                                    std::to_string(pool_->options().connect_timeout_ms) + " ms"));
    } else {
      FailConnect(Unavailable(pool_->name() + ": cannot connect: " + ec.message()));
    }
    return;
  }
  beast::error_code opt_ec;
  stream_.socket().set_option(tcp::no_delay(true), opt_ec);
  Exchange();
}

void Conn::FailConnect(Status status) {
  if (status.code() == StatusCode::kDeadlineExceeded) {
    log::Debug("downstream connect abandoned at the call deadline", {{"service", pool_->name()}});
  } else {
    log::Warn("downstream connect failed", {{"service", pool_->name()}, {"error", status.message()}});
  }
  Close();
  auto call = std::move(call_);
  pool_->Closed();
  pool_->Complete(call, std::move(status));
}

void Conn::Run(std::shared_ptr<Call> call) {
  idle_timer_.cancel();
  call_ = std::move(call);
  Exchange();
}

void Conn::Exchange() {
  if (call_->deadline <= Clock::now()) {
    // The connection itself is fine; only this call is out of time.
    Finish(DeadlineExceeded(pool_->name() + ": deadline exceeded before sending"), /*reusable=*/true);
    return;
  }
  stream_.expires_at(call_->deadline);
  http::async_write(stream_, call_->req,
                    [self = shared_from_this()](beast::error_code ec, size_t) { self->OnWritten(ec); });
}

void Conn::OnWritten(beast::error_code ec) {
  if (ec) {
    Fail(ec, /*nothing_received=*/true, "sending the request");
    return;
  }
  parser_.emplace();
  parser_->body_limit(pool_->options().max_response_bytes);
  parser_->header_limit(kMaxResponseHeaderBytes);
  // A HEAD answer announces a length it does not send.
  if (call_->is_head) parser_->skip(true);
  http::async_read(stream_, buffer_, *parser_,
                   [self = shared_from_this()](beast::error_code rec, size_t) { self->OnRead(rec); });
}

void Conn::OnRead(beast::error_code ec) {
  if (ec) {
    bool nothing_received = !parser_->got_some() && buffer_.size() == 0;
    Fail(ec, nothing_received, "reading the response");
    return;
  }
  auto& msg = parser_->get();
  HttpResponse res;
  res.status = static_cast<int>(msg.result_int());
  for (const auto& field : msg) res.headers.Add(std::string(field.name_string()), std::string(field.value()));
  res.body = std::move(msg.body());
  // Bytes past the response mean the framing cannot be trusted for another exchange.
  bool reusable = parser_->keep_alive() && buffer_.size() == 0;
  parser_.reset();
  Finish(std::move(res), reusable);
}

void Conn::Finish(StatusOr<HttpResponse> result, bool reusable) {
  auto call = std::move(call_);
  if (reusable) reused_ = true;
  NextStep step = pool_->Release(shared_from_this(), reusable);
  pool_->Complete(call, std::move(result));
  switch (step.kind) {
    case NextStep::kPark:
      Park(step.generation);
      break;
    case NextStep::kClose:
      Close();
      break;
    case NextStep::kServe:
      call_ = std::move(step.call);
      Exchange();
      break;
  }
}

void Conn::Park(uint64_t generation) {
  idle_timer_.expires_after(std::chrono::milliseconds(pool_->options().idle_timeout_ms));
  idle_timer_.async_wait([self = shared_from_this(), generation](const beast::error_code& ec) {
    if (ec) return;
    if (self->pool_->IdleExpired(self, generation)) self->Close();
  });
}

void Conn::Fail(beast::error_code ec, bool nothing_received, std::string_view stage) {
  auto call = std::move(call_);
  parser_.reset();
  buffer_.consume(buffer_.size());
  Close();
  // A server may close a keep-alive connection while it sits idle; the request then never reached it,
  // so one retry on a fresh connection is safe whatever the method.
  bool stale = ec == http::error::end_of_stream || ec == net::error::eof || ec == net::error::connection_reset ||
               ec == net::error::broken_pipe;
  if (stale && reused_ && nothing_received && !call->retried) {
    log::Debug("downstream pooled connection was closed by the server; retrying on a new one",
               {{"service", pool_->name()}});
    call->retried = true;
    pool_->Retry(std::move(call));
    return;
  }
  pool_->Closed();
  Status status;
  std::string name = pool_->name();
  if (ec == beast::error::timeout) {
    status = DeadlineExceeded(name + ": deadline exceeded " + std::string(stage));
    log::Debug("downstream call timed out", {{"service", name}});
  } else if (ec == http::error::body_limit) {
    status = Internal(name + ": response body exceeds " + std::to_string(pool_->options().max_response_bytes) +
                      " bytes");
    log::Warn("downstream response too large", {{"service", name}});
  } else {
    status = Unavailable(name + ": connection failed " + std::string(stage) + ": " + ec.message());
    log::Warn("downstream connection failed", {{"service", name}, {"error", ec.message()}});
  }
  pool_->Complete(call, std::move(status));
}

void Conn::Close() {
  idle_timer_.cancel();
  if (resolver_) resolver_->cancel();
  beast::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
  stream_.close();
}

// ---- Transport ----

class HttpTransportImpl final : public HttpTransport {
 public:
  HttpTransportImpl(net::io_context& io, HttpTransportOptions options) : io_(io), options_(options) {}
  ~HttpTransportImpl() override { Shutdown(); }

  Status AddService(Service service, const std::string& base_url) {
    auto endpoint = ParseBaseUrl(base_url);
    if (!endpoint.ok()) {
      return InvalidArgument("base URL for " + std::string(ServiceName(service)) + ": " + endpoint.status().message());
    }
    pools_[service] = std::make_shared<Pool>(io_, service, std::move(endpoint.value()), options_);
    return Status::Ok();
  }

  void Send(Service service, HttpRequest req, TimePoint deadline, ResponseCallback done) override;

  void Shutdown() override {
    for (auto& [service, pool] : pools_) pool->Shutdown();
  }

  size_t open_connections(Service s) const override {
    auto it = pools_.find(s);
    return it == pools_.end() ? 0 : it->second->open();
  }

 private:
  void FailNow(ResponseCallback done, Status status) {
    net::post(io_, [done = std::move(done), status = std::move(status)] { done(status); });
  }

  net::io_context& io_;
  HttpTransportOptions options_;
  std::map<Service, std::shared_ptr<Pool>> pools_;  // fixed after Create(), so read without a lock
};

void HttpTransportImpl::Send(Service service, HttpRequest req, TimePoint deadline, ResponseCallback done) {
  if (!done) return;
  std::string name(ServiceName(service));
  auto it = pools_.find(service);
  if (it == pools_.end()) {
    FailNow(std::move(done), Unavailable(name + ": no base URL configured"));
    return;
  }
  const Pool& pool = *it->second;
  if (deadline <= Clock::now()) {
    FailNow(std::move(done), DeadlineExceeded(name + ": deadline passed before the call started"));
    return;
  }
  if (!IsToken(req.method)) {
    FailNow(std::move(done), InvalidArgument(name + ": invalid HTTP method"));
    return;
  }

  auto call = std::make_shared<Call>();
  call->deadline = deadline;
  call->done = std::move(done);
  auto& msg = call->req;
  msg.version(11);
  msg.method_string(req.method);
  call->is_head = msg.method() == http::verb::head;
  std::string path = req.path.empty() || req.path[0] != '/' ? "/" + req.path : req.path;
  std::string target = pool.endpoint().path_prefix + EncodePath(path);
  if (!req.query.empty()) target += "?" + EncodeQuery(req.query);
  msg.target(target);
  msg.set(http::field::host, pool.host_header());
  for (const auto& [header, value] : req.headers) {
    if (IsTransportHeader(header)) continue;
    if (!IsToken(header) || !SafeHeaderValue(value)) {
      log::Warn("downstream request header dropped: invalid name or value", {{"service", name}, {"header", header}});
      continue;
    }
    msg.insert(header, value);
  }
  if (!req.headers.Has(kBudgetHeader) && deadline != TimePoint::max()) {
    int64_t budget = std::max<int64_t>(0, MillisUntil(deadline, Clock::now()));
    msg.set(kBudgetHeader, std::to_string(budget));
  }
  bool body_expected = msg.method() == http::verb::post || msg.method() == http::verb::put ||
                       msg.method() == http::verb::patch;
  if (!req.body.empty() || body_expected) msg.content_length(req.body.size());
  msg.body() = std::move(req.body);
  it->second->Submit(std::move(call));
}

}  // namespace

StatusOr<ServiceEndpoint> ParseBaseUrl(const std::string& url) {
  if (url.size() < kHttpScheme.size() || ToLower(url.substr(0, kHttpScheme.size())) != kHttpScheme) {
    size_t scheme_end = url.find("://");
    if (scheme_end != std::string::npos) {
      return InvalidArgument("unsupported scheme '" + url.substr(0, scheme_end) +
                             "' in base URL: only http:// is supported");
    }
    return InvalidArgument("base URL '" + url + "' must start with http://");
  }
  std::string_view rest = std::string_view(url).substr(kHttpScheme.size());
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  // Deliberately not echoing the URL: it may carry a password.
  if (authority.find('@') != std::string_view::npos) return InvalidArgument("credentials in a base URL are not supported");
  if (rest.find_first_of("?#") != std::string_view::npos) {
    return InvalidArgument("base URL '" + url + "' must not have a query or fragment");
  }

  ServiceEndpoint out;
  std::string_view port;
  if (!authority.empty() && authority[0] == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return InvalidArgument("base URL '" + url + "': missing ']'");
    out.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return InvalidArgument("base URL '" + url + "': junk after ']'");
      port = after.substr(1);
      if (port.empty()) return InvalidArgument("base URL '" + url + "': empty port");
    }
    beast::error_code ec;
    net::ip::make_address_v6(out.host, ec);
    if (ec) return InvalidArgument("base URL '" + url + "': not an IPv6 address in brackets");
  } else {
    size_t colon = authority.find(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      if (port.empty()) return InvalidArgument("base URL '" + url + "': empty port");
    }
    bool valid = std::all_of(out.host.begin(), out.host.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
    });
    if (!valid) return InvalidArgument("base URL '" + url + "': bad character in host");
  }
  if (out.host.empty()) return InvalidArgument("base URL '" + url + "' has no host");

  if (port.empty()) {
    out.port = std::to_string(kDefaultHttpPort);
  } else {
    unsigned value = 0;
    bool digits = port.size() <= 5 && std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (digits) {
      for (char c : port) value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (!digits || value == 0 || value > 65535) {
      return InvalidArgument("base URL '" + url + "': port must be 1..65535");
    }
    out.port = std::to_string(value);
  }

  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  bool clean_path = std::all_of(path.begin(), path.end(), [](char c) {
    return static_cast<unsigned char>(c) > 0x20 && static_cast<unsigned char>(c) < 0x7f;
  });
  if (!clean_path) return InvalidArgument("base URL '" + url + "': bad character in path");
  out.path_prefix = std::string(path);
  return out;
}

StatusOr<std::shared_ptr<HttpTransport>> HttpTransport::Create(boost::asio::io_context& io,
                                                               std::map<Service, std::string> base_urls,
                                                               HttpTransportOptions options) {
  if (options.max_connections_per_service == 0) {
    return InvalidArgument("downstream max_connections_per_service must be at least 1");
  }
  if (options.connect_timeout_ms <= 0 || options.idle_timeout_ms <= 0) {
    return InvalidArgument("downstream connect and idle timeouts must be positive");
  }
  auto transport = std::make_shared<HttpTransportImpl>(io, options);
  for (const auto& [service, url] : base_urls) {
    Status st = transport->AddService(service, url);
    if (!st.ok()) return st;
  }
  return std::shared_ptr<HttpTransport>(std::move(transport));
}

}  // namespace bff
