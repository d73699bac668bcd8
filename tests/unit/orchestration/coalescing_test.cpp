// Coalescing: identical in-flight reads share one downstream call; writes and distinct reads do not.
#include "orchestration/coalescing_transport.h"

#include <gtest/gtest.h>

#include <vector>

namespace bff {
namespace {

using std::chrono::milliseconds;

// Counts requests and answers them only when told to.
class HeldTransport : public Transport {
 public:
  void Send(Service, HttpRequest req, TimePoint, ResponseCallback done) override {
    requests.push_back(req);
    pending.push_back(std::move(done));
  }
  void AnswerAll(int status, const std::string& body) {
    auto p = std::move(pending);
    pending.clear();
    for (auto& d : p) {
      HttpResponse r;
      r.status = status;
      r.body = body;
      d(r);
    }
  }
  std::vector<HttpRequest> requests;
  std::vector<ResponseCallback> pending;
};

HttpRequest GetReq(const std::string& path) {
  HttpRequest r;
  r.method = "GET";
  r.path = path;
  return r;
}

TEST(CoalescingTransportTest, HundredConcurrentIdenticalReadsMakeOneDownstreamCall) {
  ManualScheduler sched;
  HeldTransport inner;
  CoalescingTransport t(inner, sched);
  int answered = 0;
  for (int i = 0; i < 100; ++i) {
    t.Send(Service::kCatalog, GetReq("/catalog/v1/products/SKU-10001"), sched.Now() + milliseconds(500),
           [&](StatusOr<HttpResponse> r) {
             ASSERT_TRUE(r.ok());
             EXPECT_EQ(r->body, "{\"sku\":\"SKU-10001\"}");
             ++answered;
           });
  }
  EXPECT_EQ(inner.requests.size(), 1u);
  inner.AnswerAll(200, "{\"sku\":\"SKU-10001\"}");
  sched.RunReady();
  EXPECT_EQ(answered, 100);
  EXPECT_EQ(t.downstream_calls(), 1u);
  EXPECT_EQ(t.coalesced_calls(), 99u);
  // Once answered, the next read goes downstream again (no stale caching here).
  t.Send(Service::kCatalog, GetReq("/catalog/v1/products/SKU-10001"), sched.Now() + milliseconds(500), [](StatusOr<HttpResponse>) {});
  EXPECT_EQ(inner.requests.size(), 2u);
}

TEST(CoalescingTransportTest, DistinctTargetsAndWritesAreNotCoalesced) {
  ManualScheduler sched;
  HeldTransport inner;
  CoalescingTransport t(inner, sched);
  t.Send(Service::kCatalog, GetReq("/catalog/v1/products/SKU-10001"), TimePoint::max(), [](StatusOr<HttpResponse>) {});
  t.Send(Service::kCatalog, GetReq("/catalog/v1/products/SKU-10002"), TimePoint::max(), [](StatusOr<HttpResponse>) {});
  t.Send(Service::kReviews, GetReq("/catalog/v1/products/SKU-10001"), TimePoint::max(), [](StatusOr<HttpResponse>) {});
  HttpRequest post;
  post.method = "POST";
  post.path = "/cart/v1/carts/u-1001/items";
  t.Send(Service::kCart, post, TimePoint::max(), [](StatusOr<HttpResponse>) {});
  t.Send(Service::kCart, post, TimePoint::max(), [](StatusOr<HttpResponse>) {});
  EXPECT_EQ(inner.requests.size(), 5u);
}

TEST(CoalescingTransportTest, WaiterWithShorterDeadlineTimesOutAlone) {
  ManualScheduler sched;
  HeldTransport inner;
  CoalescingTransport t(inner, sched);
  std::optional<Status> first, second;
  t.Send(Service::kCatalog, GetReq("/catalog/v1/products/SKU-10001"), sched.Now() + milliseconds(500),
         [&](StatusOr<HttpResponse> r) { first = r.status(); });
  t.Send(Service::kCatalog, GetReq("/catalog/v1/products/SKU-10001"), sched.Now() + milliseconds(20),
         [&](StatusOr<HttpResponse> r) { second = r.status(); });
  sched.Advance(milliseconds(30));
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->code(), StatusCode::kDeadlineExceeded);
  EXPECT_FALSE(first.has_value());
  inner.AnswerAll(200, "{}");
  sched.RunReady();
  ASSERT_TRUE(first.has_value());
  EXPECT_TRUE(first->ok());
}

}  // namespace
}  // namespace bff
