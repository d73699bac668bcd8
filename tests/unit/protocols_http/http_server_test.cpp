// Tests for the Boost.Beast HTTP front over real loopback sockets.
#include "protocols/http/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/loopback_connection.h"
#include "support/test_support.h"

namespace bff {
namespace {

using namespace std::chrono_literals;
using bff::testing::WaitFor;

constexpr int kConcurrentClients = 128;

using Connection = bff::testing::LoopbackConnection;
using Reply = bff::testing::RawReply;
using bff::testing::Lower;

std::string Get(const std::string& target, const std::string& extra_headers = {}) {
  return "GET " + target + " HTTP/1.1\r\nHost: test\r\n" + extra_headers + "\r\n";
}

std::optional<Reply> RoundTrip(uint16_t port, const std::string& request, bool head_request = false) {
  Connection c(port);
  if (!c.connected() || !c.Send(request)) return std::nullopt;
  return c.Read(head_request);
}

HttpServerOptions TestOptions() {
  HttpServerOptions o;
  o.host = "127.0.0.1";
  o.port = 0;
  o.threads = 2;
  return o;
}

std::unique_ptr<HttpServer> MustStart(HttpServerOptions options, HttpAsyncHandler handler) {
  auto server = HttpServer::Start(std::move(options), std::move(handler));
  EXPECT_TRUE(server.ok()) << server.status().ToString();
  return server.ok() ? std::move(server).value() : nullptr;
}

HttpAsyncHandler Echo(const std::string& body = "ok") {
  return [body](HttpRequest, std::function<void(HttpResponse)> respond) {
    HttpResponse r;
    r.headers.Set("Content-Type", "text/plain");
    r.body = body;
    respond(std::move(r));
  };
}

// Answers {} and counts the requests that reached it.
HttpAsyncHandler CountingEmptyJson(std::atomic<int>& calls) {
  return [&calls](HttpRequest, std::function<void(HttpResponse)> respond) {
    ++calls;
    respond(HttpResponse::Json(200, "{}"));
  };
}

bool IsLowerHex(std::string_view s, size_t n) {
  return s.size() == n && std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// "00-<trace id>-<16 hex>-<2 hex>"
bool IsTraceparentOf(std::string_view header, const std::string& trace_id) {
  if (header.size() != 55 || header.substr(0, 3) != "00-" || header.substr(3, 32) != trace_id) return false;
  return header[35] == '-' && IsLowerHex(header.substr(36, 16), 16) && header[52] == '-' && IsLowerHex(header.substr(53, 2), 2);
}

// The error body and the headers every error this adapter produces itself must carry.
void ExpectJsonError(const Reply& reply, int status, const std::string& code) {
  EXPECT_EQ(reply.status, status);
  EXPECT_EQ(reply.Header("content-type"), "application/json");
  auto body = nlohmann::json::parse(reply.body, nullptr, false);
  ASSERT_FALSE(body.is_discarded()) << reply.body;
  EXPECT_EQ(body["error"]["code"], code) << reply.body;
  EXPECT_TRUE(body["error"]["message"].is_string()) << reply.body;
  std::string trace_id = body["error"]["trace_id"].get<std::string>();
  EXPECT_TRUE(IsLowerHex(trace_id, 32)) << trace_id;
  EXPECT_TRUE(IsTraceparentOf(reply.Header("traceparent"), trace_id)) << reply.Header("traceparent");
  const std::string timing = reply.Header("server-timing");
  EXPECT_TRUE(timing.rfind("total;dur=", 0) == 0 && timing.size() > 10 &&
              std::all_of(timing.begin() + 10, timing.end(), [](char c) { return c >= '0' && c <= '9'; }))
      << timing;
}

// Holds answers the test gives later, from its own thread.
class HeldRequests {
 public:
  HttpAsyncHandler Handler() {
    return [this](HttpRequest req, std::function<void(HttpResponse)> respond) {
      std::lock_guard lock(mu_);
      held_.push_back({std::move(req), std::move(respond)});
    };
  }
  size_t count() {
    std::lock_guard lock(mu_);
    return held_.size();
  }
  std::function<void(HttpResponse)> respond(size_t i) {
    std::lock_guard lock(mu_);
    return held_.at(i).second;
  }

 private:
  std::mutex mu_;
  std::vector<std::pair<HttpRequest, std::function<void(HttpResponse)>>> held_;
};

TEST(HttpServerTest, RoundTripCarriesMethodPathRawQueryHeadersAndBody) {
  std::mutex mu;
  std::optional<HttpRequest> seen;
  auto server = MustStart(TestOptions(), [&](HttpRequest req, std::function<void(HttpResponse)> respond) {
    {
      std::lock_guard lock(mu);
      seen = req;
    }
    HttpResponse r;
    r.status = 201;
    r.headers.Set("Content-Type", "application/json");
    r.headers.Set("X-Reply", "yes");
    r.headers.Set("Content-Length", "999");  // framing is the server's business, not the handler's
    r.body = R"({"made":true})";
    respond(std::move(r));
  });
  ASSERT_TRUE(server);

  auto reply = RoundTrip(server->port(),
                         "POST /a%20b/c?x=1&y=%2Fz&x=2 HTTP/1.1\r\nHost: test\r\nX-Test: value\r\n"
                         "Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello");
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, 201);
  EXPECT_EQ(reply->Header("x-reply"), "yes");
  EXPECT_EQ(reply->Header("content-type"), "application/json");
  EXPECT_EQ(reply->Header("content-length"), "13");
  EXPECT_EQ(reply->body, R"({"made":true})");

  std::lock_guard lock(mu);
  ASSERT_TRUE(seen);
  EXPECT_EQ(seen->method, "POST");
  EXPECT_EQ(seen->path, "/a b/c");
  EXPECT_EQ(seen->query, "x=1&y=%2Fz&x=2");
  EXPECT_EQ(seen->QueryParam("y"), "/z");
  EXPECT_EQ(seen->headers.Get("x-test"), "value");
  EXPECT_EQ(seen->headers.Get("host"), "test");
  EXPECT_FALSE(seen->headers.Has("REMOTE_ADDR"));
  EXPECT_FALSE(seen->headers.Has("LOCAL_PORT"));
  EXPECT_EQ(seen->body, "hello");
  EXPECT_EQ(seen->peer, "127.0.0.1");
}

TEST(HttpServerTest, EachRequestNamesTheAddressItCameFrom) {
  std::mutex mu;
  std::vector<std::string> peers;
  auto server = MustStart(TestOptions(), [&](HttpRequest req, std::function<void(HttpResponse)> respond) {
    {
      std::lock_guard lock(mu);
      peers.push_back(req.peer);
    }
    respond(HttpResponse::Json(200, "{}"));
  });
  ASSERT_TRUE(server);
  for (const char* source : {"127.0.0.2", "127.0.0.3"}) {
    Connection c(server->port(), source);
    ASSERT_TRUE(c.connected()) << source;
    ASSERT_TRUE(c.Send(Get("/")));
    ASSERT_TRUE(c.Read());
  }
  std::lock_guard lock(mu);
  EXPECT_EQ(peers, (std::vector<std::string>{"127.0.0.2", "127.0.0.3"}));
}

TEST(HttpServerTest, EveryMethodReachesTheHandler) {
  std::mutex mu;
  std::vector<std::string> methods;
  auto server = MustStart(TestOptions(), [&](HttpRequest req, std::function<void(HttpResponse)> respond) {
    {
      std::lock_guard lock(mu);
      methods.push_back(req.method);
    }
    respond(HttpResponse::Json(200, "{}"));
  });
  ASSERT_TRUE(server);
  for (std::string m : {"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}) {
    std::string body = m == "GET" || m == "OPTIONS" ? "" : "Content-Length: 2\r\n\r\n{}";
    std::string request = m + " /x HTTP/1.1\r\nHost: t\r\n" + (body.empty() ? "\r\n" : body);
    auto reply = RoundTrip(server->port(), request);
    ASSERT_TRUE(reply) << m;
    EXPECT_EQ(reply->status, 200) << m;
  }
  std::lock_guard lock(mu);
  EXPECT_EQ(methods, (std::vector<std::string>{"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}));
}

TEST(HttpServerTest, HeadGetsHeadersWithoutBody) {
  std::string seen_method;
  auto server = MustStart(TestOptions(), [&](HttpRequest req, std::function<void(HttpResponse)> respond) {
    seen_method = req.method;
    respond(HttpResponse::Json(200, R"({"a":1})"));
  });
  ASSERT_TRUE(server);
  Connection c(server->port());
  ASSERT_TRUE(c.Send("HEAD /p HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto head = c.Read(/*head_request=*/true);
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->Header("content-length"), "7");
  EXPECT_FALSE(head->Has("accept-ranges"));
  // The next answer on the connection parses cleanly only if the HEAD answer carried no body bytes.
  ASSERT_TRUE(c.Send(Get("/p")));
  auto get = c.Read();
  ASSERT_TRUE(get);
  EXPECT_EQ(get->body, R"({"a":1})");
}

TEST(HttpServerTest, NotModifiedAndNoContentCarryNoBodyAndNoLength) {
  auto server = MustStart(TestOptions(), [](HttpRequest req, std::function<void(HttpResponse)> respond) {
    HttpResponse r;
    r.status = req.path == "/etag" ? 304 : 204;
    r.headers.Set("ETag", "\"abc\"");
    r.headers.Set("Cache-Control", "public, max-age=60");
    respond(std::move(r));
  });
  ASSERT_TRUE(server);
  Connection c(server->port());
  ASSERT_TRUE(c.Send(Get("/etag", "If-None-Match: \"abc\"\r\n")));
  auto not_modified = c.Read();
  ASSERT_TRUE(not_modified);
  EXPECT_EQ(not_modified->status, 304);
  EXPECT_EQ(not_modified->Header("etag"), "\"abc\"");
  EXPECT_EQ(not_modified->Header("cache-control"), "public, max-age=60");
  EXPECT_FALSE(not_modified->Has("content-length"));
  EXPECT_TRUE(not_modified->body.empty());
  ASSERT_TRUE(c.Send(Get("/empty")));
  auto no_content = c.Read();
  ASSERT_TRUE(no_content);
  EXPECT_EQ(no_content->status, 204);
  EXPECT_FALSE(no_content->Has("content-length"));
}

TEST(HttpServerTest, HandlerErrorsPassThroughUntouched) {
  auto server = MustStart(TestOptions(), [](HttpRequest, std::function<void(HttpResponse)> respond) {
    respond(HttpResponse::Json(404, R"({"error":{"code":"not_found","message":"no sku","trace_id":"t"}})"));
  });
  ASSERT_TRUE(server);
  auto reply = RoundTrip(server->port(), Get("/mobile/v1/products/NOPE"));
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, 404);
  EXPECT_EQ(reply->body, R"({"error":{"code":"not_found","message":"no sku","trace_id":"t"}})");
}

TEST(HttpServerTest, AsyncHandlerAnswersFromAnotherThread) {
  HeldRequests held;
  auto server = MustStart(TestOptions(), held.Handler());
  ASSERT_TRUE(server);
  auto reply = std::async(std::launch::async, [&] { return RoundTrip(server->port(), Get("/later")); });
  ASSERT_TRUE(WaitFor([&] { return held.count() == 1; }));
  EXPECT_EQ(server->in_flight(), 1u);
  held.respond(0)(HttpResponse::Json(200, R"({"from":"elsewhere"})"));
  auto r = reply.get();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, R"({"from":"elsewhere"})");
  EXPECT_TRUE(WaitFor([&] { return server->in_flight() == 0; }));
}

TEST(HttpServerTest, HandlerThatNeverAnswersGets504Json) {
  HeldRequests held;
  auto options = TestOptions();
  options.handler_timeout = 200ms;
  auto server = MustStart(options, held.Handler());
  ASSERT_TRUE(server);
  auto reply = RoundTrip(server->port(), Get("/slow", "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n"));
  ASSERT_TRUE(reply);
  ExpectJsonError(*reply, 504, "deadline_exceeded");
  // The caller's trace continues in the error.
  EXPECT_EQ(nlohmann::json::parse(reply->body)["error"]["trace_id"], "0af7651916cd43dd8448eb211c80319c");
  EXPECT_EQ(server->handler_timeouts(), 1u);
  EXPECT_EQ(server->in_flight(), 0u);
  // A late answer lands nowhere and breaks nothing.
  ASSERT_EQ(held.count(), 1u);
  held.respond(0)(HttpResponse::Json(200, "{}"));
  auto next = RoundTrip(server->port(), Get("/slow"));
  ASSERT_TRUE(next);
  EXPECT_EQ(next->status, 504);
}

TEST(HttpServerTest, HandlerThatThrowsGets500Json) {
  auto server = MustStart(TestOptions(), [](HttpRequest, std::function<void(HttpResponse)>) {
    throw std::runtime_error("secret detail");
  });
  ASSERT_TRUE(server);
  auto reply = RoundTrip(server->port(), Get("/boom"));
  ASSERT_TRUE(reply);
  ExpectJsonError(*reply, 500, "internal");
  EXPECT_EQ(reply->body.find("secret"), std::string::npos);
  EXPECT_EQ(server->in_flight(), 0u);
}

TEST(HttpServerTest, BodyOverTheLimitGets413JsonWithoutReachingTheHandler) {
  std::atomic<int> calls{0};
  auto options = TestOptions();
  options.max_body_bytes = 16;
  auto server = MustStart(options, CountingEmptyJson(calls));
  ASSERT_TRUE(server);
  std::string body(100, 'x');
  auto reply = RoundTrip(server->port(), "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n" + body);
  ASSERT_TRUE(reply);
  ExpectJsonError(*reply, 413, "payload_too_large");
  EXPECT_EQ(reply->Header("server-timing").rfind("total;dur=", 0), 0u) << reply->Header("server-timing");
  EXPECT_EQ(calls.load(), 0);

  auto small = RoundTrip(server->port(), "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 16\r\n\r\n" + body.substr(0, 16));
  ASSERT_TRUE(small);
  EXPECT_EQ(small->status, 200);
  EXPECT_EQ(calls.load(), 1);
}

TEST(HttpServerTest, MalformedRequestsGet400Json) {
  std::atomic<int> calls{0};
  auto server = MustStart(TestOptions(), CountingEmptyJson(calls));
  ASSERT_TRUE(server);
  for (std::string bad : {"GARBAGE\r\n\r\n", "GET /x HTTP/9.9\r\n\r\n", "TRACE /x HTTP/1.1\r\nHost: t\r\n\r\n"}) {
    auto reply = RoundTrip(server->port(), bad);
    ASSERT_TRUE(reply) << bad;
    ExpectJsonError(*reply, 400, "bad_request");
  }
  EXPECT_EQ(calls.load(), 0);
}

TEST(HttpServerTest, RangeHeadersAreIgnored) {
  auto server = MustStart(TestOptions(), Echo("0123456789"));
  ASSERT_TRUE(server);
  auto reply = RoundTrip(server->port(), Get("/r", "Range: bytes=2-4\r\n"));
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, 200);
  EXPECT_EQ(reply->body, "0123456789");
  EXPECT_FALSE(reply->Has("content-range"));
}

TEST(HttpServerTest, OnlyLargeBodiesAreCompressedAndThenVaryOnEncoding) {
  const std::string large = "{\"pad\":\"" + std::string(4096, 'a') + "\"}";
  auto server = MustStart(TestOptions(), [&](HttpRequest req, std::function<void(HttpResponse)> respond) {
    respond(HttpResponse::Json(200, req.path == "/large" ? large : R"({"small":true})"));
  });
  ASSERT_TRUE(server);
  auto small = RoundTrip(server->port(), Get("/small", "Accept-Encoding: gzip\r\n"));
  ASSERT_TRUE(small);
  EXPECT_FALSE(small->Has("content-encoding"));
  EXPECT_EQ(small->body, R"({"small":true})");

  auto big = RoundTrip(server->port(), Get("/large", "Accept-Encoding: gzip\r\n"));
  ASSERT_TRUE(big);
  EXPECT_EQ(big->Header("content-encoding"), "gzip");
  EXPECT_EQ(Lower(big->Header("vary")), "accept-encoding");
  EXPECT_LT(big->body.size(), large.size());

  auto identity = RoundTrip(server->port(), Get("/large"));
  ASSERT_TRUE(identity);
  EXPECT_FALSE(identity->Has("content-encoding"));
  EXPECT_EQ(identity->body, large);
}

TEST(HttpServerTest, KeepAliveConnectionServesManyRequests) {
  std::atomic<int> calls{0};
  auto server = MustStart(TestOptions(), [&](HttpRequest req, std::function<void(HttpResponse)> respond) {
    ++calls;
    respond(HttpResponse::Json(200, "{\"path\":\"" + req.path + "\"}"));
  });
  ASSERT_TRUE(server);
  Connection c(server->port());
  ASSERT_TRUE(c.connected());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(c.Send(Get("/k" + std::to_string(i))));
    auto reply = c.Read();
    ASSERT_TRUE(reply) << i;
    EXPECT_EQ(reply->status, 200);
    EXPECT_EQ(reply->body, "{\"path\":\"/k" + std::to_string(i) + "\"}");
    EXPECT_NE(Lower(reply->Header("connection")), "close");
  }
  EXPECT_EQ(calls.load(), 3);
}

TEST(HttpServerTest, IdleConnectionsDoNotHoldTheOneThread) {
  auto options = TestOptions();
  options.threads = 1;
  auto server = MustStart(options, Echo());
  ASSERT_TRUE(server);
  // Idle keep-alive connections, one of them mid-request, would each hold a worker in a thread-per-connection
  // server; here they wait on the event loop and the one thread still serves everybody else.
  std::vector<std::unique_ptr<Connection>> idle;
  for (int i = 0; i < 8; ++i) {
    idle.push_back(std::make_unique<Connection>(server->port()));
    ASSERT_TRUE(idle.back()->connected());
  }
  ASSERT_TRUE(idle[0]->Send(Get("/held")));
  ASSERT_TRUE(idle[0]->Read());
  ASSERT_TRUE(idle[1]->Send("GET /half HTTP/1.1\r\nHost: t\r\n"));
  EXPECT_TRUE(WaitFor([&] { return server->open_connections() == idle.size(); }));
  auto reply = RoundTrip(server->port(), Get("/other"));
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, 200);
  idle.clear();
  EXPECT_TRUE(WaitFor([&] { return server->open_connections() == 0; }));
}

TEST(HttpServerTest, ConnectionsPastTheLimitAreRefusedAndCounted) {
  auto options = TestOptions();
  options.max_connections = 2;
  auto server = MustStart(options, Echo());
  ASSERT_TRUE(server);
  Connection first(server->port());
  Connection second(server->port());
  ASSERT_TRUE(first.Send(Get("/1")) && first.Read());
  ASSERT_TRUE(second.Send(Get("/2")) && second.Read());
  // The third is told at once and closed.
  Connection third(server->port());
  ASSERT_TRUE(third.connected());
  auto refused = third.Read();
  ASSERT_TRUE(refused);
  ExpectJsonError(*refused, 503, "unavailable");
  EXPECT_EQ(refused->Header("retry-after"), "1");
  EXPECT_TRUE(third.WaitClosed());
  EXPECT_EQ(server->refused_connections(), 1u);
  // The two open connections are unaffected.
  ASSERT_TRUE(first.Send(Get("/1")));
  auto again = first.Read();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 200);
}

TEST(HttpServerTest, PipelinedRequestsAreAnsweredInOrder) {
  auto server = MustStart(TestOptions(), [](HttpRequest req, std::function<void(HttpResponse)> respond) {
    respond(HttpResponse::Json(200, "{\"path\":\"" + req.path + "\"}"));
  });
  ASSERT_TRUE(server);
  Connection c(server->port());
  ASSERT_TRUE(c.Send(Get("/p1") + "POST /p2 HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}" + Get("/p3")));
  for (const char* path : {"/p1", "/p2", "/p3"}) {
    auto reply = c.Read();
    ASSERT_TRUE(reply) << path;
    EXPECT_EQ(reply->body, std::string("{\"path\":\"") + path + "\"}");
  }
}

TEST(HttpServerTest, ConnectionCloseIsHonoured) {
  auto server = MustStart(TestOptions(), Echo());
  ASSERT_TRUE(server);
  Connection c(server->port());
  ASSERT_TRUE(c.Send(Get("/bye", "Connection: close\r\n")));
  auto reply = c.Read();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, 200);
  EXPECT_EQ(Lower(reply->Header("connection")), "close");
  EXPECT_TRUE(c.WaitClosed());
}

