// ApiFront's metrics: answers counted per client, method, route pattern and status; auth failures and
// rate-limit rejections; unmatched paths never become labels.
#include "api/api.h"

#include <gtest/gtest.h>

#include <optional>

namespace bff {
namespace {

// The value of the sample `series` in `text`, or "" when absent.
std::string Sample(const std::string& text, const std::string& series) {
  size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return "";
  size_t v = at + series.size() + 2;
  return text.substr(v, text.find('\n', v) - v);
}

class ApiFrontMetricsTest : public ::testing::Test {
 protected:
  ApiFrontMetricsTest() : front_({}, sched_, &metrics_) {
    front_.Route("GET", "/mobile/v1/products/{sku}", "mobile", [this](std::shared_ptr<ApiCall> call, Respond respond) {
      // Answer after 30 ms of virtual time, 404 for an unknown sku.
      int status = call->param("sku") == "SKU-1" ? 200 : 404;
      sched_.RunAfter(std::chrono::milliseconds(30), [respond, status] { respond(HttpResponse::Json(status, "{}")); });
    });
    front_.Route("POST", "/web/v1/cart/items", "web", [this](std::shared_ptr<ApiCall> call, Respond respond) {
      int status = std::stoi(std::string(call->http().headers.Get("X-Want")));
      respond(HttpResponse::Json(status, "{}"));
    });
  }

  int Send(const std::string& method, const std::string& path, const std::string& want = "") {
    HttpRequest r;
    r.method = method;
    r.path = path;
    if (!want.empty()) r.headers.Set("X-Want", want);
    std::optional<HttpResponse> out;
    front_.Handle(r, [&](HttpResponse resp) { out = std::move(resp); });
    while (!out && sched_.AdvanceToNext()) {
    }
    sched_.RunReady();
    EXPECT_TRUE(out.has_value());
    return out ? out->status : 0;
  }

  ManualScheduler sched_;
  MetricsRegistry metrics_;
  ApiFront front_;
};

TEST_F(ApiFrontMetricsTest, AnswersAreCountedAndTimedPerRoutePattern) {
  EXPECT_EQ(Send("GET", "/mobile/v1/products/SKU-1"), 200);
  EXPECT_EQ(Send("GET", "/mobile/v1/products/SKU-1"), 200);
  EXPECT_EQ(Send("HEAD", "/mobile/v1/products/SKU-1"), 200);
  EXPECT_EQ(Send("GET", "/mobile/v1/products/SKU-2"), 404);
  std::string text = metrics_.Render();
  const std::string labels = R"({client="mobile",method="GET",route="/mobile/v1/products/{sku}",status=)";
  EXPECT_EQ(Sample(text, "bffd_http_requests_total" + labels + "\"200\"}"), "3");
  EXPECT_EQ(Sample(text, "bffd_http_requests_total" + labels + "\"404\"}"), "1");
  EXPECT_EQ(Sample(text, "bffd_http_request_duration_seconds_count" + labels + "\"200\"}"), "3");
  // 30 ms of virtual time each: in the 0.05 s bucket, not the 0.025 s one.
  const std::string bucket = R"(bffd_http_request_duration_seconds_bucket{client="mobile",method="GET",route="/mobile/v1/products/{sku}",status="200",le=)";
  EXPECT_EQ(Sample(text, bucket + "\"0.025\"}"), "0");
  EXPECT_EQ(Sample(text, bucket + "\"0.05\"}"), "3");
  EXPECT_EQ(Sample(text, "bffd_http_request_duration_seconds_sum" + labels + "\"200\"}"), FormatMetricValue(0.03 + 0.03 + 0.03));
  EXPECT_EQ(text.find("SKU-1"), std::string::npos) << "a path parameter became a label";
}

TEST_F(ApiFrontMetricsTest, AuthFailuresAndRateLimitsAreCountedPerClient) {
  EXPECT_EQ(Send("POST", "/web/v1/cart/items", "401"), 401);
  EXPECT_EQ(Send("POST", "/web/v1/cart/items", "403"), 403);
  EXPECT_EQ(Send("POST", "/web/v1/cart/items", "403"), 403);
  EXPECT_EQ(Send("POST", "/web/v1/cart/items", "429"), 429);
  EXPECT_EQ(Send("POST", "/web/v1/cart/items", "200"), 200);
  std::string text = metrics_.Render();
  EXPECT_EQ(Sample(text, R"(bffd_auth_failures_total{client="web",reason="unauthenticated"})"), "1");
  EXPECT_EQ(Sample(text, R"(bffd_auth_failures_total{client="web",reason="forbidden"})"), "2");
  EXPECT_EQ(Sample(text, R"(bffd_rate_limited_total{client="web"})"), "1");
  // Exposed as 0 from the start for every client with a route, so an alert on its rate has data.
  EXPECT_EQ(Sample(text, R"(bffd_auth_failures_total{client="mobile",reason="unauthenticated"})"), "0");
  EXPECT_EQ(Sample(text, R"(bffd_rate_limited_total{client="mobile"})"), "0");
}

TEST_F(ApiFrontMetricsTest, UnmatchedPathsShareOneLabelWhateverTheirPath) {
  for (int i = 0; i < 50; ++i) EXPECT_EQ(Send("GET", "/mobile/v1/odd/" + std::to_string(i)), 404);
  EXPECT_EQ(Send("GET", "/elsewhere"), 404);
  EXPECT_EQ(Send("DELETE", "/mobile/v1/products/SKU-1"), 405);
  EXPECT_EQ(Send("BREW", "/web/v1/pot"), 404);
  std::string text = metrics_.Render();
  EXPECT_EQ(Sample(text, R"(bffd_http_requests_total{client="mobile",method="GET",route="unmatched",status="404"})"), "50");
  EXPECT_EQ(Sample(text, R"(bffd_http_requests_total{client="unknown",method="GET",route="unmatched",status="404"})"), "1");
  EXPECT_EQ(Sample(text, R"(bffd_http_requests_total{client="mobile",method="DELETE",route="unmatched",status="405"})"), "1");
  // A method no route could have is client input too: it is not used as a label.
  EXPECT_EQ(Sample(text, R"(bffd_http_requests_total{client="web",method="other",route="unmatched",status="404"})"), "1");
  EXPECT_EQ(text.find("odd"), std::string::npos);
  EXPECT_EQ(text.find("BREW"), std::string::npos);
}

TEST(ApiFrontWithoutMetricsTest, AnswersAsBefore) {
  ManualScheduler sched;
  ApiFront front({}, sched);
  front.Route("GET", "/web/v1/me", "web", [](std::shared_ptr<ApiCall>, Respond respond) { respond(HttpResponse::Json(200, "{}")); });
  HttpRequest r;
  r.path = "/web/v1/me";
  std::optional<HttpResponse> out;
  front.Handle(r, [&](HttpResponse resp) { out = std::move(resp); });
  sched.RunReady();
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->status, 200);
}

}  // namespace
}  // namespace bff
