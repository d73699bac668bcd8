// Tests for the asynchronous HTTP listener over real loopback sockets.
#include "server/http_listener.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/http.hpp>
#include <gtest/gtest.h>

#include "support/test_support.h"

namespace bff {
namespace {

namespace net = boost::asio;
namespace http = boost::beast::http;
using namespace std::chrono_literals;
using bff::testing::WaitFor;

constexpr auto kIoTimeout = 5s;

// A blocking loopback client with deadlines on every read, so a server bug fails a test instead of hanging it.
class RawConnection {
 public:
  explicit RawConnection(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~RawConnection() { Close(); }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  bool connected() const { return connected_; }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  bool Send(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Reads one whole response; nullopt on timeout, EOF or a malformed answer.
  std::optional<http::response<http::string_body>> ReadResponse(std::chrono::milliseconds timeout = kIoTimeout) {
    http::response_parser<http::string_body> parser;
    parser.eager(true);
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      if (!pending_.empty()) {
        boost::beast::error_code ec;
        size_t used = parser.put(net::buffer(pending_), ec);
        pending_.erase(0, used);
        if (ec && ec != http::error::need_more) return std::nullopt;
        if (parser.is_done()) return parser.release();
        if (!ec && used > 0) continue;
      }
      int got = ReadSome(deadline);
      if (got < 0) return std::nullopt;
      if (got == 0) {
        boost::beast::error_code ec;
        parser.put_eof(ec);
        if (!ec && parser.is_done()) return parser.release();
        return std::nullopt;
      }
    }
  }

  // True when the server closes the connection (EOF or reset) before the timeout; bytes read go to `data`.
  bool WaitForClose(std::chrono::milliseconds timeout = kIoTimeout, std::string* data = nullptr) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      int got = ReadSome(deadline);
      if (got == 0 || got == -2) {
        if (data) *data += pending_;
        return true;
      }
      if (got < 0) return false;
    }
  }

 private:
  // >0 bytes appended to pending_, 0 on EOF, -1 on timeout, -2 on reset.
  int ReadSome(std::chrono::steady_clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return -1;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return -1;
    char buf[4096];
    ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    if (n < 0) return -2;
    pending_.append(buf, static_cast<size_t>(n));
    return static_cast<int>(n);
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string pending_;
};

std::string SimpleGet(std::string_view target, std::string_view extra_headers = "") {
  return "GET " + std::string(target) + " HTTP/1.1\r\nHost: test\r\n" + std::string(extra_headers) + "\r\n";
}

// Holds respond callbacks until the test releases them.
class Parked {
 public:
  void Add(std::function<void(HttpResponse)> respond) {
    std::lock_guard<std::mutex> lock(mu_);
    responds_.push_back(std::move(respond));
  }
  size_t size() {
    std::lock_guard<std::mutex> lock(mu_);
    return responds_.size();
  }
  void ReleaseAll(int status = 200, std::string body = "released") {
    std::vector<std::function<void(HttpResponse)>> take;
    {
      std::lock_guard<std::mutex> lock(mu_);
      take.swap(responds_);
    }
    for (auto& respond : take) {
      HttpResponse res;
      res.status = status;
      res.body = body;
      respond(std::move(res));
    }
  }

 private:
  std::mutex mu_;
  std::vector<std::function<void(HttpResponse)>> responds_;
};

class HttpListenerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { io_.run(); });
  }

  void TearDown() override {
    if (listener_) listener_->Stop();
    work_.reset();
    io_.stop();
    for (auto& t : threads_) t.join();
  }

  void Start(HttpHandler handler, HttpListenerOptions options = {}) {
    auto created = HttpListener::Create(io_, "127.0.0.1", 0, std::move(handler), options);
    ASSERT_TRUE(created.ok()) << created.status().ToString();
    listener_ = created.value();
    ASSERT_NE(listener_->port(), 0);
  }

  uint16_t port() const { return listener_->port(); }

  net::io_context io_;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work_{io_.get_executor()};
  std::vector<std::thread> threads_;
  std::shared_ptr<HttpListener> listener_;
};

