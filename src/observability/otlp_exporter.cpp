// OTLP/HTTP JSON span exporter: bounded queue, one exporter thread, Boost.Beast HTTP/1.1 client.
#include "observability/otlp_exporter.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "common/config.h"
#include "common/log.h"

namespace bff {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using ojson = nlohmann::ordered_json;

constexpr std::string_view kHttpScheme = "http://";
constexpr std::string_view kTracesPath = "/v1/traces";
constexpr uint16_t kDefaultHttpPort = 80;
// A collector's answer is a small ExportTraceServiceResponse; anything larger is not one.
constexpr uint64_t kMaxResponseBodyBytes = 64 * 1024;
constexpr uint32_t kMaxResponseHeaderBytes = 16 * 1024;
// Bounds on the options: a typo must not ask for gigabytes of queue.
constexpr size_t kMaxQueueLimit = 1 << 17;  // each slot is a Span (~200 bytes) allocated up front
constexpr int kMaxDelayLimitMs = 60 * 1000;
constexpr int kMaxTimeoutLimitMs = 5 * 60 * 1000;

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// The OTLP JSON is written straight into one string: a batch of hundreds of spans built as a JSON
// tree first cost more than the requests that made them.

// The length of the valid UTF-8 sequence at s[i], or 0 when it is not one.
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const auto cont = [&](size_t k) { return k < s.size() && (b(k) & 0xC0) == 0x80; };
  const unsigned char c = b(i);
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return cont(i + 1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(i + 1) || !cont(i + 2)) return 0;
    if (c == 0xE0 && b(i + 1) < 0xA0) return 0;   // overlong
    if (c == 0xED && b(i + 1) >= 0xA0) return 0;  // UTF-16 surrogate
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(i + 1) || !cont(i + 2) || !cont(i + 3)) return 0;
    if (c == 0xF0 && b(i + 1) < 0x90) return 0;   // overlong
    if (c == 0xF4 && b(i + 1) >= 0x90) return 0;  // past U+10FFFF
    return 4;
  }
  return 0;
}

