// Tests for the downstream HTTP transport against a real HttpListener on loopback.
#include "downstream/http_transport.h"

#include <atomic>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>

#include "common/log.h"
#include "server/http_listener.h"
#include "support/test_support.h"

namespace bff {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;
using bff::testing::WaitFor;

constexpr auto kWait = 10s;

TimePoint In(Duration d) { return Clock::now() + d; }

// Holds respond callbacks until the test releases them.
class Parked {
 public:
  void Add(std::function<void(HttpResponse)> respond) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!released_) {
        responds_.push_back(std::move(respond));
        return;
      }
    }
    Answer(respond);
  }
  size_t size() {
    std::lock_guard<std::mutex> lock(mu_);
    return responds_.size();
  }
  // Answers everything parked and, from now on, answers at once.
  void ReleaseAll() {
    std::vector<std::function<void(HttpResponse)>> take;
    {
      std::lock_guard<std::mutex> lock(mu_);
      released_ = true;
      take.swap(responds_);
    }
    for (auto& respond : take) Answer(respond);
  }

 private:
  static void Answer(const std::function<void(HttpResponse)>& respond) {
    HttpResponse res;
    res.body = "released";
    respond(std::move(res));
  }

  std::mutex mu_;
  bool released_ = false;
  std::vector<std::function<void(HttpResponse)>> responds_;
};

class HttpTransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { io_.run(); });
  }

  void TearDown() override {
    if (transport_) transport_->Shutdown();
    if (listener_) listener_->Stop();
    work_.reset();
    io_.stop();
    for (auto& t : threads_) t.join();
  }

  // Serves with `handler`, counting requests.
  void StartServer(HttpHandler handler, HttpListenerOptions options = {}, uint16_t port = 0) {
    handler_ = std::move(handler);
    auto created = HttpListener::Create(
        io_, "127.0.0.1", port,
        [this](HttpRequest req, std::function<void(HttpResponse)> respond) {
          ++requests_;
          handler_(std::move(req), std::move(respond));
        },
        options);
    ASSERT_TRUE(created.ok()) << created.status().ToString();
    listener_ = created.value();
  }

  void StartTransport(const std::string& base_url, HttpTransportOptions options = {}) {
    auto created = HttpTransport::Create(io_, {{Service::kCatalog, base_url}}, options);
    ASSERT_TRUE(created.ok()) << created.status().ToString();
    transport_ = created.value();
  }

  std::string BaseUrl(std::string_view prefix = "") const {
    return "http://127.0.0.1:" + std::to_string(listener_->port()) + std::string(prefix);
  }

  std::future<StatusOr<HttpResponse>> SendAsync(HttpRequest req, TimePoint deadline) {
    auto promise = std::make_shared<std::promise<StatusOr<HttpResponse>>>();
    auto future = promise->get_future();
    transport_->Send(Service::kCatalog, std::move(req), deadline,
                     [promise](StatusOr<HttpResponse> result) { promise->set_value(std::move(result)); });
    return future;
  }

  StatusOr<HttpResponse> SendSync(HttpRequest req, TimePoint deadline) {
    auto future = SendAsync(std::move(req), deadline);
    if (future.wait_for(kWait) != std::future_status::ready) return Internal("test: no callback in time");
    return future.get();
  }

  static HttpRequest Get(std::string path) {
    HttpRequest req;
    req.path = std::move(path);
    return req;
  }

  static void Ok(HttpRequest, std::function<void(HttpResponse)> respond) {
    HttpResponse res;
    res.body = "ok";
    respond(std::move(res));
  }

  net::io_context io_;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work_{io_.get_executor()};
  std::vector<std::thread> threads_;
  HttpHandler handler_;
  std::atomic<int> requests_{0};
  std::shared_ptr<HttpListener> listener_;
  std::shared_ptr<HttpTransport> transport_;
};