TEST_F(HttpListenerTest, AnswersGetWithStatusHeadersAndBody) {
  std::promise<HttpRequest> seen;
  Start([&](HttpRequest req, std::function<void(HttpResponse)> respond) {
    seen.set_value(req);
    HttpResponse res;
    res.status = 201;
    res.headers.Set("X-Reply", "yes");
    res.headers.Set("Content-Type", "text/plain");
    res.body = "hello";
    respond(std::move(res));
  });

  RawConnection c(port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.Send(SimpleGet("/a%20b/c?x=1&y=%20z", "X-Test: v1\r\n")));
  auto res = c.ReadResponse();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 201u);
  EXPECT_EQ((*res)["X-Reply"], "yes");
  EXPECT_EQ((*res)[http::field::content_length], "5");
  EXPECT_EQ(res->body(), "hello");
  EXPECT_TRUE(res->keep_alive());

  auto fut = seen.get_future();
  ASSERT_EQ(fut.wait_for(kIoTimeout), std::future_status::ready);
  HttpRequest req = fut.get();
  EXPECT_EQ(req.method, "GET");
  EXPECT_EQ(req.path, "/a b/c");
  EXPECT_EQ(req.query, "x=1&y=%20z");
  EXPECT_EQ(req.headers.Get("x-test"), "v1");
  EXPECT_EQ(req.headers.Get("Host"), "test");
}

TEST_F(HttpListenerTest, PostBodyReachesHandler) {
  std::promise<HttpRequest> seen;
  Start([&](HttpRequest req, std::function<void(HttpResponse)> respond) {
    seen.set_value(req);
    respond(HttpResponse::Json(202, "{}"));
  });
  RawConnection c(port());
  ASSERT_TRUE(c.Send("POST /in HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world"));
  auto res = c.ReadResponse();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 202u);
  EXPECT_EQ((*res)[http::field::content_type], "application/json");
  auto fut = seen.get_future();
  ASSERT_EQ(fut.wait_for(kIoTimeout), std::future_status::ready);
  HttpRequest req = fut.get();
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.body, "hello world");
}

TEST_F(HttpListenerTest, HandlerAnswersLaterFromTimer) {
  Start([&](HttpRequest, std::function<void(HttpResponse)> respond) {
    auto timer = std::make_shared<net::steady_timer>(io_, 20ms);
    timer->async_wait([timer, respond](const boost::system::error_code&) {
      HttpResponse res;
      res.body = "from timer";
      respond(std::move(res));
    });
  });
  RawConnection c(port());
  ASSERT_TRUE(c.Send(SimpleGet("/later")));
  auto res = c.ReadResponse();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 200u);
  EXPECT_EQ(res->body(), "from timer");
}

TEST_F(HttpListenerTest, HandlerAnswersFromAnotherThreadAndInFlightCounts) {
  Parked parked;
  Start([&](HttpRequest, std::function<void(HttpResponse)> respond) { parked.Add(std::move(respond)); });
  RawConnection c(port());
  ASSERT_TRUE(c.Send(SimpleGet("/parked")));
  ASSERT_TRUE(WaitFor([&] { return parked.size() == 1; }));
  EXPECT_EQ(listener_->in_flight(), 1u);
  EXPECT_EQ(listener_->open_connections(), 1u);

  std::thread other([&] { parked.ReleaseAll(200, "from another thread"); });
  other.join();
  auto res = c.ReadResponse();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body(), "from another thread");
  EXPECT_TRUE(WaitFor([&] { return listener_->in_flight() == 0; }));
}

TEST_F(HttpListenerTest, KeepAliveServesRequestsInSequence) {
  std::atomic<int> calls{0};
  Start([&](HttpRequest req, std::function<void(HttpResponse)> respond) {
    ++calls;
    HttpResponse res;
    res.body = req.path;
    respond(std::move(res));
  });
  RawConnection c(port());
  ASSERT_TRUE(c.Send(SimpleGet("/one")));
  auto first = c.ReadResponse();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->body(), "/one");
  ASSERT_TRUE(c.Send(SimpleGet("/two")));
  auto second = c.ReadResponse();
  ASSERT_TRUE(second);
  EXPECT_EQ(second->body(), "/two");
  EXPECT_EQ(calls.load(), 2);
  EXPECT_EQ(listener_->open_connections(), 1u);
}

TEST_F(HttpListenerTest, ConnectionCloseRequestIsAnsweredThenClosed) {
  Start([&](HttpRequest, std::function<void(HttpResponse)> respond) { respond(HttpResponse{}); });
  RawConnection c(port());
  ASSERT_TRUE(c.Send(SimpleGet("/bye", "Connection: close\r\n")));
  auto res = c.ReadResponse();
  ASSERT_TRUE(res);
  EXPECT_FALSE(res->keep_alive());
  EXPECT_TRUE(c.WaitForClose());
}

