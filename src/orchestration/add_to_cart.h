// Add to cart as one client request (anti-corruption layer): check stock → add to cart → record an event.
//
// Stock is checked first (inventory; 409 when fewer are available than asked), then the cart service adds
// the line and answers the cart. The analytics event is fire-and-forget: it never delays or fails the
// answer, and its failure is only logged and counted.
#pragma once

#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "downstream/clients.h"

namespace bff {

struct AddToCartOptions {
  Duration inventory_timeout = std::chrono::milliseconds(1000);
  Duration cart_timeout = std::chrono::milliseconds(2000);
  Duration analytics_timeout = std::chrono::milliseconds(2000);
};

// `ctx.subject` must be the end user; the answer is the cart service's cart
// ({user_id, items[{sku, qty, price}], total, currency}) or a Status: kFailedPrecondition (out of stock),
// kNotFound (unknown sku), kInvalidArgument, kUnavailable, kDeadlineExceeded.
void AddToCart(DownstreamClients& clients, const RequestContext& ctx, const std::string& sku, int qty,
               const AddToCartOptions& options, std::function<void(StatusOr<nlohmann::json>)> done);

uint64_t AnalyticsEventsFailed();

}  // namespace bff
