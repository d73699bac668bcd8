// HttpServer on Boost.Beast: an async acceptor, one session per connection on its own strand, a timer per phase.
#include "protocols/http/http_server.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "common/log.h"
#include "observability/trace_context.h"

namespace bff {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
using error_code = boost::system::error_code;

// Bytes asked of the kernel per read; the buffer grows up to the header limit while headers arrive.
constexpr size_t kReadChunkBytes = 4096;
constexpr size_t kIdleBufferBytes = 2 * kReadChunkBytes;
// Bodies below this are sent as they are: the compressor's set-up costs more than the bytes it saves.
constexpr size_t kMinCompressBytes = 1024;
// gzip framing for zlib's deflate (15-bit window + 16), at zlib's default level and memory.
constexpr int kGzipWindowBits = 15 + 16;
constexpr int kGzipMemLevel = 8;
// After the last answer on a connection the client may still be sending (an oversized body, a pipelined
// request). Reading and discarding for a bounded time before closing keeps the kernel from resetting the
// connection, which could destroy the answer before the client reads it.
constexpr auto kLingerTimeout = std::chrono::seconds(2);
constexpr size_t kLingerMaxBytes = 1 << 20;
// An accept error such as running out of descriptors is retried after a pause instead of in a busy loop.
constexpr auto kAcceptRetryDelay = std::chrono::milliseconds(100);
constexpr std::string_view kContinueResponse = "HTTP/1.1 100 Continue\r\n\r\n";
constexpr int kMinStatus = 100;
constexpr int kMaxStatus = 999;
constexpr unsigned kHttp10 = 10;
constexpr unsigned kHttp11 = 11;
constexpr size_t kTimeoutKinds = 4;

bool StatusHasNoBody(int status) { return status == 204 || status == 304 || (status >= 100 && status < 200); }

// Headers written here from the connection state and the body; a copy from the handler would duplicate them.
bool IsFramingHeader(std::string_view name) {
  return EqualsIgnoreCase(name, "Content-Length") || EqualsIgnoreCase(name, "Connection") ||
         EqualsIgnoreCase(name, "Keep-Alive") || EqualsIgnoreCase(name, "Transfer-Encoding");
}

// Header text that would break the response framing is dropped.
bool SafeHeaderText(std::string_view s) {
  return std::none_of(s.begin(), s.end(), [](char c) { return c == '\r' || c == '\n' || c == '\0'; });
}

// The methods the BFFs answer; anything else (TRACE, CONNECT, unknown tokens) is a malformed request here.
bool IsServedMethod(http::verb v) {
  switch (v) {
    case http::verb::get:
    case http::verb::head:
    case http::verb::post:
    case http::verb::put:
    case http::verb::patch:
    case http::verb::delete_:
    case http::verb::options:
      return true;
    default:
      return false;
  }
}

bool ContainsIgnoreCase(std::string_view haystack, std::string_view needle) {
  auto it = std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end(),
                        [](char a, char b) { return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b)); });
  return it != haystack.end();
}

// Text formats worth compressing; images and archives are compressed already.
bool IsCompressibleType(std::string_view type) {
  if (ContainsIgnoreCase(type, "text/event-stream")) return false;
  return type.substr(0, 5) == "text/" || ContainsIgnoreCase(type, "json") || ContainsIgnoreCase(type, "xml") ||
         ContainsIgnoreCase(type, "javascript") || ContainsIgnoreCase(type, "image/svg");
}

std::optional<std::string> Gzip(std::string_view in) {
  z_stream zs{};
  if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, kGzipWindowBits, kGzipMemLevel, Z_DEFAULT_STRATEGY) != Z_OK) {
    return std::nullopt;
  }
  std::string out(deflateBound(&zs, static_cast<uLong>(in.size())), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) return std::nullopt;
  return out;
}

std::string ErrorBody(std::string_view code, std::string_view message, const std::string& trace_id) {
  nlohmann::json body = {{"error", {{"code", code}, {"message", message}, {"trace_id", trace_id}}}};
  return body.dump();
}