TEST(HttpServerTest, HeadersPastTheLimitGet431Json) {
  std::atomic<int> calls{0};
  auto options = TestOptions();
  options.max_header_bytes = 1024;
  auto server = MustStart(options, CountingEmptyJson(calls));
  ASSERT_TRUE(server);
  auto reply = RoundTrip(server->port(), Get("/big", "X-Pad: " + std::string(2048, 'p') + "\r\n"));
  ASSERT_TRUE(reply);
  ExpectJsonError(*reply, 431, "header_too_large");
  EXPECT_EQ(calls.load(), 0);
  auto fits = RoundTrip(server->port(), Get("/fits", "X-Pad: " + std::string(512, 'p') + "\r\n"));
  ASSERT_TRUE(fits);
  EXPECT_EQ(fits->status, 200);
}

TEST(HttpServerTest, HeadersThatStopArrivingGet408AndAreCounted) {
  auto options = TestOptions();
  options.header_timeout = 100ms;
  auto server = MustStart(options, Echo());
  ASSERT_TRUE(server);
  Connection c(server->port());
  ASSERT_TRUE(c.Send("GET /slow HTTP/1.1\r\nHost: t\r\n"));
  auto reply = c.Read();
  ASSERT_TRUE(reply);
  ExpectJsonError(*reply, 408, "request_timeout");
  EXPECT_TRUE(c.WaitClosed());
  EXPECT_EQ(server->timeouts(HttpTimeout::kHeader), 1u);
  EXPECT_EQ(server->timeouts(HttpTimeout::kBody), 0u);
}

