// bffd's HTTP front against hostile and broken clients, as the other users of a real bffd process notice it.
#include <gtest/gtest.h>

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <future>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/loopback_connection.h"
#include "support/processes.h"

namespace bff::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Short limits keep the whole file to seconds; bffd ships with longer ones (config/bffd.toml).
constexpr int kHeaderTimeoutMs = 1500;
constexpr int kBodyTimeoutMs = 1000;
constexpr int kIdleTimeoutMs = 2000;
constexpr int kMaxHeaderBytes = 4096;
constexpr int kMaxBodyBytes = 1024;
constexpr int kIdleConnections = 10000;
// Slack on top of a limit for the answer to arrive on a shared, busy machine.
constexpr auto kSlack = 1500ms;
// What "answered promptly" means for the well-behaved client next to a hostile one.
constexpr auto kPrompt = 2s;
constexpr char kProduct[] = "/mobile/v1/products/SKU-10001";

std::string TestConfig() {
  return "[server]\nhttp_threads = 2\n"
         "http_header_timeout_ms = " + std::to_string(kHeaderTimeoutMs) + "\n"
         "http_body_timeout_ms = " + std::to_string(kBodyTimeoutMs) + "\n"
         "http_idle_timeout_ms = " + std::to_string(kIdleTimeoutMs) + "\n"
         "http_max_header_bytes = " + std::to_string(kMaxHeaderBytes) + "\n"
         "max_body_bytes = " + std::to_string(kMaxBodyBytes) + "\n"
         "http_max_connections = " + std::to_string(kIdleConnections + 2000) + "\n"
         "[iot]\ndemo_fleet = 0\n[mqtt]\nenabled = false\n[domain]\npassword_iterations = 1000\n"
         // The well-behaved client asks as fast as it is answered, past any per-address limit; those
         // limits are HttpRateLimitTest's subject.
         "[rate_limit]\nclient_rps = 0\n";
}

using RawClient = LoopbackConnection;
using Reply = RawReply;

std::string Get(const std::string& target, const std::string& extra = {}) {
  return "GET " + target + " HTTP/1.1\r\nHost: bffd\r\n" + extra + "\r\n";
}

void ExpectJsonError(const Reply& r, int status, const std::string& code) {
  EXPECT_EQ(r.status, status) << r.body;
  EXPECT_EQ(r.Header("content-type"), "application/json");
  auto body = nlohmann::json::parse(r.body, nullptr, false);
  ASSERT_FALSE(body.is_discarded()) << r.body;
  EXPECT_EQ(body["error"]["code"], code) << r.body;
  EXPECT_EQ(body["error"]["trace_id"].get<std::string>().size(), 32u) << r.body;
}

size_t OpenFds(int pid) {
  size_t n = 0;
  DIR* d = ::opendir(("/proc/" + std::to_string(pid) + "/fd").c_str());
  if (d == nullptr) return 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(d);
  return n;
}

class HttpHostileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Enough descriptors for the 10,000 idle sockets here; bffd inherits the limit and raises its own.
    rlimit lim{};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &lim), 0);
    lim.rlim_cur = lim.rlim_max;
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &lim), 0);
    std::string config = dir_.path() + "/bffd.toml";
    std::ofstream(config) << TestConfig();
    bffd_ = std::make_unique<BffdProcess>(dir_.path(), std::vector<std::string>{"--config", config});
    ASSERT_TRUE(bffd_->ready()) << bffd_->process().Stderr();
    // The cache is warm and the front answers before any hostile client arrives.
    ASSERT_TRUE(AnsweredPromptly());
  }

  // A well-behaved client on its own connection gets the product, quickly.
  bool AnsweredPromptly() {
    const auto started = Clock::now();
    RawClient c(bffd_->http_port());
    if (!c.connected() || !c.Send(Get(kProduct))) return false;
    auto r = c.Read(false, kPrompt);
    EXPECT_TRUE(r && r->status == 200) << (r ? r->body : std::string("no answer"));
    return r && r->status == 200 && Clock::now() - started < kPrompt;
  }

  double Metric(const std::string& series) {
    auto r = http_.Get(bffd_->admin_url(), "/metrics");
    if (!r.ok()) return -1;
    size_t at = r->body.find("\n" + series + " ");
    if (at == std::string::npos) return -1;
    return std::stod(r->body.substr(at + series.size() + 2));
  }

  TempDir dir_;
  TestHttpClient http_;
  std::unique_ptr<BffdProcess> bffd_;
};