// An error this server answers by itself, in the contract's shape and with the headers every answer carries.
// `traceparent` is empty when the headers never arrived; a new trace starts then.
HttpResponse GeneratedError(int status, std::string_view code, std::string_view message, std::string_view traceparent,
                            Clock::time_point started) {
  auto trace = TraceContext::AcceptOrCreate(traceparent);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
  HttpResponse r = HttpResponse::Json(status, ErrorBody(code, message, trace.trace_id));
  r.headers.Set("traceparent", trace.ToTraceparent());
  r.headers.Set("Server-Timing", "total;dur=" + std::to_string(ms));
  return r;
}

// Renders an answer as HTTP/1.1 bytes: "HTTP/1.1 503 ...\r\n...\r\n\r\nbody", for the one answer written
// without a session (a refused connection).
std::string Serialize(const HttpResponse& r) {
  std::string out = "HTTP/1.1 " + std::to_string(r.status) + " " + std::string(HttpReason(r.status)) + "\r\n";
  for (const auto& [name, value] : r.headers) out += name + ": " + value + "\r\n";
  out += "Content-Length: " + std::to_string(r.body.size()) + "\r\nConnection: close\r\n\r\n" + r.body;
  return out;
}

class Session;

class BeastServer final : public HttpServer {
 public:
  BeastServer(HttpServerOptions options, HttpAsyncHandler handler)
      : options_(std::move(options)),
        handler_(std::move(handler)),
        io_(static_cast<int>(options_.threads)),
        work_(net::make_work_guard(io_)),
        acceptor_(net::make_strand(io_)),
        accept_retry_timer_(acceptor_.get_executor()),
        keep_alive_header_(
            "timeout=" +
            std::to_string(std::max<int64_t>(1, std::chrono::duration_cast<std::chrono::seconds>(options_.idle_timeout).count())) +
            ", max=" + std::to_string(options_.keep_alive_max_requests)) {}
  ~BeastServer() override { Stop(); }

  Status Listen();

  uint16_t port() const override { return port_; }
  size_t in_flight() const override { return in_flight_.load(std::memory_order_relaxed); }
  size_t open_connections() const override { return open_.load(std::memory_order_relaxed); }
  uint64_t refused_connections() const override { return refused_.load(std::memory_order_relaxed); }
  uint64_t timeouts(HttpTimeout kind) const override {
    return timeouts_[static_cast<size_t>(kind)].load(std::memory_order_relaxed);
  }
  void Stop() override;

  const HttpServerOptions& options() const { return options_; }
  const HttpAsyncHandler& handler() const { return handler_; }
  const std::string& keep_alive_header() const { return keep_alive_header_; }
  bool stopped() const { return stopped_.load(); }
  void CountTimeout(HttpTimeout kind) { timeouts_[static_cast<size_t>(kind)].fetch_add(1, std::memory_order_relaxed); }
  void RequestStarted() { in_flight_.fetch_add(1, std::memory_order_relaxed); }
  void RequestFinished() { in_flight_.fetch_sub(1, std::memory_order_relaxed); }
  uint64_t Register(const std::shared_ptr<Session>& s);
  void SessionEnded(uint64_t id);

 private:
  void Accept();
  void OnAccept(error_code ec, tcp::socket socket);
  void Refuse(tcp::socket socket);

  const HttpServerOptions options_;
  const HttpAsyncHandler handler_;
  net::io_context io_;
  net::executor_work_guard<net::io_context::executor_type> work_;
  tcp::acceptor acceptor_;               // on its own strand; Stop() closes it there
  net::steady_timer accept_retry_timer_;
  const std::string keep_alive_header_;  // "timeout=S, max=N": clients stop reusing a connection before we close it
  std::vector<std::thread> threads_;
  uint16_t port_ = 0;
  std::atomic<bool> stopped_{false};
  std::atomic<size_t> in_flight_{0};
  std::atomic<size_t> open_{0};
  std::atomic<uint64_t> refused_{0};
  std::array<std::atomic<uint64_t>, kTimeoutKinds> timeouts_{};

  std::mutex sessions_mu_;
  std::condition_variable sessions_cv_;
  uint64_t next_session_id_ = 1;
  std::unordered_map<uint64_t, std::weak_ptr<Session>> sessions_;
  bool acceptor_closed_ = false;  // guarded by sessions_mu_
  std::mutex stop_mu_;
  bool joined_ = false;  // guarded by stop_mu_
};