TEST_F(HttpTransportTest, RoundTripKeepsPrefixPathQueryHeadersAndBody) {
  std::promise<HttpRequest> seen;
  StartServer([&](HttpRequest req, std::function<void(HttpResponse)> respond) {
    seen.set_value(req);
    HttpResponse res;
    res.status = 201;
    res.headers.Set("X-Reply", "r1");
    res.body = "created";
    respond(std::move(res));
  });
  StartTransport(BaseUrl("/base/"));

  HttpRequest req;
  req.method = "POST";
  req.path = "/catalog/v1/products/A B";
  req.query = "limit=2&cursor=x%20y";
  req.headers.Set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  req.headers.Set("X-Custom", "v");
  req.body = R"({"skus":["a"]})";
  auto result = SendSync(req, In(5s));
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->status, 201);
  EXPECT_EQ(result->headers.Get("X-Reply"), "r1");
  EXPECT_EQ(result->body, "created");

  auto fut = seen.get_future();
  ASSERT_EQ(fut.wait_for(kWait), std::future_status::ready);
  HttpRequest got = fut.get();
  EXPECT_EQ(got.method, "POST");
  EXPECT_EQ(got.path, "/base/catalog/v1/products/A B");
  EXPECT_EQ(got.query, "limit=2&cursor=x%20y");
  EXPECT_EQ(got.headers.Get("traceparent"), "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  EXPECT_EQ(got.headers.Get("x-custom"), "v");
  EXPECT_EQ(got.headers.Get("Host"), "127.0.0.1:" + std::to_string(listener_->port()));
  EXPECT_FALSE(got.headers.Get(kBudgetHeader).empty());
  EXPECT_EQ(got.body, req.body);
}

TEST_F(HttpTransportTest, KeepAliveReusesOneConnection) {
  StartServer(Ok);
  StartTransport(BaseUrl());
  for (int i = 0; i < 10; ++i) {
    auto result = SendSync(Get("/catalog/v1/products/" + std::to_string(i)), In(5s));
    ASSERT_TRUE(result.ok()) << result.status().ToString();
  }
  EXPECT_EQ(requests_.load(), 10);
  EXPECT_EQ(transport_->open_connections(Service::kCatalog), 1u);
  EXPECT_EQ(listener_->open_connections(), 1u);
}

TEST_F(HttpTransportTest, ConcurrencyLimitQueuesCallsUntilAConnectionFrees) {
  Parked parked;
  std::atomic<size_t> max_server_connections{0};
  StartServer([&](HttpRequest, std::function<void(HttpResponse)> respond) {
    size_t open = listener_->open_connections();
    size_t prev = max_server_connections.load();
    while (open > prev && !max_server_connections.compare_exchange_weak(prev, open)) {
    }
    parked.Add(std::move(respond));
  });
  HttpTransportOptions options;
  options.max_connections_per_service = 2;
  StartTransport(BaseUrl(), options);

  std::vector<std::future<StatusOr<HttpResponse>>> calls;
  for (int i = 0; i < 5; ++i) calls.push_back(SendAsync(Get("/c/" + std::to_string(i)), In(10s)));
  ASSERT_TRUE(WaitFor([&] { return parked.size() == 2; }));
  EXPECT_EQ(transport_->open_connections(Service::kCatalog), 2u);

  parked.ReleaseAll();
  for (auto& call : calls) {
    ASSERT_EQ(call.wait_for(kWait), std::future_status::ready);
    auto result = call.get();
    ASSERT_TRUE(result.ok()) << result.status().ToString();
    EXPECT_EQ(result->body, "released");
  }
  EXPECT_EQ(requests_.load(), 5);
  EXPECT_EQ(max_server_connections.load(), 2u);
  EXPECT_EQ(transport_->open_connections(Service::kCatalog), 2u);
}