TEST(HttpServerTest, BodyShorterThanItsLengthGets408AndIsCounted) {
  std::atomic<int> calls{0};
  auto options = TestOptions();
  options.body_timeout = 100ms;
  auto server = MustStart(options, CountingEmptyJson(calls));
  ASSERT_TRUE(server);
  Connection c(server->port());
  ASSERT_TRUE(c.Send("POST /short HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly ten.."));
  auto reply = c.Read();
  ASSERT_TRUE(reply);
  ExpectJsonError(*reply, 408, "request_timeout");
  EXPECT_EQ(server->timeouts(HttpTimeout::kBody), 1u);
  EXPECT_EQ(calls.load(), 0);
}

TEST(HttpServerTest, IdleKeepAliveConnectionIsClosedAndCounted) {
  auto options = TestOptions();
  options.idle_timeout = 100ms;
  auto server = MustStart(options, Echo());
  ASSERT_TRUE(server);
  Connection never_asked(server->port());
  Connection asked_once(server->port());
  ASSERT_TRUE(asked_once.Send(Get("/once")));
  auto reply = asked_once.Read();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->Header("keep-alive"), "timeout=1, max=100000");
  EXPECT_TRUE(never_asked.WaitClosed());
  EXPECT_TRUE(asked_once.WaitClosed());
  EXPECT_EQ(server->timeouts(HttpTimeout::kIdle), 2u);
  EXPECT_TRUE(WaitFor([&] { return server->open_connections() == 0; }));
}