// One accepted connection. Every member is touched only on the connection's strand. What keeps the session
// alive is whatever it waits for: its socket read or write, or its timer (always pending until closed).
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, BeastServer& owner)
      : executor_(socket.get_executor()), socket_(std::move(socket)), timer_(executor_), owner_(owner) {
    error_code ec;
    const tcp::endpoint remote = socket_.remote_endpoint(ec);
    if (!ec) peer_ = remote.address().to_string();
  }
  ~Session() {
    if (id_ != 0) owner_.SessionEnded(id_);
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // The connection's strand; never changes, so any thread may post to it.
  const net::any_io_executor& executor() const { return executor_; }

  void Start() {
    id_ = owner_.Register(shared_from_this());
    net::dispatch(executor_, [self = shared_from_this()] { self->ReadNext(); });
  }

  // After Stop(): a connection between requests, or still receiving one, is closed now; one whose request
  // is with the handler is answered and then closed.
  void OnStop() {
    if (phase_ == Phase::kIdle || phase_ == Phase::kHeader || phase_ == Phase::kBody) Close();
  }

  // The handler's answer to request number `seq`, from any thread.
  static void Answer(const std::weak_ptr<Session>& weak, uint64_t seq, HttpResponse res) {
    // A session that is gone (its request timed out and the connection ended) drops a late answer. While
    // `self` is held the session is alive, so the server and its io_context are too.
    auto self = weak.lock();
    if (!self) return;
    net::dispatch(self->executor_, [self, seq, res = std::move(res)]() mutable { self->Deliver(seq, std::move(res)); });
  }

 private:
  enum class Phase { kIdle, kHeader, kBody, kHandling, kWriting, kLinger, kClosed };

  const HttpServerOptions& options() const { return owner_.options(); }

  void ReadNext();
  void Read();
  void OnRead(error_code ec, size_t n);
  void Parse();
  void OnHeaderDone();
  void EnterPhase(Phase phase);
  void Arm(std::chrono::steady_clock::duration after);
  void OnTimerFired(error_code ec);
  void OnTimer();
  void Dispatch();
  void Deliver(uint64_t seq, HttpResponse res);
  void Reply(HttpResponse res, bool close);
  void SendError(int status, std::string_view code, std::string_view message);
  void Write();
  void OnWrite(error_code ec);
  void Linger();
  void Close();
  std::string_view RequestTraceparent() const {
    if (!parser_ || !parser_->is_header_done()) return {};
    return parser_->get()["traceparent"];
  }

  const net::any_io_executor executor_;
  tcp::socket socket_;
  net::steady_timer timer_;  // the limit of the current phase
  BeastServer& owner_;
  std::string peer_;  // the client's address, without port
  uint64_t id_ = 0;
  Phase phase_ = Phase::kIdle;
  // The current phase's limit. The timer is re-armed only when a limit moves earlier than the pending
  // expiry; when it fires early it re-arms for the deadline. A busy keep-alive connection thus rarely
  // touches the timer queue, though every phase has a limit.
  Clock::time_point deadline_;
  Clock::time_point timer_expiry_;
  bool timer_pending_ = false;
  bool timed_out_ = false;         // the pending read or write was cancelled by the phase's timer
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> res_;
  std::optional<http::response_serializer<http::string_body>> serializer_;
  Clock::time_point request_started_;
  uint64_t seq_ = 0;  // requests handed to the handler on this connection
  size_t served_ = 0;
  unsigned version_ = kHttp11;
  bool keep_alive_ = false;
  bool is_head_ = false;
  bool accepts_gzip_ = false;
  bool close_after_write_ = false;
  bool in_handler_call_ = false;                // the handler is running on this strand right now
  std::optional<HttpResponse> early_answer_;    // answered before the handler call returned
  size_t lingered_bytes_ = 0;
  std::string_view continue_pending_;
  std::string traceparent_;  // of the request with the handler, for a 504 in its trace
  bool header_armed_ = false;  // the header limit runs only once a request needs a second read
};