// A JSON string: quotes, backslashes and control characters escaped, each byte that is not part of
// valid UTF-8 replaced by U+FFFD (a span name or attribute may carry a client's bytes).
void AppendString(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  const auto plain = [](unsigned char c) { return c >= 0x20 && c < 0x80 && c != '"' && c != '\\'; };
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (plain(c)) {
      size_t run = i + 1;
      while (run < s.size() && plain(static_cast<unsigned char>(s[run]))) ++run;
      out.append(s.data() + i, run - i);
      i = run;
      continue;
    }
    switch (c) {
      case '"': out += "\\\""; ++i; continue;
      case '\\': out += "\\\\"; ++i; continue;
      case '\n': out += "\\n"; ++i; continue;
      case '\r': out += "\\r"; ++i; continue;
      case '\t': out += "\\t"; ++i; continue;
      default: break;
    }
    if (c < 0x20) {
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
      ++i;
      continue;
    }
    const size_t n = Utf8SequenceLength(s, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  out += '"';
}

void AppendInt(std::string& out, int64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

// proto3 JSON: 64-bit integers are decimal strings.
void AppendQuotedInt(std::string& out, int64_t v) {
  out += '"';
  AppendInt(out, v);
  out += '"';
}

void AppendDouble(std::string& out, double d) {
  if (std::isnan(d)) {
    out += "\"NaN\"";  // proto3 JSON's spelling; JSON numbers cannot say it
    return;
  }
  if (std::isinf(d)) {
    out += d > 0 ? "\"Infinity\"" : "\"-Infinity\"";
    return;
  }
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, d);  // shortest form that reads back as d
  std::string_view text(buf, static_cast<size_t>(r.ptr - buf));
  out += text;
  if (text.find_first_of(".e") == std::string_view::npos) out += ".0";  // stays a double when read
}

void AppendAttribute(std::string& out, std::string_view key, const AttributeValue& value) {
  out += "{\"key\":";
  AppendString(out, key);
  out += ",\"value\":{";
  if (const auto* s = std::get_if<std::string>(&value)) {
    out += "\"stringValue\":";
    AppendString(out, *s);
  } else if (const auto* i = std::get_if<int64_t>(&value)) {
    out += "\"intValue\":";
    AppendQuotedInt(out, *i);
  } else if (const auto* d = std::get_if<double>(&value)) {
    out += "\"doubleValue\":";
    AppendDouble(out, *d);
  } else if (const auto* b = std::get_if<bool>(&value)) {
    out += "\"boolValue\":";
    out += *b ? "true" : "false";
  }
  out += "}}";
}

void AppendSpan(std::string& out, const Span& s) {
  out += "{\"traceId\":";
  AppendString(out, s.trace_id);
  out += ",\"spanId\":";
  AppendString(out, s.span_id);
  if (!s.parent_span_id.empty()) {
    out += ",\"parentSpanId\":";
    AppendString(out, s.parent_span_id);
  }
  out += ",\"name\":";
  AppendString(out, s.name);
  out += ",\"kind\":";
  AppendInt(out, static_cast<int>(s.kind));
  out += ",\"startTimeUnixNano\":";
  AppendQuotedInt(out, s.start_unix_nano);
  out += ",\"endTimeUnixNano\":";
  AppendQuotedInt(out, s.end_unix_nano);
  if (!s.attributes.empty()) {
    out += ",\"attributes\":[";
    for (size_t i = 0; i < s.attributes.size(); ++i) {
      if (i) out += ',';
      AppendAttribute(out, s.attributes[i].key, s.attributes[i].value);
    }
    out += ']';
  }
  out += ",\"status\":{\"code\":";
  AppendInt(out, static_cast<int>(s.status));
  if (!s.status_message.empty()) {
    out += ",\"message\":";
    AppendString(out, s.status_message);
  }
  out += "}}";
}

// The collector's partialSuccess.rejectedSpans (int64, so a string or a number), 0 when absent.
uint64_t RejectedSpans(const std::string& body) {
  if (body.empty()) return 0;
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (!j.is_object() || !j.contains("partialSuccess") || !j["partialSuccess"].is_object()) return 0;
  const auto& p = j["partialSuccess"];
  if (!p.contains("rejectedSpans")) return 0;
  const auto& r = p["rejectedSpans"];
  if (r.is_number_unsigned()) return r.get<uint64_t>();
  if (r.is_number_integer()) return static_cast<uint64_t>(std::max<int64_t>(r.get<int64_t>(), 0));
  if (r.is_string()) {
    try {
      return std::stoull(r.get<std::string>());
    } catch (...) {
      return 0;
    }
  }
  return 0;
}

// Waits on `cv` for `pred` until `deadline`; TimePoint::max() waits without a timeout (a wait_until
// that far out would overflow the conversion to the OS's clock).
template <typename Pred>
bool WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock, TimePoint deadline, Pred pred) {
  if (deadline == TimePoint::max()) {
    cv.wait(lock, pred);
    return true;
  }
  return cv.wait_until(lock, deadline, pred);
}

// The result of one HTTP exchange with the collector.
struct Exchange {
  beast::error_code ec;
  std::string_view stage;         // where it failed: "resolve", "connect", "send", "answer"
  bool answer_started = false;    // any byte of the answer arrived
  int status = 0;
  std::string body;
};

class OtlpExporterImpl final : public OtlpExporter {
 public:
  OtlpExporterImpl(OtlpExporterOptions options, OtlpEndpoint endpoint)
      : options_(std::move(options)),
        target_(std::move(endpoint)),
        ring_(options_.max_queue),
        resolver_(io_),
        resolve_timer_(io_) {
    endpoint_ = "http://" + HostHeader() + target_.path;
    beast::error_code ec;
    auto address = net::ip::make_address(target_.host, ec);
    if (!ec) numeric_endpoints_.emplace_back(address, target_.port);
  }

  ~OtlpExporterImpl() override { Shutdown(Clock::now()); }

  void Start() { thread_ = std::thread([this] { Run(); }); }

