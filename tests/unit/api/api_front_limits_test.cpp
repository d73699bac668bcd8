// ApiFront's per-client limits: one bucket per client address (behind trusted proxies, the client
// they name), per user and per login name; past a limit, a 429 JSON error that says when to retry.
#include "api/api.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <optional>

namespace bff {
namespace {

using std::chrono::milliseconds;

class ApiFrontLimitsTest : public ::testing::Test {
 protected:
  ApiFront& Front(HttpRateLimits limits) {
    ApiFront::Options o;
    o.limiter = &limiter_;
    o.limits = std::move(limits);
    front_.emplace(o, sched_);
    front_->Route("GET", "/mobile/v1/products/{sku}", "mobile", [this](std::shared_ptr<ApiCall>, Respond respond) {
      ++handled_;
      respond(HttpResponse::Json(200, "{}"));
    });
    front_->Route("POST", "/mobile/v1/cart/items", "mobile", [this](std::shared_ptr<ApiCall> call, Respond respond) {
      if (auto refused = call->ChargeUser(call->http().headers.Get("X-User"))) return respond(std::move(*refused));
      ++handled_;
      respond(HttpResponse::Json(200, "{}"));
    });
    front_->Route("POST", "/mobile/v1/auth/token", "mobile", [this](std::shared_ptr<ApiCall> call, Respond respond) {
      if (auto refused = call->ChargeLogin(call->http().headers.Get("X-User"))) return respond(std::move(*refused));
      ++handled_;
      respond(HttpResponse::Json(200, "{}"));
    });
    return *front_;
  }

  HttpResponse Send(const std::string& peer, const std::string& method = "GET",
                    const std::string& path = "/mobile/v1/products/SKU-1", const std::string& user = "",
                    const std::string& forwarded_for = "") {
    HttpRequest r;
    r.method = method;
    r.path = path;
    r.peer = peer;
    if (!user.empty()) r.headers.Set("X-User", user);
    if (!forwarded_for.empty()) r.headers.Set("X-Forwarded-For", forwarded_for);
    std::optional<HttpResponse> out;
    front_->Handle(r, [&](HttpResponse resp) { out = std::move(resp); });
    sched_.RunReady();
    EXPECT_TRUE(out.has_value());
    return out ? *out : HttpResponse{};
  }

  ManualScheduler sched_;
  TokenBucketLimiter limiter_{sched_};
  std::optional<ApiFront> front_;
  int handled_ = 0;
};

HttpRateLimits ClientLimit(double rps, double burst) {
  HttpRateLimits l;
  l.client_rps = rps;
  l.client_burst = burst;
  return l;
}

TEST_F(ApiFrontLimitsTest, AClientPastItsBurstGets429WithRetryAfterAndOthersGoOn) {
  Front(ClientLimit(0.5, 3));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Send("198.51.100.1").status, 200) << i;
  HttpResponse refused = Send("198.51.100.1");
  EXPECT_EQ(refused.status, 429);
  EXPECT_EQ(refused.headers.Get("Retry-After"), "2");  // one token every 2 s
  auto body = nlohmann::json::parse(refused.body);
  EXPECT_EQ(body["error"]["code"], "rate_limited");
  EXPECT_FALSE(body["error"]["trace_id"].get<std::string>().empty());
  EXPECT_FALSE(refused.headers.Get("traceparent").empty());
  EXPECT_EQ(handled_, 3) << "a refused request reached its handler";

  EXPECT_EQ(Send("198.51.100.2").status, 200) << "another client paid for the first one";
  sched_.Advance(milliseconds(2000));
  EXPECT_EQ(Send("198.51.100.1").status, 200);
  EXPECT_EQ(Send("198.51.100.1").status, 429);
}

TEST_F(ApiFrontLimitsTest, UnknownPathsAreChargedToo) {
  Front(ClientLimit(1, 2));
  EXPECT_EQ(Send("198.51.100.1", "GET", "/nope/1").status, 404);
  EXPECT_EQ(Send("198.51.100.1", "GET", "/nope/2").status, 404);
  EXPECT_EQ(Send("198.51.100.1", "GET", "/nope/3").status, 429);
}

TEST_F(ApiFrontLimitsTest, BehindATrustedProxyEachForwardedClientHasItsOwnBucket) {
  HttpRateLimits limits = ClientLimit(1, 2);
  limits.trusted_proxies.push_back(*IpNetwork::Parse("127.0.0.1"));
  Front(limits);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(Send("127.0.0.1", "GET", "/mobile/v1/products/SKU-1", "", "203.0.113.1").status, 200);
    EXPECT_EQ(Send("127.0.0.1", "GET", "/mobile/v1/products/SKU-1", "", "203.0.113.2").status, 200);
  }
  EXPECT_EQ(Send("127.0.0.1", "GET", "/mobile/v1/products/SKU-1", "", "203.0.113.1").status, 429);
  EXPECT_EQ(Send("127.0.0.1", "GET", "/mobile/v1/products/SKU-1", "", "203.0.113.3").status, 200);
  // An untrusted peer's header changes nothing: it is one client, however it signs.
  EXPECT_EQ(Send("198.51.100.9", "GET", "/mobile/v1/products/SKU-1", "", "203.0.113.4").status, 200);
  EXPECT_EQ(Send("198.51.100.9", "GET", "/mobile/v1/products/SKU-1", "", "203.0.113.5").status, 200);
  EXPECT_EQ(Send("198.51.100.9", "GET", "/mobile/v1/products/SKU-1", "", "203.0.113.6").status, 429);
}

TEST_F(ApiFrontLimitsTest, UsersAndLoginNamesHaveBucketsOfTheirOwn) {
  HttpRateLimits limits;
  limits.user_rps = 1;
  limits.user_burst = 2;
  limits.logins_per_minute = 6;  // one every 10 s
  limits.login_burst = 1;
  Front(limits);
  // Many addresses, one user: the user's bucket is what empties.
  EXPECT_EQ(Send("198.51.100.1", "POST", "/mobile/v1/cart/items", "alice").status, 200);
  EXPECT_EQ(Send("198.51.100.2", "POST", "/mobile/v1/cart/items", "alice").status, 200);
  EXPECT_EQ(Send("198.51.100.3", "POST", "/mobile/v1/cart/items", "alice").status, 429);
  EXPECT_EQ(Send("198.51.100.3", "POST", "/mobile/v1/cart/items", "bob").status, 200);

  EXPECT_EQ(Send("198.51.100.1", "POST", "/mobile/v1/auth/token", "carol").status, 200);
  HttpResponse guess = Send("198.51.100.4", "POST", "/mobile/v1/auth/token", "carol");
  EXPECT_EQ(guess.status, 429);
  EXPECT_EQ(guess.headers.Get("Retry-After"), "10");
  // A login name is not a user id: "alice" logging in is not charged to alice's request bucket.
  EXPECT_EQ(Send("198.51.100.1", "POST", "/mobile/v1/auth/token", "alice").status, 200);
}

TEST_F(ApiFrontLimitsTest, ARateOfZeroIsNoLimit) {
  Front(HttpRateLimits{});
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(Send("198.51.100.1", "POST", "/mobile/v1/cart/items", "alice").status, 200);
  EXPECT_EQ(handled_, 1000);
}

}  // namespace
}  // namespace bff
