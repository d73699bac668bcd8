// The add-to-cart chain shared by the mobile and web BFFs.
#include "orchestration/add_to_cart.h"

#include <atomic>
#include <ctime>

#include "common/log.h"

namespace bff {
namespace {

std::atomic<uint64_t> g_analytics_failed{0};

std::string NowRfc3339() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

uint64_t AnalyticsEventsFailed() { return g_analytics_failed.load(); }

void AddToCart(DownstreamClients& clients, const RequestContext& ctx, const std::string& sku, int qty,
               const AddToCartOptions& options, std::function<void(StatusOr<nlohmann::json>)> done) {
  Scheduler& sched = clients.caller().scheduler();
  clients.inventory().GetStock(
      ctx, sched.Now() + options.inventory_timeout, sku,
      [&clients, ctx, sku, qty, options, done = std::move(done), &sched](StatusOr<nlohmann::json> stock) mutable {
        if (!stock.ok()) {
          done(stock.status());
          return;
        }
        int64_t available = stock->value("available", int64_t{0});
        if (available < qty) {
          done(FailedPrecondition("out of stock: " + std::to_string(available) + " available for " + sku));
          return;
        }
        clients.cart().AddItem(
            ctx, sched.Now() + options.cart_timeout, ctx.subject, sku, qty,
            [&clients, ctx, sku, qty, options, done = std::move(done), &sched](StatusOr<nlohmann::json> cart) {
              if (!cart.ok()) {
                done(cart.status());
                return;
              }
              // Answer first; the event follows on its own and cannot hold the client back.
              done(cart);
              nlohmann::json event = {{"type", "add_to_cart"}, {"user_id", ctx.subject}, {"sku", sku},
                                      {"qty", qty}, {"client", ctx.client}, {"at", NowRfc3339()}};
              std::string trace_id = ctx.trace.trace_id;
              RequestContext event_ctx = ctx;
              event_ctx.deadline = TimePoint::max();  // the request is answered; the event has its own timeout
              clients.analytics().RecordEvent(event_ctx, sched.Now() + options.analytics_timeout, event,
                                              [trace_id](StatusOr<nlohmann::json> r) {
                                                if (r.ok()) return;
                                                g_analytics_failed.fetch_add(1);
                                                log::Warn("analytics event not recorded",
                                                          {{"reason", r.status().message()}}, trace_id);
                                              });
            });
      });
}

}  // namespace bff
