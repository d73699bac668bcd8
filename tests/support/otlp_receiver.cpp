// OTLP/HTTP JSON test collector on Boost.Beast: one io_context thread, a session per connection.
#include "support/otlp_receiver.h"

#include <optional>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace bff::testing {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

constexpr uint64_t kMaxBodyBytes = 64 << 20;

}  // namespace

// The listener and its sessions; everything here runs on the receiver's thread.
class OtlpReceiver::Server {
 public:
  explicit Server(OtlpReceiver& owner) : owner_(owner), acceptor_(io_) {
    tcp::endpoint ep(net::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(ep.protocol());
    acceptor_.set_option(net::socket_base::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen();
    Accept();
  }

  uint16_t port() const { return acceptor_.local_endpoint().port(); }
  void Run() { io_.run(); }
  void Stop() { io_.stop(); }

 private:
  struct Session : std::enable_shared_from_this<Session> {
    Session(Server& server, tcp::socket socket) : server_(server), stream_(std::move(socket)) {}

    void Read() {
      parser_.emplace();
      parser_->body_limit(kMaxBodyBytes);
      http::async_read(stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, size_t) {
        if (ec) return;  // closed, or garbage: the session ends
        self->Handle(self->parser_->release());
      });
    }

    void Handle(http::request<http::string_body> req) {
      OtlpRequest r;
      r.method = std::string(req.method_string());
      r.target = std::string(req.target());
      r.content_type = std::string(req[http::field::content_type]);
      r.body = req.body();
      r.json = nlohmann::json::parse(r.body, nullptr, false);
      Mode mode;
      std::string answer;
      {
        std::lock_guard<std::mutex> lock(server_.owner_.mu_);
        mode = server_.owner_.mode_;
        answer = server_.owner_.response_body_;
      }
      server_.owner_.OnRequest(std::move(r));
      if (mode == Mode::kHang) {
        // No pending operation would let the session die and close the socket: keep it held.
        server_.held_.push_back(shared_from_this());
        return;
      }
      auto res = std::make_shared<http::response<http::string_body>>(
          mode == Mode::kFail ? http::status::internal_server_error : http::status::ok, req.version());
      res->set(http::field::content_type, "application/json");
      res->keep_alive(req.keep_alive());
      res->body() = mode == Mode::kFail ? std::string(R"({"code":13,"message":"injected failure"})") : answer;
      res->prepare_payload();
      http::async_write(stream_, *res, [self = shared_from_this(), res](beast::error_code ec, size_t) {
        if (ec || !res->keep_alive()) return;
        self->Read();
      });
    }

    Server& server_;
    beast::tcp_stream stream_;
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::string_body>> parser_;
  };

  void Accept() {
    acceptor_.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec) return;
      {
        std::lock_guard<std::mutex> lock(owner_.mu_);
        ++owner_.connections_;
      }
      std::make_shared<Session>(*this, std::move(socket))->Read();
      Accept();
    });
  }

  OtlpReceiver& owner_;
  net::io_context io_;
  tcp::acceptor acceptor_;
  std::vector<std::shared_ptr<Session>> held_;  // after io_ in declaration: destroyed before it
};

OtlpReceiver::OtlpReceiver() : server_(std::make_unique<Server>(*this)) {
  port_ = server_->port();
  thread_ = std::thread([this] { server_->Run(); });
}

OtlpReceiver::~OtlpReceiver() {
  server_->Stop();
  thread_.join();
  server_.reset();  // closes every socket, held ones included
}

void OtlpReceiver::set_mode(Mode mode) {
  std::lock_guard<std::mutex> lock(mu_);
  mode_ = mode;
}

void OtlpReceiver::set_response_body(std::string body) {
  std::lock_guard<std::mutex> lock(mu_);
  response_body_ = std::move(body);
}

void OtlpReceiver::OnRequest(OtlpRequest req) {
  std::vector<ReceivedSpan> found;
  if (req.json.is_object() && req.json.contains("resourceSpans") && req.json["resourceSpans"].is_array()) {
    for (const auto& rs : req.json["resourceSpans"]) {
      nlohmann::json resource = rs.value("resource", nlohmann::json::object());
      if (!rs.contains("scopeSpans") || !rs["scopeSpans"].is_array()) continue;
      for (const auto& ss : rs["scopeSpans"]) {
        nlohmann::json scope = ss.value("scope", nlohmann::json::object());
        if (!ss.contains("spans") || !ss["spans"].is_array()) continue;
        for (const auto& span : ss["spans"]) found.push_back({span, resource, scope});
      }
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.push_back(std::move(req));
    for (auto& s : found) spans_.push_back(std::move(s));
  }
  cv_.notify_all();
}

size_t OtlpReceiver::request_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_.size();
}

size_t OtlpReceiver::connection_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return connections_;
}

std::vector<OtlpRequest> OtlpReceiver::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

std::vector<ReceivedSpan> OtlpReceiver::spans() const {
  std::lock_guard<std::mutex> lock(mu_);
  return spans_;
}

std::vector<ReceivedSpan> OtlpReceiver::SpansOfLocked(std::string_view trace_id) const {
  std::vector<ReceivedSpan> out;
  for (const auto& s : spans_) {
    if (s.span.is_object() && s.span.value("traceId", std::string()) == trace_id) out.push_back(s);
  }
  return out;
}

bool OtlpReceiver::WaitForRequests(size_t n, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return requests_.size() >= n; });
}

std::vector<ReceivedSpan> OtlpReceiver::WaitForSpans(std::string_view trace_id, size_t count,
                                                     std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return SpansOfLocked(trace_id).size() >= count; });
  return SpansOfLocked(trace_id);
}

}  // namespace bff::testing