TEST_F(HttpListenerTest, OversizedBodyGets413AndClose) {
  std::atomic<int> calls{0};
  HttpListenerOptions options;
  options.max_body_bytes = 1000;
  Start(
      [&](HttpRequest, std::function<void(HttpResponse)> respond) {
        ++calls;
        respond(HttpResponse{});
      },
      options);
  RawConnection c(port());
  std::string body(5000, 'x');
  ASSERT_TRUE(c.Send("POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n" + body));
  auto res = c.ReadResponse();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 413u);
  EXPECT_EQ((*res)[http::field::content_type], "application/json");
  EXPECT_NE(res->body().find("\"code\":\"payload_too_large\""), std::string::npos) << res->body();
  EXPECT_NE(res->body().find("\"message\""), std::string::npos);
  EXPECT_FALSE(res->keep_alive());
  EXPECT_TRUE(c.WaitForClose());
  EXPECT_EQ(calls.load(), 0);
}

TEST_F(HttpListenerTest, GarbageGets400AndClose) {
  std::atomic<int> calls{0};
  Start([&](HttpRequest, std::function<void(HttpResponse)> respond) {
    ++calls;
    respond(HttpResponse{});
  });
  RawConnection c(port());
  ASSERT_TRUE(c.Send("\x01\x02\x03 not http at all\r\n\r\n"));
  auto res = c.ReadResponse();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 400u);
  EXPECT_NE(res->body().find("\"error\""), std::string::npos);
  EXPECT_TRUE(c.WaitForClose());
  EXPECT_EQ(calls.load(), 0);
}

TEST_F(HttpListenerTest, OversizedHeaderIsRefused) {
  HttpListenerOptions options;
  options.max_header_bytes = 1024;
  Start([&](HttpRequest, std::function<void(HttpResponse)> respond) { respond(HttpResponse{}); }, options);
  RawConnection c(port());
  ASSERT_TRUE(c.Send(SimpleGet("/h", "X-Big: " + std::string(4000, 'a') + "\r\n")));
  auto res = c.ReadResponse();
  ASSERT_TRUE(res);
  EXPECT_TRUE(res->result_int() == 431u || res->result_int() == 400u) << res->result_int();
  EXPECT_TRUE(c.WaitForClose());
}

TEST_F(HttpListenerTest, IdleConnectionIsClosedAfterIdleTimeout) {
  HttpListenerOptions options;
  options.idle_timeout_ms = 100;
  Start([&](HttpRequest, std::function<void(HttpResponse)> respond) { respond(HttpResponse{}); }, options);
  RawConnection c(port());
  ASSERT_TRUE(c.Send(SimpleGet("/x")));
  ASSERT_TRUE(c.ReadResponse());
  EXPECT_TRUE(c.WaitForClose());
  EXPECT_TRUE(WaitFor([&] { return listener_->open_connections() == 0; }));
}

TEST_F(HttpListenerTest, StopLetsInFlightRequestFinishAndRefusesNewConnections) {
  Parked parked;
  Start([&](HttpRequest, std::function<void(HttpResponse)> respond) { parked.Add(std::move(respond)); });
  RawConnection busy(port());
  ASSERT_TRUE(busy.Send(SimpleGet("/slow")));
  RawConnection idle(port());
  ASSERT_TRUE(idle.connected());
  ASSERT_TRUE(WaitFor([&] { return parked.size() == 1 && listener_->open_connections() == 2; }));
  EXPECT_EQ(listener_->in_flight(), 1u);

  listener_->Stop();
  RawConnection late(port());
  EXPECT_FALSE(late.connected());
  EXPECT_TRUE(idle.WaitForClose());

  parked.ReleaseAll(200, "finished");
  auto res = busy.ReadResponse();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body(), "finished");
  EXPECT_FALSE(res->keep_alive());  // carries Connection: close
  EXPECT_TRUE(busy.WaitForClose());
  EXPECT_TRUE(WaitFor([&] { return listener_->in_flight() == 0 && listener_->open_connections() == 0; }));
}

TEST_F(HttpListenerTest, DroppedRespondCallbackAnswers500) {
  Start([&](HttpRequest, std::function<void(HttpResponse)>) {});
  RawConnection c(port());
  ASSERT_TRUE(c.Send(SimpleGet("/forgotten")));
  auto res = c.ReadResponse();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 500u);
  EXPECT_TRUE(WaitFor([&] { return listener_->in_flight() == 0; }));
}

TEST_F(HttpListenerTest, SecondAnswerIsIgnored) {
  Start([&](HttpRequest, std::function<void(HttpResponse)> respond) {
    HttpResponse first;
    first.body = "first";
    respond(first);
    HttpResponse second;
    second.body = "second";
    respond(second);
  });
  RawConnection c(port());
  ASSERT_TRUE(c.Send(SimpleGet("/twice")));
  auto res = c.ReadResponse();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body(), "first");
  ASSERT_TRUE(c.Send(SimpleGet("/again")));
  auto next = c.ReadResponse();
  ASSERT_TRUE(next);
  EXPECT_EQ(next->body(), "first");
}