TEST_F(HttpHostileTest, SlowlorisIsCutOffAtTheHeaderTimeoutWhileOthersAreServed) {
  std::atomic<bool> done{false};
  auto slowloris = std::async(std::launch::async, [&] {
    RawClient c(bffd_->http_port());
    const std::string header = "GET /mobile/v1/products/SKU-10001 HTTP/1.1\r\nHost: bffd\r\nX-Slow: " + std::string(64, 'z');
    const auto started = Clock::now();
    bool cut_off = false;
    // One byte a second, and a look for bffd's answer in between.
    for (char ch : header) {
      if (!c.Send(std::string(1, ch))) break;
      if (c.WaitClosed(1000ms)) {
        cut_off = true;
        break;
      }
    }
    done = true;
    return cut_off ? Clock::now() - started : Clock::duration::max();
  });
  int served = 0;
  while (!done) {
    EXPECT_TRUE(AnsweredPromptly());
    ++served;
  }
  const auto took = slowloris.get();
  EXPECT_LT(took, std::chrono::milliseconds(kHeaderTimeoutMs) + kSlack) << "the slow client kept its connection";
  EXPECT_GE(took, std::chrono::milliseconds(kHeaderTimeoutMs) - 100ms);
  EXPECT_GT(served, 0);
  EXPECT_GE(Metric("bffd_http_timeouts_total{kind=\"header\"}"), 1);
}

TEST_F(HttpHostileTest, SlowHeadersAreTold408) {
  RawClient c(bffd_->http_port());
  ASSERT_TRUE(c.Send("GET /mobile/v1/products/SKU-10001 HTTP/1.1\r\nHost: bffd\r\n"));
  auto r = c.Read(false, std::chrono::milliseconds(kHeaderTimeoutMs) + kSlack);
  ASSERT_TRUE(r);
  ExpectJsonError(*r, 408, "request_timeout");
  EXPECT_TRUE(c.WaitClosed(kSlack));
}

TEST_F(HttpHostileTest, HalfOpenConnectionsAreClosedAndTheirDescriptorsFreed) {
  const size_t fds_before = OpenFds(bffd_->process().pid());
  RawClient silent(bffd_->http_port());       // connects and never sends
  RawClient half(bffd_->http_port());         // sends half a request and vanishes
  ASSERT_TRUE(silent.connected() && half.connected());
  ASSERT_TRUE(half.Send("POST /mobile/v1/cart/items HTTP/1.1\r\nHost: bffd\r\nContent-Le"));
  EXPECT_TRUE(half.WaitClosed(std::chrono::milliseconds(kHeaderTimeoutMs) + kSlack));
  EXPECT_TRUE(silent.WaitClosed(std::chrono::milliseconds(kIdleTimeoutMs) + kSlack));
  EXPECT_TRUE(WaitFor([&] { return OpenFds(bffd_->process().pid()) <= fds_before; }, 5s))
      << OpenFds(bffd_->process().pid()) << " descriptors open, " << fds_before << " before the two connections";
  EXPECT_TRUE(AnsweredPromptly());
  EXPECT_GE(Metric("bffd_http_timeouts_total{kind=\"idle\"}"), 1);
  EXPECT_GE(Metric("bffd_http_timeouts_total{kind=\"header\"}"), 1);
}

TEST_F(HttpHostileTest, HeadersPastTheLimitGet431Json) {
  RawClient c(bffd_->http_port());
  ASSERT_TRUE(c.Send(Get(kProduct, "X-Pad: " + std::string(kMaxHeaderBytes * 2, 'p') + "\r\n")));
  auto r = c.Read();
  ASSERT_TRUE(r);
  ExpectJsonError(*r, 431, "header_too_large");
  EXPECT_TRUE(c.WaitClosed(kSlack + 2s));
  EXPECT_TRUE(AnsweredPromptly());
}