TEST_F(HttpTransportTest, QueuedCallLeavesTheQueueAtItsDeadline) {
  Parked parked;
  StartServer([&](HttpRequest, std::function<void(HttpResponse)> respond) { parked.Add(std::move(respond)); });
  HttpTransportOptions options;
  options.max_connections_per_service = 1;
  StartTransport(BaseUrl(), options);

  auto first = SendAsync(Get("/first"), In(10s));
  ASSERT_TRUE(WaitFor([&] { return parked.size() == 1; }));
  auto queued = SendSync(Get("/queued"), In(100ms));
  EXPECT_EQ(queued.status().code(), StatusCode::kDeadlineExceeded) << queued.status().ToString();

  parked.ReleaseAll();
  ASSERT_EQ(first.wait_for(kWait), std::future_status::ready);
  EXPECT_TRUE(first.get().ok());
  EXPECT_EQ(requests_.load(), 1);
}

TEST_F(HttpTransportTest, UnansweredCallEndsWithDeadlineExceededAndDropsTheConnection) {
  Parked parked;
  StartServer([&](HttpRequest, std::function<void(HttpResponse)> respond) { parked.Add(std::move(respond)); });
  StartTransport(BaseUrl());
  auto result = SendSync(Get("/hang"), In(200ms));
  EXPECT_EQ(result.status().code(), StatusCode::kDeadlineExceeded) << result.status().ToString();
  EXPECT_NE(result.status().message().find("catalog"), std::string::npos);
  EXPECT_TRUE(WaitFor([&] { return transport_->open_connections(Service::kCatalog) == 0; }));
  parked.ReleaseAll();
}

TEST_F(HttpTransportTest, PastDeadlineNeverTouchesTheNetwork) {
  StartServer(Ok);
  StartTransport(BaseUrl());
  // The test thread runs no io_context, so a callback on it could only have run inline inside Send().
  std::thread::id callback_thread;
  std::promise<StatusOr<HttpResponse>> promise;
  transport_->Send(Service::kCatalog, Get("/late"), Clock::now() - 1ms, [&](StatusOr<HttpResponse> result) {
    callback_thread = std::this_thread::get_id();
    promise.set_value(std::move(result));
  });
  auto fut = promise.get_future();
  ASSERT_EQ(fut.wait_for(kWait), std::future_status::ready);
  EXPECT_EQ(fut.get().status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_NE(callback_thread, std::this_thread::get_id());
  EXPECT_EQ(transport_->open_connections(Service::kCatalog), 0u);
  EXPECT_EQ(listener_->open_connections(), 0u);
  EXPECT_EQ(requests_.load(), 0);
}

TEST_F(HttpTransportTest, RefusedConnectionIsUnavailable) {
  uint16_t dead_port;
  {
    net::io_context probe;
    tcp::acceptor acceptor(probe, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    dead_port = acceptor.local_endpoint().port();
  }
  StartTransport("http://127.0.0.1:" + std::to_string(dead_port));
  auto result = SendSync(Get("/nobody"), In(5s));
  EXPECT_EQ(result.status().code(), StatusCode::kUnavailable) << result.status().ToString();
  EXPECT_NE(result.status().message().find("catalog"), std::string::npos) << result.status().message();
  EXPECT_EQ(transport_->open_connections(Service::kCatalog), 0u);
}

TEST_F(HttpTransportTest, StaleConnectionClosedByServerIdleTimeoutIsRetried) {
  HttpListenerOptions server_options;
  server_options.idle_timeout_ms = 50;
  StartServer(Ok, server_options);
  StartTransport(BaseUrl());
  ASSERT_TRUE(SendSync(Get("/one"), In(5s)).ok());
  // The server closed the idle connection; the transport still holds it in its pool.
  ASSERT_TRUE(WaitFor([&] { return listener_->open_connections() == 0; }));
  EXPECT_EQ(transport_->open_connections(Service::kCatalog), 1u);

  HttpRequest post;
  post.method = "POST";
  post.path = "/two";
  post.body = "payload";
  auto result = SendSync(post, In(5s));
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->body, "ok");
  EXPECT_EQ(requests_.load(), 2);
}

TEST_F(HttpTransportTest, StaleConnectionAfterServerRestartIsRetried) {
  StartServer(Ok);
  StartTransport(BaseUrl());
  ASSERT_TRUE(SendSync(Get("/one"), In(5s)).ok());
  uint16_t port = listener_->port();
  listener_->Stop();
  ASSERT_TRUE(WaitFor([&] { return listener_->open_connections() == 0; }));
  StartServer(Ok, {}, port);

  auto result = SendSync(Get("/two"), In(5s));
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(requests_.load(), 2);
}

TEST_F(HttpTransportTest, ErrorStatusIsAResponseNotAnError) {
  StartServer([](HttpRequest, std::function<void(HttpResponse)> respond) {
    respond(HttpResponse::Json(503, R"({"error":{"code":"unavailable","message":"down"}})"));
  });
  StartTransport(BaseUrl());
  auto result = SendSync(Get("/down"), In(5s));
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->status, 503);
  EXPECT_NE(result->body.find("unavailable"), std::string::npos);
  // The connection stays usable after an error status.
  ASSERT_TRUE(SendSync(Get("/down"), In(5s)).ok());
  EXPECT_EQ(transport_->open_connections(Service::kCatalog), 1u);
}