TEST(HttpServerTest, AnswerTheClientDoesNotReadIsAbandonedAfterTheWriteTimeout) {
  const std::string large(64 << 20, 'x');
  auto options = TestOptions();
  options.write_timeout = 200ms;
  auto server = MustStart(options, [&](HttpRequest, std::function<void(HttpResponse)> respond) {
    HttpResponse r;
    r.headers.Set("Content-Type", "application/octet-stream");
    r.body = large;
    respond(std::move(r));
  });
  ASSERT_TRUE(server);
  Connection c(server->port());
  ASSERT_TRUE(c.Send(Get("/large")));
  // The client reads nothing; 64 MiB does not fit in the socket buffers, so the write stalls until its limit.
  EXPECT_TRUE(WaitFor([&] { return server->open_connections() == 0; }));
}

TEST(HttpServerTest, KeepAliveEndsAfterTheConfiguredRequestCount) {
  auto options = TestOptions();
  options.keep_alive_max_requests = 2;
  auto server = MustStart(options, Echo());
  ASSERT_TRUE(server);
  Connection c(server->port());
  ASSERT_TRUE(c.Send(Get("/1") + Get("/2") + Get("/3")));
  auto first = c.Read();
  auto second = c.Read();
  ASSERT_TRUE(first && second);
  EXPECT_NE(Lower(first->Header("connection")), "close");
  EXPECT_EQ(Lower(second->Header("connection")), "close");
  EXPECT_TRUE(c.WaitClosed());
}