void Session::ReadNext() {
  if (owner_.stopped()) {
    Close();
    return;
  }
  parser_.emplace();
  parser_->eager(true);
  parser_->body_limit(options().max_body_bytes);
  parser_->header_limit(static_cast<std::uint32_t>(std::min<size_t>(options().max_header_bytes, std::numeric_limits<std::uint32_t>::max())));
  if (buffer_.size() > 0) {
    // Pipelined: the next request is already here. Posted, so a long pipeline is not a deep recursion.
    request_started_ = Clock::now();
    phase_ = Phase::kHeader;
    header_armed_ = false;
    net::post(executor_, [self = shared_from_this()] {
      if (self->phase_ == Phase::kHeader) self->Parse();
    });
    return;
  }
  // An idle connection keeps one small buffer, not what a large request left behind.
  if (buffer_.capacity() > kIdleBufferBytes) buffer_.shrink_to_fit();
  EnterPhase(Phase::kIdle);
  Read();
}

void Session::EnterPhase(Phase phase) {
  phase_ = phase;
  switch (phase) {
    case Phase::kIdle: Arm(options().idle_timeout); break;
    // The header limit counts from the request's first byte, not from the read that arms it.
    case Phase::kHeader: Arm(options().header_timeout - (Clock::now() - request_started_)); break;
    case Phase::kBody: Arm(options().body_timeout); break;
    case Phase::kHandling: Arm(options().handler_timeout); break;
    case Phase::kWriting: Arm(options().write_timeout); break;
    case Phase::kLinger: Arm(kLingerTimeout); break;
    case Phase::kClosed: timer_.cancel(); break;
  }
}

void Session::Arm(std::chrono::steady_clock::duration after) {
  timed_out_ = false;
  deadline_ = Clock::now() + after;
  if (timer_pending_ && timer_expiry_ <= deadline_) return;
  timer_pending_ = true;
  timer_expiry_ = deadline_;
  // Replacing the expiry cancels the pending wait; its handler sees operation_aborted and does nothing.
  timer_.expires_at(deadline_);
  timer_.async_wait([self = shared_from_this()](error_code ec) { self->OnTimerFired(ec); });
}

void Session::OnTimerFired(error_code ec) {
  if (ec == net::error::operation_aborted || phase_ == Phase::kClosed) return;
  timer_pending_ = false;
  if (Clock::now() < deadline_) {
    // Fired for an earlier phase's limit; the current one is later.
    timer_pending_ = true;
    timer_expiry_ = deadline_;
    timer_.expires_at(deadline_);
    timer_.async_wait([self = shared_from_this()](error_code wait_ec) { self->OnTimerFired(wait_ec); });
    return;
  }
  OnTimer();
}

void Session::OnTimer() {
  switch (phase_) {
    case Phase::kHandling: {
      // The handler may still answer later; Deliver() drops that answer by its sequence number.
      owner_.CountTimeout(HttpTimeout::kHandler);
      owner_.RequestFinished();
      log::Warn("http handler did not answer in time", {{"timeout_ms", options().handler_timeout.count()}});
      Reply(GeneratedError(504, "deadline_exceeded", "the request took too long", traceparent_, request_started_),
            !keep_alive_);
      return;
    }
    case Phase::kIdle:
    case Phase::kHeader:
    case Phase::kBody:
    case Phase::kWriting:
    case Phase::kLinger: {
      // The pending read or write completes with operation_aborted and OnRead/OnWrite act on the timeout.
      timed_out_ = true;
      error_code ignored;
      socket_.cancel(ignored);
      return;
    }
    case Phase::kClosed: return;
  }
}

void Session::Read() {
  socket_.async_read_some(buffer_.prepare(kReadChunkBytes),
                          [self = shared_from_this()](error_code ec, size_t n) { self->OnRead(ec, n); });
}