TEST_F(HttpHostileTest, BodyPastTheLimitGets413Json) {
  RawClient c(bffd_->http_port());
  const std::string body(kMaxBodyBytes * 4, 'b');
  ASSERT_TRUE(c.Send("POST /mobile/v1/cart/items HTTP/1.1\r\nHost: bffd\r\nContent-Type: application/json\r\n"
                     "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body));
  auto r = c.Read();
  ASSERT_TRUE(r);
  ExpectJsonError(*r, 413, "payload_too_large");
  EXPECT_TRUE(AnsweredPromptly());
}

TEST_F(HttpHostileTest, ContentLengthLongerThanTheBodyGets408AtTheBodyTimeout) {
  RawClient c(bffd_->http_port());
  ASSERT_TRUE(c.Send("POST /mobile/v1/cart/items HTTP/1.1\r\nHost: bffd\r\nContent-Type: application/json\r\n"
                     "Content-Length: 100\r\n\r\n{\"sku\":1}"));
  auto r = c.Read(false, std::chrono::milliseconds(kBodyTimeoutMs) + kSlack);
  ASSERT_TRUE(r);
  ExpectJsonError(*r, 408, "request_timeout");
  EXPECT_GE(Metric("bffd_http_timeouts_total{kind=\"body\"}"), 1);
}

TEST_F(HttpHostileTest, ContentLengthShorterThanTheBodyLeavesBytesThatAreA400) {
  RawClient c(bffd_->http_port());
  // Two bytes of body announced, the rest is read as a next request, which is not HTTP.
  ASSERT_TRUE(c.Send("POST /mobile/v1/cart/items HTTP/1.1\r\nHost: bffd\r\nContent-Type: application/json\r\n"
                     "Content-Length: 2\r\n\r\n{}trailing junk\r\n\r\n"));
  auto first = c.Read();
  ASSERT_TRUE(first);
  EXPECT_NE(first->status, 0);
  auto second = c.Read();
  ASSERT_TRUE(second);
  ExpectJsonError(*second, 400, "bad_request");
  EXPECT_TRUE(c.WaitClosed(kSlack + 2s));
}

TEST_F(HttpHostileTest, TenThousandIdleConnectionsCostNoServiceAndAreClosedByTheIdleTimeout) {
  const int pid = bffd_->process().pid();
  // The metrics scrapes below keep one admin connection open: it is opened before counting.
  ASSERT_TRUE(WaitFor([&] { return Metric("bffd_http_connections_open") == 0; }));
  const size_t fds_before = OpenFds(pid);
  std::vector<std::unique_ptr<RawClient>> idle;
  idle.reserve(kIdleConnections);
  for (int i = 0; i < kIdleConnections; ++i) {
    idle.push_back(std::make_unique<RawClient>(bffd_->http_port()));
    ASSERT_TRUE(idle.back()->connected()) << "connection " << i << ": " << std::strerror(errno);
  }
  ASSERT_TRUE(WaitFor([&] { return OpenFds(pid) >= fds_before + kIdleConnections; }, 10s))
      << OpenFds(pid) << " descriptors in bffd";
  // All of them are held by bffd at once, and another client is still answered promptly.
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(AnsweredPromptly());
  EXPECT_GE(Metric("bffd_http_connections_open"), kIdleConnections);
  // Then the idle limit closes them and bffd is back to its descriptors of before.
  EXPECT_TRUE(WaitFor([&] { return OpenFds(pid) <= fds_before; }, std::chrono::milliseconds(kIdleTimeoutMs) + 15s))
      << OpenFds(pid) << " descriptors in bffd, " << fds_before << " before";
  EXPECT_TRUE(idle.front()->WaitClosed(1s));
  EXPECT_TRUE(idle.back()->WaitClosed(1s));
  EXPECT_GE(Metric("bffd_http_timeouts_total{kind=\"idle\"}"), kIdleConnections);
  EXPECT_TRUE(AnsweredPromptly());
}

// Per-client limits on a real bffd: clients told apart by their address (here, several loopback
// addresses), or by the X-Forwarded-For of a trusted proxy; password attempts limited per account.
constexpr int kClientBurst = 5;
constexpr char kTrustedProxy[] = "127.0.0.9";

class HttpRateLimitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string config = dir_.path() + "/bffd.toml";
    std::ofstream(config) << "[rate_limit]\nclient_rps = 1\nclient_burst = " << kClientBurst
                          << "\nlogins_per_minute = 1\nlogin_burst = 2\ntrusted_proxies = [\"" << kTrustedProxy
                          << "\"]\n[iot]\ndemo_fleet = 0\n[mqtt]\nenabled = false\n[domain]\npassword_iterations = 1000\n";
    bffd_ = std::make_unique<BffdProcess>(dir_.path(), std::vector<std::string>{"--config", config});
    ASSERT_TRUE(bffd_->ready()) << bffd_->process().Stderr();
  }

  std::optional<Reply> From(const char* source, const std::string& request) {
    RawClient c(bffd_->http_port(), source);
    if (!c.connected() || !c.Send(request)) return std::nullopt;
    return c.Read(false, 10s);
  }

  std::optional<Reply> Login(const char* source, const std::string& username, const std::string& password) {
    const std::string body = nlohmann::json{{"username", username}, {"password", password}}.dump();
    return From(source, "POST /web/v1/session HTTP/1.1\r\nHost: bffd\r\nContent-Type: application/json\r\n"
                        "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  }

  double Metric(const std::string& series) {
    auto r = http_.Get(bffd_->admin_url(), "/metrics");
    if (!r.ok()) return -1;
    size_t at = r->body.find("\n" + series + " ");
    if (at == std::string::npos) return 0;
    return std::stod(r->body.substr(at + series.size() + 2));
  }

  TempDir dir_;
  TestHttpClient http_;
  std::unique_ptr<BffdProcess> bffd_;
};

TEST_F(HttpRateLimitTest, AClientPastItsBurstIsTold429AndWhenToRetryWhileOthersAreServed) {
  for (int i = 0; i < kClientBurst; ++i) {
    auto r = From("127.0.0.2", Get(kProduct));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << i << ": " << r->body;
  }
  auto refused = From("127.0.0.2", Get(kProduct));
  ASSERT_TRUE(refused);
  ExpectJsonError(*refused, 429, "rate_limited");
  EXPECT_EQ(refused->Header("retry-after"), "1");
  EXPECT_FALSE(refused->Header("traceparent").empty());

  auto other = From("127.0.0.3", Get(kProduct));
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 200) << "another address paid for the first one's requests";
  EXPECT_GE(Metric("bffd_rate_limited_total{client=\"mobile\"}"), 1);

  // curl from an address of its own: its burst, then 429 with Retry-After.
  std::string codes;
  const std::string curl = "curl -s -o /dev/null -w '%{http_code} ' --interface 127.0.0.4 " + bffd_->http_url() + kProduct;
  for (int i = 0; i <= kClientBurst; ++i) {
    std::string out;
    ASSERT_EQ(RunCommand(curl, &out), 0);
    codes += out;
  }
  EXPECT_EQ(codes, "200 200 200 200 200 429 ");
}

TEST_F(HttpRateLimitTest, BehindATrustedProxyTheForwardedClientIsWhoIsLimited) {
  auto via = [&](const char* client) {
    return From(kTrustedProxy, Get(kProduct, std::string("X-Forwarded-For: ") + client + "\r\n"));
  };
  for (int i = 0; i < kClientBurst; ++i) {
    auto r = via("198.51.100.1");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << i;
  }
  auto refused = via("198.51.100.1");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 429);
  auto other = via("198.51.100.2");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 200) << "the proxy's other clients share its address, not its limit";
  // A peer that is not trusted cannot pass for someone else by writing the header.
  for (int i = 0; i < kClientBurst; ++i) {
    auto r = From("127.0.0.5", Get(kProduct, "X-Forwarded-For: 203.0.113." + std::to_string(i) + "\r\n"));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << i;
  }
  auto spoofer = From("127.0.0.5", Get(kProduct, "X-Forwarded-For: 203.0.113.99\r\n"));
  ASSERT_TRUE(spoofer);
  EXPECT_EQ(spoofer->status, 429);
}

TEST_F(HttpRateLimitTest, PasswordGuessingIsLimitedPerAccountFromEveryAddress) {
  auto first = Login("127.0.0.2", "alice", "guess-1");
  ASSERT_TRUE(first);
  EXPECT_EQ(first->status, 401);
  auto second = Login("127.0.0.3", "alice", "guess-2");
  ASSERT_TRUE(second);
  EXPECT_EQ(second->status, 401);
  // The account's attempts are spent: even the right password waits, from a third address.
  auto third = Login("127.0.0.4", "alice", "demo-alice");
  ASSERT_TRUE(third);
  ExpectJsonError(*third, 429, "rate_limited");
  const int retry_after = std::stoi(third->Header("retry-after"));
  EXPECT_GE(retry_after, 1);
  EXPECT_LE(retry_after, 60);
  // Another account is untouched.
  auto bob = Login("127.0.0.4", "bob", "demo-bob");
  ASSERT_TRUE(bob);
  EXPECT_EQ(bob->status, 201) << bob->body;
}

}  // namespace
}  // namespace bff::testing