TEST(HttpServerTest, PortHeldByAnotherSocketFailsNamingTheAddress) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(fd, 16), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  uint16_t port = ntohs(addr.sin_port);

  auto options = TestOptions();
  options.port = port;
  auto server = HttpServer::Start(options, Echo());
  ::close(fd);
  ASSERT_FALSE(server.ok());
  EXPECT_NE(server.status().message().find("127.0.0.1:" + std::to_string(port)), std::string::npos)
      << server.status().message();
}

TEST(HttpServerTest, SecondServerOnTheSamePortFails) {
  auto first = MustStart(TestOptions(), Echo("first"));
  ASSERT_TRUE(first);
  auto options = TestOptions();
  options.port = first->port();
  auto second = HttpServer::Start(options, Echo("second"));
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("127.0.0.1:" + std::to_string(first->port())), std::string::npos);
  auto reply = RoundTrip(first->port(), Get("/"));
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->body, "first");
}

// The listen queue as the kernel reports it (ss's Send-Q for a listening socket), or -1 when ss is missing.
int ListenBacklogOf(uint16_t port) {
  std::string cmd = "ss -Hltn 'sport = :" + std::to_string(port) + "' 2>/dev/null";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return -1;
  char line[512] = {};
  std::string out;
  while (std::fgets(line, sizeof(line), p) != nullptr) out += line;
  ::pclose(p);
  char state[32] = {};
  int recv_q = 0, send_q = -1;
  if (std::sscanf(out.c_str(), "%31s %d %d", state, &recv_q, &send_q) != 3) return -1;
  return send_q;
}