void Session::OnRead(error_code ec, size_t n) {
  // A read can complete at the moment its phase's timer fires; the timer wins then.
  const bool timed_out = timed_out_;
  timed_out_ = false;
  if (phase_ == Phase::kClosed) return;
  if (phase_ == Phase::kLinger) {
    lingered_bytes_ += n;
    buffer_.clear();
    if (ec || timed_out || lingered_bytes_ >= kLingerMaxBytes) return Close();
    return Read();
  }
  if (timed_out) {
    if (phase_ == Phase::kIdle) {
      // Nothing was asked: the connection is closed without a word, as keep-alive allows.
      owner_.CountTimeout(HttpTimeout::kIdle);
      return Close();
    }
    const bool header = phase_ == Phase::kHeader;
    owner_.CountTimeout(header ? HttpTimeout::kHeader : HttpTimeout::kBody);
    return SendError(408, "request_timeout",
                     header ? "request headers did not arrive in time" : "request body did not arrive in time");
  }
  if (ec) {
    // The client closed or reset, or Stop() closed the socket: there is nobody to answer.
    if (ec != net::error::eof && ec != net::error::operation_aborted && ec != net::error::connection_reset) {
      log::Debug("http connection closed while reading", {{"error", ec.message()}});
    }
    return Close();
  }
  buffer_.commit(n);
  if (phase_ == Phase::kIdle) {
    // The idle limit ends here; the header limit is armed only if this read did not bring the whole header.
    request_started_ = Clock::now();
    phase_ = Phase::kHeader;
    header_armed_ = false;
  }
  Parse();
}

void Session::Parse() {
  while (buffer_.size() > 0 && !parser_->is_done()) {
    const bool header_was_done = parser_->is_header_done();
    error_code ec;
    size_t used = parser_->put(buffer_.data(), ec);
    buffer_.consume(used);
    if (ec == http::error::need_more) break;
    if (ec == http::error::body_limit) {
      return SendError(413, "payload_too_large", "request body larger than " + std::to_string(options().max_body_bytes) + " bytes");
    }
    if (ec == http::error::header_limit) {
      return SendError(431, "header_too_large", "request headers larger than " + std::to_string(options().max_header_bytes) + " bytes");
    }
    if (ec) return SendError(400, "bad_request", "malformed HTTP request");
    if (!header_was_done && parser_->is_header_done()) {
      OnHeaderDone();
      if (phase_ != Phase::kHeader && phase_ != Phase::kBody) return;
    }
    if (used == 0) break;
  }
  if (parser_->is_done()) return Dispatch();
  if (parser_->is_header_done() && phase_ == Phase::kHeader) {
    EnterPhase(Phase::kBody);
  } else if (phase_ == Phase::kHeader && !header_armed_) {
    header_armed_ = true;
    EnterPhase(Phase::kHeader);
  }
  if (!continue_pending_.empty()) {
    // Clients such as curl wait for this before sending a large body; it is small enough to go out at once.
    std::string_view text = continue_pending_;
    continue_pending_ = {};
    net::async_write(socket_, net::buffer(text.data(), text.size()), [self = shared_from_this()](error_code ec, size_t) {
      if (ec) return self->Close();
      self->Read();
    });
    return;
  }
  // The buffer holds at most the header limit plus one read while headers arrive; the parser bounds bodies.
  Read();
}

void Session::OnHeaderDone() {
  const auto& msg = parser_->get();
  if (!IsServedMethod(msg.method()) || (msg.version() != kHttp10 && msg.version() != kHttp11)) {
    SendError(400, "bad_request", "malformed HTTP request");
    return;
  }
  if (msg.version() >= kHttp11 && EqualsIgnoreCase(msg[http::field::expect], "100-continue") && !parser_->is_done()) {
    continue_pending_ = kContinueResponse;
  }
}