TEST_F(HttpTransportTest, IdlePooledConnectionsCloseAfterIdleTimeout) {
  StartServer(Ok);
  HttpTransportOptions options;
  options.idle_timeout_ms = 50;
  StartTransport(BaseUrl(), options);
  ASSERT_TRUE(SendSync(Get("/x"), In(5s)).ok());
  EXPECT_TRUE(WaitFor([&] { return transport_->open_connections(Service::kCatalog) == 0; }));
  EXPECT_TRUE(WaitFor([&] { return listener_->open_connections() == 0; }));
}

TEST_F(HttpTransportTest, ShutdownFailsQueuedCallsAndLetsCallsInFlightFinish) {
  Parked parked;
  StartServer([&](HttpRequest, std::function<void(HttpResponse)> respond) { parked.Add(std::move(respond)); });
  HttpTransportOptions options;
  options.max_connections_per_service = 1;
  StartTransport(BaseUrl(), options);

  auto in_flight = SendAsync(Get("/in-flight"), In(10s));
  ASSERT_TRUE(WaitFor([&] { return parked.size() == 1; }));
  auto queued = SendAsync(Get("/queued"), In(10s));
  transport_->Shutdown();
  ASSERT_EQ(queued.wait_for(kWait), std::future_status::ready);
  EXPECT_EQ(queued.get().status().code(), StatusCode::kUnavailable);

  parked.ReleaseAll();
  ASSERT_EQ(in_flight.wait_for(kWait), std::future_status::ready);
  auto result = in_flight.get();
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->body, "released");
  EXPECT_TRUE(WaitFor([&] { return transport_->open_connections(Service::kCatalog) == 0; }));

  EXPECT_EQ(SendSync(Get("/after"), In(5s)).status().code(), StatusCode::kUnavailable);
}