int SoMaxConn() {
  std::ifstream f("/proc/sys/net/core/somaxconn");
  int v = 0;
  f >> v;
  return v;
}

TEST(HttpServerTest, ListenBacklogIsRaisedFromLibraryDefault) {
  auto options = TestOptions();
  options.listen_backlog = 512;
  auto server = MustStart(options, Echo());
  ASSERT_TRUE(server);
  int backlog = ListenBacklogOf(server->port());
  if (backlog < 0) GTEST_SKIP() << "ss (iproute2) not available";
  EXPECT_EQ(backlog, std::min(512, SoMaxConn()));
}

TEST(HttpServerTest, ManyClientsConnectingAtOnceAreAllServed) {
  auto options = TestOptions();
  options.threads = 2;  // far fewer threads than clients: none is lost
  std::atomic<int> calls{0};
  auto server = MustStart(options, CountingEmptyJson(calls));
  ASSERT_TRUE(server);
  std::vector<std::unique_ptr<Connection>> clients;
  for (int i = 0; i < kConcurrentClients; ++i) clients.push_back(std::make_unique<Connection>(server->port()));
  for (auto& c : clients) {
    ASSERT_TRUE(c->connected());
    ASSERT_TRUE(c->Send(Get("/burst", "Connection: close\r\n")));
  }
  int ok = 0;
  for (auto& c : clients) {
    auto reply = c->Read();
    if (reply && reply->status == 200) ++ok;
  }
  EXPECT_EQ(ok, kConcurrentClients);
  EXPECT_EQ(calls.load(), kConcurrentClients);
}