void Session::Dispatch() {
  auto& msg = parser_->get();
  version_ = msg.version();
  keep_alive_ = msg.keep_alive();
  is_head_ = msg.method() == http::verb::head;
  accepts_gzip_ = ContainsIgnoreCase(msg[http::field::accept_encoding], "gzip");
  traceparent_ = std::string(msg["traceparent"]);
  continue_pending_ = {};

  HttpRequest req;
  req.method = std::string(msg.method_string());
  std::string_view target = msg.target();
  size_t q = target.find('?');
  req.path = PercentDecode(target.substr(0, q), /*plus_as_space=*/false);
  if (q != std::string_view::npos) {
    std::string_view query = target.substr(q + 1);
    req.query = std::string(query.substr(0, query.find('#')));
  }
  for (const auto& field : msg) req.headers.Add(std::string(field.name_string()), std::string(field.value()));
  req.body = std::move(msg.body());
  req.peer = peer_;
  parser_.reset();

  const uint64_t seq = ++seq_;
  phase_ = Phase::kHandling;
  owner_.RequestStarted();
  std::weak_ptr<Session> weak = weak_from_this();
  in_handler_call_ = true;
  try {
    owner_.handler()(std::move(req), [weak, seq](HttpResponse r) { Session::Answer(weak, seq, std::move(r)); });
  } catch (const std::exception& e) {
    log::Error("http handler threw", {{"what", e.what()}});
    if (!early_answer_) early_answer_ = GeneratedError(500, "internal", "internal error", traceparent_, request_started_);
  } catch (...) {
    log::Error("http handler threw");
    if (!early_answer_) early_answer_ = GeneratedError(500, "internal", "internal error", traceparent_, request_started_);
  }
  in_handler_call_ = false;
  if (early_answer_) {
    // Answered during the call (a cache hit, say): no timer was needed.
    HttpResponse answer = std::move(*early_answer_);
    early_answer_.reset();
    owner_.RequestFinished();
    Reply(std::move(answer), !keep_alive_);
    return;
  }
  EnterPhase(Phase::kHandling);
}

void Session::Deliver(uint64_t seq, HttpResponse res) {
  if (seq != seq_ || phase_ != Phase::kHandling || early_answer_) return;  // late, or answered twice
  if (in_handler_call_) {
    early_answer_ = std::move(res);
    return;
  }
  owner_.RequestFinished();
  Reply(std::move(res), !keep_alive_);
}

void Session::Reply(HttpResponse answer, bool close) {
  ++served_;
  close_after_write_ = close || owner_.stopped() || served_ >= options().keep_alive_max_requests;
  res_ = {};
  res_.version(version_ == kHttp10 ? kHttp10 : kHttp11);
  const int status = answer.status >= kMinStatus && answer.status <= kMaxStatus ? answer.status : 500;
  res_.result(static_cast<unsigned>(status));
  if (http::int_to_status(static_cast<unsigned>(status)) == http::status::unknown) res_.reason(HttpReason(status));
  std::string_view content_type;
  bool has_encoding = false;
  bool varies_on_encoding = false;
  for (const auto& [name, value] : answer.headers) {
    if (IsFramingHeader(name)) continue;
    if (name.empty() || !SafeHeaderText(name) || !SafeHeaderText(value)) {
      log::Warn("http handler set an invalid header; dropped", {{"header", name}});
      continue;
    }
    if (EqualsIgnoreCase(name, "Content-Type")) content_type = value;
    if (EqualsIgnoreCase(name, "Content-Encoding")) has_encoding = true;
    if (EqualsIgnoreCase(name, "Vary") && ContainsIgnoreCase(value, "accept-encoding")) varies_on_encoding = true;
    res_.insert(name, value);
  }
  if (!StatusHasNoBody(status) && !answer.body.empty()) {
    if (content_type.empty()) res_.set(http::field::content_type, "application/octet-stream");
    if (accepts_gzip_ && !has_encoding && answer.body.size() >= kMinCompressBytes && IsCompressibleType(content_type)) {
      if (auto gz = Gzip(answer.body)) {
        answer.body = std::move(*gz);
        res_.set(http::field::content_encoding, "gzip");
        // A compressed representation differs from the identity one: shared caches must key on the encoding.
        if (!varies_on_encoding) res_.insert(http::field::vary, "Accept-Encoding");
      }
    }
    // HEAD announces the length GET would send, and sends no body.
    res_.content_length(answer.body.size());
    if (!is_head_) res_.body() = std::move(answer.body);
  } else if (!StatusHasNoBody(status)) {
    res_.content_length(0);
  }
  res_.keep_alive(!close_after_write_);
  if (!close_after_write_) res_.set(http::field::keep_alive, owner_.keep_alive_header());
  Write();
}

void Session::SendError(int status, std::string_view code, std::string_view message) {
  log::Debug("http request refused by the server", {{"status", status}, {"code", code}});
  HttpResponse r = GeneratedError(status, code, message, RequestTraceparent(), request_started_);
  parser_.reset();
  version_ = kHttp11;
  is_head_ = false;
  accepts_gzip_ = false;
  continue_pending_ = {};
  Reply(std::move(r), /*close=*/true);
}