  void Record(Span span) override {
    bool wake = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) {
        counters_.dropped_spans_shutdown.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      if (size_ == ring_.size()) {
        counters_.dropped_spans_queue_full.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      ring_[(head_ + size_) % ring_.size()] = std::move(span);
      ++size_;
      ++enqueued_;
      // The exporter thread only needs waking to open a batch window or when a batch is full, so
      // most pushes under load signal nobody.
      if (size_ == 1) {
        window_start_ = Clock::now();
        wake = true;
      }
      if (size_ == options_.max_batch) wake = true;
    }
    counters_.queued_spans.fetch_add(1, std::memory_order_relaxed);
    if (wake) work_cv_.notify_one();
  }

  bool Flush(TimePoint deadline) override {
    std::unique_lock<std::mutex> lock(mu_);
    const uint64_t target = enqueued_;
    if (finished_ >= target) return true;
    flush_target_ = std::max(flush_target_, target);
    work_cv_.notify_one();
    return WaitUntil(done_cv_, lock, deadline, [&] { return finished_ >= target; });
  }

  bool Shutdown(TimePoint deadline) override {
    std::unique_lock<std::mutex> lock(mu_);
    if (shut_down_) return drained_;
    shut_down_ = true;
    stopping_ = true;
    const uint64_t target = enqueued_;
    flush_target_ = std::max(flush_target_, target);
    work_cv_.notify_one();
    drained_ = WaitUntil(done_cv_, lock, deadline, [&] { return finished_ >= target; });
    abort_ = true;
    lock.unlock();
    work_cv_.notify_one();
    if (!drained_) {
      // The export in flight (if any) would run to its own timeout; cut it short. The handler runs
      // on the exporter thread, inside the io_context's run(), now or at its next one.
      aborting_.store(true, std::memory_order_release);
      net::post(io_, [this] { CancelIo(); });
    }
    if (thread_.joinable()) thread_.join();
    return drained_;
  }

  const OtlpExporterCounters& counters() const override { return counters_; }
  const std::string& endpoint() const override { return endpoint_; }

 private:
  std::string HostHeader() const {
    std::string host = target_.host.find(':') != std::string::npos ? "[" + target_.host + "]" : target_.host;
    if (target_.port != kDefaultHttpPort) host += ":" + std::to_string(target_.port);
    return host;
  }