TEST(HttpServerTest, StopLetsTheRequestInFlightFinishAndRefusesNewConnections) {
  HeldRequests held;
  auto server = MustStart(TestOptions(), held.Handler());
  ASSERT_TRUE(server);
  const uint16_t port = server->port();
  auto reply = std::async(std::launch::async, [&] { return RoundTrip(port, Get("/inflight")); });
  ASSERT_TRUE(WaitFor([&] { return held.count() == 1; }));

  auto stopped = std::async(std::launch::async, [&] { server->Stop(); });
  EXPECT_TRUE(WaitFor([&] { return !Connection(port).connected(); })) << "still accepting after Stop()";
  EXPECT_NE(stopped.wait_for(0s), std::future_status::ready) << "Stop() returned with a request in flight";

  held.respond(0)(HttpResponse::Json(200, R"({"finished":true})"));
  auto r = reply.get();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, R"({"finished":true})");
  ASSERT_EQ(stopped.wait_for(10s), std::future_status::ready);
  server->Stop();  // idempotent
}

TEST(HttpServerTest, StopRightAfterStartAndDestructionAreClean) {
  for (int i = 0; i < 20; ++i) {
    auto server = MustStart(TestOptions(), Echo());
    ASSERT_TRUE(server);
    if (i % 2 == 0) server->Stop();
  }
}

TEST(HttpServerTest, RejectsInvalidOptions) {
  auto options = TestOptions();
  options.threads = 0;
  EXPECT_FALSE(HttpServer::Start(options, Echo()).ok());
  options = TestOptions();
  options.max_connections = 0;
  EXPECT_FALSE(HttpServer::Start(options, Echo()).ok());
  options = TestOptions();
  options.header_timeout = 0ms;
  EXPECT_FALSE(HttpServer::Start(options, Echo()).ok());
  EXPECT_FALSE(HttpServer::Start(TestOptions(), nullptr).ok());
}

}  // namespace
}  // namespace bff