void Session::Write() {
  // Most answers fit in the socket's buffer: written at once, they need neither the write limit nor a
  // trip through the event loop. The socket is non-blocking, so a full buffer stops this write where it
  // got to and the asynchronous write carries on from there under the limit.
  serializer_.emplace(res_);
  error_code ec;
  http::write(socket_, *serializer_, ec);
  if (ec != net::error::would_block && ec != net::error::try_again) return OnWrite(ec);
  EnterPhase(Phase::kWriting);
  http::async_write(socket_, *serializer_, [self = shared_from_this()](error_code wec, size_t) { self->OnWrite(wec); });
}

void Session::OnWrite(error_code ec) {
  serializer_.reset();
  res_ = {};
  if (ec) {
    if (timed_out_) log::Debug("http answer not read by the client in time; connection closed");
    return Close();
  }
  if (!close_after_write_) return ReadNext();
  // Closing with the client's bytes unread (a pipelined request, the rest of a refused body) would reset
  // the connection and could destroy the answer before the client reads it.
  Linger();
}

void Session::Linger() {
  error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_send, ignored);
  buffer_.clear();
  lingered_bytes_ = 0;
  timed_out_ = false;
  EnterPhase(Phase::kLinger);
  Read();
}

void Session::Close() {
  if (phase_ == Phase::kClosed) return;
  EnterPhase(Phase::kClosed);
  error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
}

// ---- BeastServer ----

Status BeastServer::Listen() {
  const std::string where = options_.host + ":" + std::to_string(options_.port);
  error_code ec;
  net::ip::address address = net::ip::make_address(options_.host.empty() ? "0.0.0.0" : options_.host, ec);
  if (ec) {
    // A name such as "localhost": resolved once, at start-up.
    tcp::resolver resolver(io_);
    auto results = resolver.resolve(options_.host, std::to_string(options_.port), ec);
    if (ec || results.empty()) return Unavailable("cannot listen on " + where + ": cannot resolve the host");
    address = results.begin()->endpoint().address();
  }
  const tcp::endpoint endpoint(address, options_.port);
  auto fail = [&](std::string_view what) {
    error_code ignored;
    acceptor_.close(ignored);
    return Unavailable("cannot listen on " + where + ": " + std::string(what) + ": " + ec.message());
  };
  acceptor_.open(endpoint.protocol(), ec);
  if (ec) return fail("socket");
  // SO_REUSEADDR allows a restart over TIME_WAIT sockets; SO_REUSEPORT (never set) would let a second
  // daemon on the same port start silently and take half the connections.
  acceptor_.set_option(net::socket_base::reuse_address(true), ec);
  if (ec) return fail("SO_REUSEADDR");
  acceptor_.bind(endpoint, ec);
  if (ec) return fail("bind");
  acceptor_.listen(options_.listen_backlog, ec);
  if (ec) return fail("listen");
  port_ = acceptor_.local_endpoint(ec).port();
  if (ec) return fail("local address");

  net::dispatch(acceptor_.get_executor(), [this] { Accept(); });
  threads_.reserve(options_.threads);
  for (size_t i = 0; i < options_.threads; ++i) threads_.emplace_back([this] { io_.run(); });
  return Status::Ok();
}

void BeastServer::Accept() {
  if (stopped_ || !acceptor_.is_open()) return;
  // Each connection gets its own strand, so its handlers never run concurrently.
  acceptor_.async_accept(net::make_strand(io_), [this](error_code ec, tcp::socket socket) { OnAccept(ec, std::move(socket)); });
}

