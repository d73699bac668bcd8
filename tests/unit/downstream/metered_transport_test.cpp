// MeteredTransport: every downstream call counted and timed once, per service and outcome.
#include "downstream/metered_transport.h"

#include <gtest/gtest.h>

#include <optional>

namespace bff {
namespace {

using std::chrono::milliseconds;

std::string Sample(const std::string& text, const std::string& series) {
  size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return "";
  size_t v = at + series.size() + 2;
  return text.substr(v, text.find('\n', v) - v);
}

// Answers with `next` after `delay` of virtual time.
class ScriptedTransport : public Transport {
 public:
  explicit ScriptedTransport(ManualScheduler& s) : s_(s) {}
  void Send(Service, HttpRequest, TimePoint, ResponseCallback done) override {
    StatusOr<HttpResponse> r = next;
    s_.RunAfter(delay, [done, r] { done(r); });
  }
  ManualScheduler& s_;
  StatusOr<HttpResponse> next = HttpResponse::Json(200, "{}");
  milliseconds delay{5};
};

class MeteredTransportTest : public ::testing::Test {
 protected:
  MeteredTransportTest() : inner_(sched_), metered_(inner_, sched_, metrics_) {}

  StatusOr<HttpResponse> Call(Service s, StatusOr<HttpResponse> answer) {
    inner_.next = std::move(answer);
    std::optional<StatusOr<HttpResponse>> out;
    metered_.Send(s, HttpRequest{}, TimePoint::max(), [&](StatusOr<HttpResponse> r) { out = std::move(r); });
    while (!out && sched_.AdvanceToNext()) {
    }
    EXPECT_TRUE(out.has_value());
    return out ? *out : StatusOr<HttpResponse>(Internal("no answer"));
  }

  ManualScheduler sched_;
  MetricsRegistry metrics_;
  ScriptedTransport inner_;
  MeteredTransport metered_;
};

TEST_F(MeteredTransportTest, OutcomesArePerServiceAndAnswersPassThroughUnchanged) {
  auto ok = Call(Service::kCatalog, HttpResponse::Json(200, R"({"sku":"a"})"));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->body, R"({"sku":"a"})");
  EXPECT_EQ(Call(Service::kCatalog, HttpResponse::Json(404, "{}"))->status, 404);
  Call(Service::kCatalog, HttpResponse::Json(429, "{}"));
  Call(Service::kReviews, HttpResponse::Json(503, "{}"));
  auto down = Call(Service::kReviews, Unavailable("reviews: connection refused"));
  EXPECT_EQ(down.status().code(), StatusCode::kUnavailable);
  Call(Service::kInventory, DeadlineExceeded("inventory: timed out"));

  std::string text = metrics_.Render();
  EXPECT_EQ(Sample(text, R"(bffd_downstream_requests_total{service="catalog",outcome="ok"})"), "1");
  EXPECT_EQ(Sample(text, R"(bffd_downstream_requests_total{service="catalog",outcome="client_error"})"), "1");
  EXPECT_EQ(Sample(text, R"(bffd_downstream_requests_total{service="catalog",outcome="error"})"), "1");
  EXPECT_EQ(Sample(text, R"(bffd_downstream_requests_total{service="reviews",outcome="error"})"), "2");
  EXPECT_EQ(Sample(text, R"(bffd_downstream_requests_total{service="inventory",outcome="timeout"})"), "1");
  // Every (service, outcome) pair is exposed from the start, so a rate over it is never "no data".
  EXPECT_EQ(Sample(text, R"(bffd_downstream_requests_total{service="identity",outcome="timeout"})"), "0");
  // 5 ms of virtual time each.
  EXPECT_EQ(Sample(text, R"(bffd_downstream_request_duration_seconds_count{service="reviews",outcome="error"})"), "2");
  EXPECT_EQ(Sample(text, R"(bffd_downstream_request_duration_seconds_bucket{service="reviews",outcome="error",le="0.0025"})"), "0");
  EXPECT_EQ(Sample(text, R"(bffd_downstream_request_duration_seconds_bucket{service="reviews",outcome="error",le="0.005"})"), "2");
}

}  // namespace
}  // namespace bff