TEST_F(HttpListenerTest, HeadAnnouncesLengthWithoutBody) {
  Start([&](HttpRequest, std::function<void(HttpResponse)> respond) {
    HttpResponse res;
    res.body = "twelve bytes";
    respond(std::move(res));
  });
  RawConnection c(port());
  ASSERT_TRUE(c.Send("HEAD /h HTTP/1.1\r\nHost: t\r\n\r\n"));
  // A response parser needs to be told a HEAD answer has no body; read the raw header instead.
  std::string raw;
  ASSERT_TRUE(c.Send(SimpleGet("/after", "Connection: close\r\n")));
  ASSERT_TRUE(c.WaitForClose(kIoTimeout, &raw));
  size_t first_end = raw.find("\r\n\r\n");
  ASSERT_NE(first_end, std::string::npos);
  std::string head = raw.substr(0, first_end);
  EXPECT_NE(head.find("Content-Length: 12"), std::string::npos) << head;
  // The next bytes are the second response, so the HEAD answer carried no body.
  EXPECT_EQ(raw.compare(first_end + 4, 8, "HTTP/1.1"), 0) << raw;
}

TEST_F(HttpListenerTest, MaxConnectionsPausesAccepting) {
  std::atomic<size_t> max_seen{0};
  HttpListenerOptions options;
  options.max_connections = 1;
  Start(
      [&](HttpRequest, std::function<void(HttpResponse)> respond) {
        size_t open = listener_->open_connections();
        size_t prev = max_seen.load();
        while (open > prev && !max_seen.compare_exchange_weak(prev, open)) {
        }
        respond(HttpResponse{});
      },
      options);
  RawConnection first(port());
  ASSERT_TRUE(first.Send(SimpleGet("/1")));
  ASSERT_TRUE(first.ReadResponse());
  RawConnection second(port());  // the kernel completes the handshake; the listener does not accept yet
  ASSERT_TRUE(second.Send(SimpleGet("/2")));
  first.Close();
  auto res = second.ReadResponse();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 200u);
  EXPECT_EQ(max_seen.load(), 1u);
}

TEST_F(HttpListenerTest, HandlerExceptionAnswers500) {
  Start([&](HttpRequest, std::function<void(HttpResponse)>) { throw std::runtime_error("boom"); });
  RawConnection c(port());
  ASSERT_TRUE(c.Send(SimpleGet("/throws")));
  auto res = c.ReadResponse();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 500u);
}

TEST_F(HttpListenerTest, BindFailureIsReported) {
  Start([&](HttpRequest, std::function<void(HttpResponse)> respond) { respond(HttpResponse{}); });
  auto again = HttpListener::Create(io_, "127.0.0.1", port(), [](HttpRequest, std::function<void(HttpResponse)>) {});
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.status().message().find(std::to_string(port())), std::string::npos) << again.status().message();
}

TEST(ParseHostPortTest, AcceptsHostPortForms) {
  auto v4 = ParseHostPort("127.0.0.1:8080");
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(v4->first, "127.0.0.1");
  EXPECT_EQ(v4->second, 8080);

  auto v6 = ParseHostPort("[::1]:80");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->first, "::1");
  EXPECT_EQ(v6->second, 80);

  auto any = ParseHostPort(":9000");
  ASSERT_TRUE(any.ok());
  EXPECT_EQ(any->first, "0.0.0.0");
  EXPECT_EQ(any->second, 9000);

  auto name = ParseHostPort("localhost:0");
  ASSERT_TRUE(name.ok());
  EXPECT_EQ(name->first, "localhost");
  EXPECT_EQ(name->second, 0);

  auto top = ParseHostPort("host:65535");
  ASSERT_TRUE(top.ok());
  EXPECT_EQ(top->second, 65535);
}

TEST(ParseHostPortTest, RejectsJunkNamingTheValue) {
  for (const std::string bad : {"", "8080", "host:", "host:http", "host:65536", "host:-1", "::1:80", "[::1]80",
                                "[::1:80", "[nope]:80", "ho st:80", "host:123456"}) {
    auto parsed = ParseHostPort(bad);
    EXPECT_FALSE(parsed.ok()) << bad;
    if (!parsed.ok()) {
      EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
      EXPECT_NE(parsed.status().message().find("'" + bad + "'"), std::string::npos) << parsed.status().message();
    }
  }
}

}  // namespace
}  // namespace bff