  // The exporter thread: waits for spans, opens a batch window, sends, repeats.
  void Run() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      work_cv_.wait(lock, [&] { return abort_ || stopping_ || size_ > 0; });
      if (abort_) break;
      if (size_ == 0) {
        if (stopping_) {
          // Drained and told to stop: wait only for the abort that joins us.
          work_cv_.wait(lock, [&] { return abort_; });
          break;
        }
        continue;
      }
      const TimePoint window_end = window_start_ + std::chrono::milliseconds(options_.max_delay_ms);
      work_cv_.wait_until(lock, window_end, [&] {
        return abort_ || stopping_ || size_ >= options_.max_batch || flush_target_ > finished_;
      });
      if (abort_) break;
      const size_t n = std::min(size_, options_.max_batch);
      std::vector<Span>& batch = batch_;
      for (size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(ring_[head_]));
        ring_[head_] = Span();
        head_ = (head_ + 1) % ring_.size();
      }
      size_ -= n;
      // Spans left behind have waited at least this long already.
      if (size_ > 0) window_start_ = Clock::now();
      lock.unlock();
      Export(batch);
      batch.clear();  // frees the spans before taking the lock again
      lock.lock();
      finished_ += n;
      done_cv_.notify_all();
    }
    // Whatever is still queued will never be sent.
    counters_.dropped_spans_shutdown.fetch_add(size_, std::memory_order_relaxed);
    finished_ += size_;
    for (size_t i = 0; i < size_; ++i) ring_[(head_ + i) % ring_.size()] = Span();
    size_ = 0;
    done_cv_.notify_all();
  }

  // Encodes and POSTs one batch; counts the outcome. Exporter thread only.
  void Export(const std::vector<Span>& batch) {
    // Encoded straight into the request, whose buffer is kept from batch to batch: a fresh one of
    // hundreds of kilobytes each time cost page faults and a copy.
    std::string& body = req_.body();
    body.clear();
    AppendOtlpTracesJson(body, batch, options_.service_name, options_.service_version);
    const TimePoint deadline = Clock::now() + std::chrono::milliseconds(options_.timeout_ms);
    const bool reused = stream_.has_value();
    Exchange x = Post(deadline);
    // A kept-alive connection the collector closed while idle fails before any answer: one more try
    // on a fresh connection, within the same deadline.
    if (x.ec && reused && !x.answer_started && x.ec != beast::error::timeout &&
        !aborting_.load(std::memory_order_acquire)) {
      x = Post(deadline);
    }
    if (!x.ec && x.status >= 200 && x.status < 300) {
      counters_.exported_batches.fetch_add(1, std::memory_order_relaxed);
      counters_.exported_spans.fetch_add(batch.size(), std::memory_order_relaxed);
      uint64_t rejected = RejectedSpans(x.body);
      if (rejected > 0) counters_.rejected_spans.fetch_add(rejected, std::memory_order_relaxed);
      if (failing_) {
        failing_ = false;
        log::Info("span export recovered",
                  {{"endpoint", endpoint_}, {"failed_batches", counters_.failed_batches.load()}});
      }
      return;
    }
    counters_.failed_batches.fetch_add(1, std::memory_order_relaxed);
    counters_.dropped_spans_failed.fetch_add(batch.size(), std::memory_order_relaxed);
    // One line when exports start failing, one when they recover: a collector that is down for an
    // hour must not flood the log; the counters carry the rest.
    if (!failing_) {
      failing_ = true;
      std::string reason = x.ec ? std::string(x.stage) + ": " + x.ec.message() : "HTTP " + std::to_string(x.status);
      log::Warn("span export failing; batches are dropped until the collector answers",
                {{"endpoint", endpoint_}, {"error", reason}, {"spans", batch.size()}});
    }
  }

  // One exchange of req_ (its body already set) on the kept-alive connection (or a new one), run to
  // completion on io_.
  Exchange Post(TimePoint deadline) {
    result_ = Exchange{};
    deadline_ = deadline;
    req_.method(http::verb::post);
    req_.target(target_.path);
    req_.version(11);
    req_.set(http::field::host, HostHeader());
    req_.set(http::field::content_type, "application/json");
    req_.set(http::field::user_agent, "bffd-otlp");
    req_.keep_alive(true);
    req_.prepare_payload();
    io_.restart();
    if (aborting_.load(std::memory_order_acquire)) {
      Fail(net::error::operation_aborted, "send");
    } else if (stream_) {
      StartWrite();
    } else if (!numeric_endpoints_.empty()) {
      StartConnect(numeric_endpoints_);
    } else {
      StartResolve();
    }
    io_.run();
    return std::move(result_);
  }

  void StartResolve() {
    // The resolver has no expiry of its own; the timer cancels it at the deadline.
    resolve_timer_.expires_at(deadline_);
    resolve_timer_.async_wait([this](beast::error_code ec) {
      if (!ec) resolver_.cancel();
    });
    resolver_.async_resolve(target_.host, std::to_string(target_.port),
                            [this](beast::error_code ec, const tcp::resolver::results_type& results) {
                              resolve_timer_.cancel();
                              if (!ec && Clock::now() >= deadline_) ec = beast::error::timeout;
                              if (ec) return Fail(ec, "resolve");
                              StartConnect(std::vector<tcp::endpoint>(results.begin(), results.end()));
                            });
  }

  void StartConnect(const std::vector<tcp::endpoint>& endpoints) {
    stream_.emplace(io_);
    buffer_.clear();
    stream_->expires_at(deadline_);
    stream_->async_connect(endpoints, [this](beast::error_code ec, const tcp::endpoint&) {
      if (ec) return Fail(ec, "connect");
      beast::error_code ignored;
      stream_->socket().set_option(tcp::no_delay(true), ignored);  // one small request, one answer
      StartWrite();
    });
  }

  void StartWrite() {
    stream_->expires_at(deadline_);
    http::async_write(*stream_, req_, [this](beast::error_code ec, size_t) {
      if (ec) return Fail(ec, "send");
      StartRead();
    });
  }

  void StartRead() {
    parser_.emplace();
    parser_->body_limit(kMaxResponseBodyBytes);
    parser_->header_limit(kMaxResponseHeaderBytes);
    stream_->expires_at(deadline_);
    http::async_read(*stream_, buffer_, *parser_, [this](beast::error_code ec, size_t) {
      result_.answer_started = parser_->got_some();
      if (ec) return Fail(ec, "answer");
      auto& res = parser_->get();
      result_.status = res.result_int();
      result_.body = std::move(res.body());
      if (!res.keep_alive()) CloseStream();
    });
  }

  void Fail(beast::error_code ec, std::string_view stage) {
    if (aborting_.load(std::memory_order_acquire)) ec = net::error::operation_aborted;
    result_.ec = ec;
    result_.stage = stage;
    CloseStream();  // whatever state the connection is in, it cannot carry another request
  }

  void CloseStream() {
    if (!stream_) return;
    beast::error_code ignored;
    stream_->socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_->socket().close(ignored);
    stream_.reset();
  }

  // Runs on the exporter thread (posted to io_): ends whatever exchange is in flight.
  void CancelIo() {
    resolver_.cancel();
    resolve_timer_.cancel();
    if (stream_) stream_->cancel();
  }

  const OtlpExporterOptions options_;
  const OtlpEndpoint target_;
  std::string endpoint_;
  std::vector<tcp::endpoint> numeric_endpoints_;  // the host is an IP address: no resolver needed
  OtlpExporterCounters counters_;

  // The queue: a ring of max_queue spans. Guarded by mu_.
  std::mutex mu_;
  std::condition_variable work_cv_;  // exporter thread: spans, flush, stop
  std::condition_variable done_cv_;  // Flush()/Shutdown(): batches finished
  std::vector<Span> ring_;
  size_t head_ = 0;
  size_t size_ = 0;
  TimePoint window_start_;    // when the oldest queued span's batch window opened
  uint64_t enqueued_ = 0;     // spans ever queued; with finished_, what Flush() waits for
  uint64_t finished_ = 0;     // spans ever taken care of: exported, failed or dropped at shutdown
  uint64_t flush_target_ = 0; // send without waiting for the window until finished_ reaches this
  bool stopping_ = false;     // Record() refuses spans
  bool abort_ = false;        // the thread leaves now
  bool shut_down_ = false;
  bool drained_ = false;
  std::atomic<bool> aborting_{false};  // the export in flight is being cancelled
  std::thread thread_;

  // I/O state, touched only by the exporter thread (CancelIo runs there too).
  net::io_context io_;
  tcp::resolver resolver_;
  net::steady_timer resolve_timer_;
  std::optional<beast::tcp_stream> stream_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> req_;
  std::optional<http::response_parser<http::string_body>> parser_;
  TimePoint deadline_;
  Exchange result_;
  bool failing_ = false;
  std::vector<Span> batch_;  // exporter thread only; its capacity is kept between batches
};

}  // namespace