TEST_F(HttpTransportTest, UnconfiguredServiceIsUnavailable) {
  StartServer(Ok);
  StartTransport(BaseUrl());
  std::promise<StatusOr<HttpResponse>> promise;
  transport_->Send(Service::kReviews, Get("/x"), In(5s),
                   [&](StatusOr<HttpResponse> result) { promise.set_value(std::move(result)); });
  auto fut = promise.get_future();
  ASSERT_EQ(fut.wait_for(kWait), std::future_status::ready);
  auto result = fut.get();
  EXPECT_EQ(result.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(result.status().message().find("reviews"), std::string::npos);
}

TEST_F(HttpTransportTest, InvalidHeaderIsDroppedAndItsValueNeverLogged) {
  std::promise<HttpRequest> seen;
  StartServer([&](HttpRequest req, std::function<void(HttpResponse)> respond) {
    seen.set_value(req);
    Ok(std::move(req), std::move(respond));
  });
  StartTransport(BaseUrl());
  std::mutex log_mu;
  std::vector<std::string> lines;
  log::SetSink([&](std::string_view line) {
    std::lock_guard<std::mutex> lock(log_mu);
    lines.emplace_back(line);
  });
  HttpRequest req = Get("/h");
  req.headers.Set("X-Secret", "s3cr3t\r\nInjected: yes");
  auto result = SendSync(req, In(5s));
  log::SetSink(nullptr);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  auto fut = seen.get_future();
  ASSERT_EQ(fut.wait_for(kWait), std::future_status::ready);
  HttpRequest got = fut.get();
  EXPECT_FALSE(got.headers.Has("X-Secret"));
  EXPECT_FALSE(got.headers.Has("Injected"));
  std::lock_guard<std::mutex> lock(log_mu);
  ASSERT_FALSE(lines.empty());
  for (const auto& line : lines) EXPECT_EQ(line.find("s3cr3t"), std::string::npos) << line;
}

// A minimal server written by hand: answers one request with `Connection: close`, then closes.
TEST_F(HttpTransportTest, ConnectionCloseResponseIsNotPooled) {
  tcp::acceptor acceptor(io_, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  uint16_t port = acceptor.local_endpoint().port();
  std::thread server([&] {
    boost::system::error_code ec;
    tcp::socket socket(io_);
    acceptor.accept(socket, ec);
    if (ec) return;
    net::streambuf buf;
    net::read_until(socket, buf, "\r\n\r\n", ec);
    net::write(socket, net::buffer(std::string_view("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")),
               ec);
    socket.shutdown(tcp::socket::shutdown_send, ec);
  });
  StartTransport("http://127.0.0.1:" + std::to_string(port));
  auto result = SendSync(Get("/once"), In(5s));
  server.join();
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->body, "hi");
  EXPECT_TRUE(WaitFor([&] { return transport_->open_connections(Service::kCatalog) == 0; }));
}

TEST(ParseBaseUrlTest, AcceptsHttpUrls) {
  auto plain = ParseBaseUrl("http://catalog.internal");
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_EQ(plain->host, "catalog.internal");
  EXPECT_EQ(plain->port, "80");
  EXPECT_EQ(plain->path_prefix, "");

  auto full = ParseBaseUrl("http://127.0.0.1:8081/svc/v2/");
  ASSERT_TRUE(full.ok()) << full.status().ToString();
  EXPECT_EQ(full->host, "127.0.0.1");
  EXPECT_EQ(full->port, "8081");
  EXPECT_EQ(full->path_prefix, "/svc/v2");

  auto root = ParseBaseUrl("HTTP://host:1/");
  ASSERT_TRUE(root.ok()) << root.status().ToString();
  EXPECT_EQ(root->path_prefix, "");

  auto v6 = ParseBaseUrl("http://[::1]:9000/p");
  ASSERT_TRUE(v6.ok()) << v6.status().ToString();
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, "9000");
  EXPECT_EQ(v6->path_prefix, "/p");
}

TEST(ParseBaseUrlTest, RejectsOtherSchemesAndJunk) {
  auto https = ParseBaseUrl("https://catalog:443");
  ASSERT_FALSE(https.ok());
  EXPECT_EQ(https.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(https.status().message().find("https"), std::string::npos) << https.status().message();

  for (const std::string bad : {"", "catalog:80", "ftp://x", "http://", "http://:80", "http://h:0", "http://h:70000",
                                "http://h:x", "http://h:", "http://h/p?q=1", "http://h/p#f", "http://[::1",
                                "http://h st", "http://a:b:c"}) {
    EXPECT_FALSE(ParseBaseUrl(bad).ok()) << bad;
  }

  auto creds = ParseBaseUrl("http://user:hunter2@h:80");
  ASSERT_FALSE(creds.ok());
  EXPECT_EQ(creds.status().message().find("hunter2"), std::string::npos);
}

TEST(HttpTransportCreateTest, BadBaseUrlNamesTheService) {
  net::io_context io;
  auto created = HttpTransport::Create(io, {{Service::kInventory, "https://inventory"}});
  ASSERT_FALSE(created.ok());
  EXPECT_NE(created.status().message().find("inventory"), std::string::npos) << created.status().message();
}

}  // namespace
}  // namespace bff