void BeastServer::OnAccept(error_code ec, tcp::socket socket) {
  if (stopped_ || ec == net::error::operation_aborted) return;
  if (ec) {
    // Out of descriptors and similar: keep serving the connections already open and try again shortly.
    log::Warn("http accept failed", {{"error", ec.message()}, {"port", port_}});
    accept_retry_timer_.expires_after(kAcceptRetryDelay);
    accept_retry_timer_.async_wait([this](error_code wait_ec) {
      if (!wait_ec) Accept();
    });
    return;
  }
  if (open_.load(std::memory_order_relaxed) >= options_.max_connections) {
    Refuse(std::move(socket));
  } else {
    error_code ignored;
    // Nagle's algorithm meets the client's delayed ACK on every keep-alive answer: ~40 ms a request.
    socket.set_option(tcp::no_delay(true), ignored);
    // Synchronous writes (Session::Write) must never block an event-loop thread.
    socket.non_blocking(true, ignored);
    open_.fetch_add(1, std::memory_order_relaxed);
    std::make_shared<Session>(std::move(socket), *this)->Start();
  }
  Accept();
}

void BeastServer::Refuse(tcp::socket socket) {
  // Past max_connections the newcomer is told so at once, without a session: a non-blocking write of a
  // few hundred bytes into an empty socket buffer, then close. The connections already open are untouched.
  refused_.fetch_add(1, std::memory_order_relaxed);
  HttpResponse r = GeneratedError(503, "unavailable", "too many connections", {}, Clock::now());
  r.headers.Set("Retry-After", "1");
  const std::string bytes = Serialize(r);
  error_code ignored;
  socket.non_blocking(true, ignored);
  socket.write_some(net::buffer(bytes), ignored);
  socket.shutdown(tcp::socket::shutdown_both, ignored);
  socket.close(ignored);
}

uint64_t BeastServer::Register(const std::shared_ptr<Session>& s) {
  std::lock_guard lock(sessions_mu_);
  uint64_t id = next_session_id_++;
  sessions_.emplace(id, s);
  return id;
}

void BeastServer::SessionEnded(uint64_t id) {
  {
    std::lock_guard lock(sessions_mu_);
    sessions_.erase(id);
    open_.fetch_sub(1, std::memory_order_relaxed);
  }
  sessions_cv_.notify_all();
}

void BeastServer::Stop() {
  std::lock_guard stop_lock(stop_mu_);
  if (joined_) return;
  joined_ = true;
  stopped_ = true;
  if (!threads_.empty()) {
    net::post(acceptor_.get_executor(), [this] {
      error_code ignored;
      acceptor_.close(ignored);
      accept_retry_timer_.cancel();
      {
        std::lock_guard lock(sessions_mu_);
        acceptor_closed_ = true;
      }
      sessions_cv_.notify_all();
    });
    std::vector<std::shared_ptr<Session>> live;
    {
      std::lock_guard lock(sessions_mu_);
      for (auto& [id, weak] : sessions_) {
        if (auto s = weak.lock()) live.push_back(std::move(s));
      }
    }
    for (auto& s : live) {
      net::post(s->executor(), [s] { s->OnStop(); });
    }
    live.clear();
    // Bounded: a request with the handler ends within handler_timeout, its answer within write_timeout.
    std::unique_lock lock(sessions_mu_);
    sessions_cv_.wait(lock, [this] { return acceptor_closed_ && sessions_.empty(); });
  }
  work_.reset();
  io_.stop();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

}  // namespace

StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(HttpServerOptions options, HttpAsyncHandler handler) {
  if (!handler) return InvalidArgument("http server needs a handler");
  if (options.threads == 0) return InvalidArgument("http server threads must be at least 1");
  if (options.max_body_bytes == 0) return InvalidArgument("http server max_body_bytes must be at least 1");
  if (options.max_header_bytes == 0) return InvalidArgument("http server max_header_bytes must be at least 1");
  if (options.max_connections == 0) return InvalidArgument("http server max_connections must be at least 1");
  if (options.listen_backlog <= 0) return InvalidArgument("http server listen_backlog must be positive");
  if (options.keep_alive_max_requests == 0) return InvalidArgument("http server keep_alive_max_requests must be at least 1");
  for (auto t : {options.handler_timeout, options.header_timeout, options.body_timeout, options.idle_timeout, options.write_timeout}) {
    if (t.count() <= 0) return InvalidArgument("http server timeouts must be positive");
  }

  auto server = std::make_unique<BeastServer>(std::move(options), std::move(handler));
  if (Status s = server->Listen(); !s.ok()) return s;
  log::Info("http server listening", {{"port", server->port()}});
  return std::unique_ptr<HttpServer>(std::move(server));
}

}  // namespace bff