std::string EncodeOtlpTracesJson(const std::vector<Span>& spans, const std::string& service_name,
                                 const std::string& service_version) {
  std::string out;
  AppendOtlpTracesJson(out, spans, service_name, service_version);
  return out;
}

void AppendOtlpTracesJson(std::string& out, const std::vector<Span>& spans, const std::string& service_name,
                          const std::string& service_version) {
  out.reserve(out.size() + 256 + spans.size() * 400);
  out += "{\"resourceSpans\":[{\"resource\":{\"attributes\":[";
  AppendAttribute(out, "service.name", service_name);
  if (!service_version.empty()) {
    out += ',';
    AppendAttribute(out, "service.version", service_version);
  }
  out += "]},\"scopeSpans\":[{\"scope\":{\"name\":";
  AppendString(out, service_name);
  if (!service_version.empty()) {
    out += ",\"version\":";
    AppendString(out, service_version);
  }
  out += "},\"spans\":[";
  for (size_t i = 0; i < spans.size(); ++i) {
    if (i) out += ',';
    AppendSpan(out, spans[i]);
  }
  out += "]}]}]}";
}

nlohmann::ordered_json EncodeOtlpTraces(const std::vector<Span>& spans, const std::string& service_name,
                                        const std::string& service_version) {
  return ojson::parse(EncodeOtlpTracesJson(spans, service_name, service_version));
}

StatusOr<OtlpEndpoint> ParseCollectorUrl(const std::string& url) {
  if (url.size() < kHttpScheme.size() || ToLower(url.substr(0, kHttpScheme.size())) != kHttpScheme) {
    size_t scheme_end = url.find("://");
    if (scheme_end != std::string::npos) {
      return InvalidArgument("unsupported scheme '" + url.substr(0, scheme_end) + "': only http:// is supported");
    }
    return InvalidArgument("'" + url + "' must start with http://");
  }
  std::string_view rest = std::string_view(url).substr(kHttpScheme.size());
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  // Deliberately not echoing the URL: it may carry a password.
  if (authority.find('@') != std::string_view::npos) return InvalidArgument("credentials in the URL are not supported");
  if (rest.find_first_of("?#") != std::string_view::npos) {
    return InvalidArgument("'" + url + "' must not have a query or fragment");
  }
  if (rest.find_first_of(" \t\r\n") != std::string_view::npos) return InvalidArgument("'" + url + "' has whitespace");
  OtlpEndpoint e;
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return InvalidArgument("'" + url + "': unterminated IPv6 address");
    e.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return InvalidArgument("'" + url + "': junk after the IPv6 address");
      port = after.substr(1);
      if (port.empty()) return InvalidArgument("'" + url + "': empty port");
    }
  } else {
    size_t colon = authority.rfind(':');
    e.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      if (port.empty()) return InvalidArgument("'" + url + "': empty port");
    }
  }
  if (e.host.empty()) return InvalidArgument("'" + url + "' has no host");
  if (!port.empty()) {
    if (port.size() > 5 || !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return InvalidArgument("'" + url + "': bad port");
    }
    unsigned long p = std::stoul(std::string(port));
    if (p == 0 || p > 65535) return InvalidArgument("'" + url + "': port must be 1..65535");
    e.port = static_cast<uint16_t>(p);
  }
  std::string prefix(path);
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  e.path = prefix + std::string(kTracesPath);
  return e;
}

StatusOr<std::shared_ptr<OtlpExporter>> OtlpExporter::Create(OtlpExporterOptions options) {
  auto endpoint = ParseCollectorUrl(options.collector_url);
  if (!endpoint.ok()) return InvalidArgument("tracing.collector_url: " + endpoint.status().message());
  if (options.max_queue == 0 || options.max_queue > kMaxQueueLimit) {
    return InvalidArgument("tracing.max_queue: must be 1.." + std::to_string(kMaxQueueLimit));
  }
  if (options.max_batch == 0 || options.max_batch > options.max_queue) {
    return InvalidArgument("tracing.max_batch: must be 1..max_queue (" + std::to_string(options.max_queue) + ")");
  }
  if (options.max_delay_ms <= 0 || options.max_delay_ms > kMaxDelayLimitMs) {
    return InvalidArgument("tracing.max_delay_ms: must be 1.." + std::to_string(kMaxDelayLimitMs));
  }
  if (options.timeout_ms <= 0 || options.timeout_ms > kMaxTimeoutLimitMs) {
    return InvalidArgument("tracing.timeout_ms: must be 1.." + std::to_string(kMaxTimeoutLimitMs));
  }
  if (options.service_name.empty()) return InvalidArgument("tracing.service_name: must not be empty");
  if (options.service_version.empty()) options.service_version = VersionString();
  auto exporter = std::make_shared<OtlpExporterImpl>(std::move(options), std::move(endpoint.value()));
  exporter->Start();
  return std::shared_ptr<OtlpExporter>(std::move(exporter));
}

}  // namespace bff
