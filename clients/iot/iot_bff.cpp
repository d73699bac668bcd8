// IoT BFF rules: admission (key, shelf, rate), telemetry acknowledged only after inventory accepted it,
// stock flags cached per shelf and invalidated by readings, observers told of changes.
#include "clients/iot/iot_bff.h"

#include "common/log.h"
#include "protocols/msgpack/iot_codec.h"
#include "security/input_validation.h"

namespace bff {
namespace {

using nlohmann::json;

constexpr int kInventoryRetryAfterS = 30;
// A device with several readings outstanding may see a later one accepted while an earlier one waits
// for its retry (inventory timed out on it): a seq this far below the highest accepted is still taken.
// Further back means the device's counter went backwards (a reset); inventory is idempotent on
// (device, seq), so taking it would acknowledge new readings as old duplicates and lose them.
constexpr uint64_t kSeqReorderWindow = 1024;

}  // namespace

std::string_view IotTransportName(IotTransport t) {
  switch (t) {
    case IotTransport::kMqtt: return "mqtt";
    case IotTransport::kCoap: return "coap";
    case IotTransport::kCoaps: return "coaps";
  }
  return "unknown";
}

std::string_view IotRejectReasonName(IotRejectReason r) {
  switch (r) {
    case IotRejectReason::kBadPayload: return "bad_payload";
    case IotRejectReason::kAuth: return "auth";
    case IotRejectReason::kShelfNotAllowed: return "shelf_not_allowed";
    case IotRejectReason::kRateLimited: return "rate_limited";
    case IotRejectReason::kSeqBackwards: return "seq_backwards";
    case IotRejectReason::kInvalid: return "invalid";
    case IotRejectReason::kUnavailable: return "unavailable";
  }
  return "unknown";
}

IotBff::IotBff(const Config& config, DownstreamClients& clients, Scheduler& scheduler, KeyRegistry& keys, RateLimiter& limiter)
    : options_(config.iot),
      max_payload_bytes_(static_cast<size_t>(config.iot.max_payload_bytes)),
      inventory_timeout_(milliseconds(config.iot.inventory_timeout_ms)),
      clients_(clients),
      scheduler_(scheduler),
      keys_(keys),
      limiter_(limiter) {}

IotReply IotBff::Error(StatusCode code, const std::string& message, int retry_after_s, std::optional<uint64_t> seq) {
  IotReply r;
  r.code = code;
  r.retry_after_s = retry_after_s;
  if (seq) r.seq = *seq;
  r.payload = EncodeError(CoapCodeFor(code), message, retry_after_s, seq);
  return r;
}

void IotBff::EnsureTrace(IotCaller& caller) {
  // Every log line about a request names its trace, also when the device sent no trace context.
  if (!caller.trace.valid()) caller.trace = TraceContext::NewRoot();
}

std::function<void(IotReply)> IotBff::Traced(const IotCaller& caller, std::string_view mqtt_topic,
                                             std::string_view coap_resource,
                                             std::function<void(IotReply)> done) const {
  if (!tracer_ || !tracer_->enabled()) return done;
  const bool mqtt = caller.transport == IotTransport::kMqtt;
  if (mqtt && mqtt_topic.empty()) return done;  // part of an MQTT message that has its own span
  // caller.trace is already this hop's span: the adapters made it a child of the device's traceparent.
  ActiveSpan span = tracer_->Start(mqtt ? mqtt_topic : coap_resource, SpanKind::kServer, caller.trace);
  if (!span.recording()) return done;
  span.SetAttribute(span_attr::kProtocol, IotTransportName(caller.transport))
      .SetAttribute(span_attr::kClientKind, "iot");
  if (mqtt) {
    span.SetAttribute(span_attr::kMqttTopic, mqtt_topic);
  } else {
    span.SetAttribute(span_attr::kHttpRoute, coap_resource);
  }
  return [span, done = std::move(done)](IotReply reply) mutable {
    if (reply.code == StatusCode::kOk) {
      span.SetAttribute(span_attr::kIotResult, "ok");
      span.SetOk();
    } else {
      span.SetAttribute(span_attr::kIotResult, StatusCodeName(reply.code))
          .SetAttribute(span_attr::kStatusCode, StatusCodeName(reply.code));
      span.SetError(reply.acknowledge ? "rejected" : "not acknowledged");
    }
    span.End();
    done(std::move(reply));
  };
}

RequestContext IotBff::ContextFor(const IotCaller& caller, const std::string& device_id) const {
  RequestContext ctx;
  ctx.tracer = tracer_;
  ctx.trace = caller.trace.valid() ? caller.trace : TraceContext::NewRoot();
  ctx.subject = device_id;
  ctx.client = "iot";
  ctx.deadline = scheduler_.Now() + inventory_timeout_;
  return ctx;
}

StatusOr<ApiKeyRecord> IotBff::Authenticate(const std::string& device_id, const std::string& key) {
  if (!IsValidId(device_id)) return Unauthenticated("unknown device or wrong key");
  return keys_.Verify(device_id, key);
}

StatusOr<ApiKeyRecord> IotBff::Admit(const IotCaller& caller, const std::string& device_id, const std::string& key,
                                     IotReply* error, std::optional<uint64_t> seq) {
  // The key check and the device's rate limit, as one span under the message's.
  ActiveSpan span = tracer_ ? tracer_->StartChild("auth.check", SpanKind::kInternal, caller.trace) : ActiveSpan();
  span.SetAttribute(span_attr::kAuthKind, "api_key");
  auto record = Authenticate(device_id, key);
  if (!record.ok()) {
    span.SetStatus(record.status());
    counters_.auth_failures.fetch_add(1);
    log::Info("iot: key refused", {{"device", device_id}, {"transport", IotTransportName(caller.transport)}},
              log::Scope(caller.trace.trace_id, "iot"));
    *error = Error(StatusCode::kUnauthenticated, "unknown device or wrong key", 0, seq);
    return record.status();
  }
  RateDecision d = limiter_.Acquire(device_id, record->rate_per_s, record->burst);
  if (!d.allowed) {
    counters_.rate_limited.fetch_add(1);
    *error = Error(StatusCode::kResourceExhausted, "rate limited", d.retry_after_s, seq);
    Status limited(StatusCode::kResourceExhausted, "rate limited");
    span.SetStatus(limited);
    return limited;
  }
  span.SetOk();
  return record;
}

void IotBff::HandleTelemetry(IotCaller caller, std::string payload, std::function<void(IotReply)> done) {
  counters_.telemetry_received.fetch_add(1);
  EnsureTrace(caller);
  done = Traced(caller, "iot/v1/{device}/telemetry", "POST /t", std::move(done));
  auto reject = [this, &done](IotRejectReason why, IotReply r) {
    counters_.telemetry_rejected.fetch_add(1);
    counters_.telemetry_rejected_by[static_cast<size_t>(why)].fetch_add(1, std::memory_order_relaxed);
    done(std::move(r));
  };
  auto t = DecodeTelemetry(payload, max_payload_bytes_);
  if (!t.ok()) {
    counters_.bad_payloads.fetch_add(1);
    return reject(IotRejectReason::kBadPayload, Error(t.status().code(), t.status().message()));
  }
  // The transport's view of the device wins; a payload naming another device is refused.
  std::string device = caller.device_id.empty() ? t->device_id : caller.device_id;
  if (!caller.device_id.empty() && t->device_id != caller.device_id) {
    counters_.bad_payloads.fetch_add(1);
    counters_.forbidden.fetch_add(1, std::memory_order_relaxed);
    return reject(IotRejectReason::kBadPayload, Error(StatusCode::kPermissionDenied, "payload device does not match the sender", 0, t->seq));
  }
  std::string key = !caller.api_key.empty() ? caller.api_key : t->api_key;
  IotReply error;
  auto record = Admit(caller, device, key, &error, t->seq);
  if (!record.ok()) {
    return reject(record.status().code() == StatusCode::kUnauthenticated ? IotRejectReason::kAuth : IotRejectReason::kRateLimited,
                  std::move(error));
  }
  if (!record->MayRead(t->shelf_id)) {
    counters_.forbidden.fetch_add(1, std::memory_order_relaxed);
    return reject(IotRejectReason::kShelfNotAllowed, Error(StatusCode::kPermissionDenied, "shelf " + t->shelf_id + " is not allowed for this device", 0, t->seq));
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = highest_seq_.find(device);
    if (it != highest_seq_.end() && t->seq < it->second && it->second - t->seq > kSeqReorderWindow) {
      uint64_t last = it->second;
      // A lower seq than one already accepted is not a retransmission of anything unacknowledged.
      counters_.bad_payloads.fetch_add(1);
      IotReply r = Error(StatusCode::kInvalidArgument,
                         "seq went backwards: " + std::to_string(t->seq) + " after " + std::to_string(last), 0, t->seq);
      counters_.telemetry_rejected.fetch_add(1);
      counters_.telemetry_rejected_by[static_cast<size_t>(IotRejectReason::kSeqBackwards)].fetch_add(1, std::memory_order_relaxed);
      return done(std::move(r));
    }
  }

  ShelfReading reading;
  reading.device_id = device;
  reading.shelf_id = t->shelf_id;
  // Past INT64_MAX these turn negative, which inventory refuses like any other out-of-range value.
  reading.seq = static_cast<int64_t>(t->seq);
  reading.ts = static_cast<int64_t>(t->ts);
  reading.slots.reserve(t->readings.size());
  for (auto& [slot, qty] : t->readings) reading.slots.emplace_back(static_cast<int>(slot), qty);
  if (t->battery_pct) reading.battery_pct = static_cast<double>(*t->battery_pct);
  if (t->temp_decicelsius) reading.temp_c = static_cast<double>(*t->temp_decicelsius) / 10.0;

  RequestContext ctx = ContextFor(caller, device);
  Telemetry tel = std::move(t).value();
  clients_.inventory().PostShelfReading(
      ctx, ctx.deadline, std::move(reading),
      [this, ctx, tel, device, done = std::move(done)](StatusOr<ShelfReadingAccepted> accepted) {
        if (!accepted.ok()) {
          if (accepted.status().code() == StatusCode::kInvalidArgument || accepted.status().code() == StatusCode::kNotFound) {
            counters_.telemetry_rejected.fetch_add(1);
            counters_.telemetry_rejected_by[static_cast<size_t>(IotRejectReason::kInvalid)].fetch_add(1, std::memory_order_relaxed);
            return done(Error(accepted.status().code(), accepted.status().message(), 0, tel.seq));
          }
          // Inventory unreachable: no acknowledgement, the device keeps the reading and retries.
          counters_.telemetry_unacknowledged.fetch_add(1);
          counters_.telemetry_rejected_by[static_cast<size_t>(IotRejectReason::kUnavailable)].fetch_add(1, std::memory_order_relaxed);
          IotReply r = Error(StatusCode::kUnavailable, "inventory unreachable, retry later", kInventoryRetryAfterS, tel.seq);
          r.acknowledge = false;
          log::Warn("iot: reading not acknowledged", {{"device", device}, {"seq", tel.seq}, {"reason", accepted.status().message()}},
                    log::Scope(ctx.trace.trace_id, "iot"));
          return done(std::move(r));
        }
        {
          std::lock_guard<std::mutex> lock(mu_);
          uint64_t& high = highest_seq_[device];
          if (tel.seq > high) high = tel.seq;
        }
        bool duplicate = accepted->duplicate;
        bool changed = !accepted->changed_skus.empty() || !duplicate;
        auto answer = [this, tel, done](StatusOr<std::shared_ptr<const ShelfFlags>> flags) {
          counters_.telemetry_acknowledged.fetch_add(1);
          IotReply r;
          r.seq = tel.seq;
          if (!flags.ok()) {
            // Accepted but flags unknown right now: acknowledge without flags.
            r.flags_changed = false;
            r.payload = EncodeAck(tel.seq, std::nullopt);
            return done(std::move(r));
          }
          r.version = (*flags)->version;
          r.flags_changed = !tel.version || *tel.version != (*flags)->version;
          r.payload = EncodeAck(tel.seq, r.flags_changed ? std::optional<std::string>((*flags)->encoded) : std::nullopt);
          done(std::move(r));
        };
        // Most readings need no second call: the flags follow from the cached ones and the reading itself.
        bool is_new = false;
        if (auto derived = DeriveFlags(tel, accepted->shelf_version, duplicate, &is_new)) {
          counters_.flags_derived.fetch_add(1, std::memory_order_relaxed);
          if (is_new) Publish(tel.shelf_id, derived);
          return answer(derived);
        }
        // Otherwise the reading may have changed the shelf: fetch its flags fresh, tell observers, answer.
        Flags(ctx, tel.shelf_id, changed, std::move(answer));
      });
}

std::shared_ptr<const ShelfFlags> IotBff::CachedFlags(const std::string& shelf_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = flags_.find(shelf_id);
  return it == flags_.end() ? nullptr : it->second;
}

std::shared_ptr<const ShelfFlags> IotBff::DeriveFlags(const Telemetry& reading, uint64_t shelf_version, bool duplicate,
                                                      bool* is_new) {
  *is_new = false;
  std::shared_ptr<const ShelfFlags> cached = CachedFlags(reading.shelf_id);
  if (!cached || scheduler_.Now() - cached->fetched_at >= std::chrono::seconds(options_.stock_freshness_s)) return nullptr;
  // Nothing moved: the cached flags are the shelf's (a duplicate changed nothing either).
  if (duplicate || shelf_version == cached->version) return cached;
  // Inventory moves a shelf's version once per reading that changed a quantity. One step past the
  // cached version means this reading was the only change since: its quantities give the new bits.
  // Any other gap (another device's reading in between) needs the shelf itself.
  if (shelf_version != cached->version + 1) return nullptr;
  auto f = std::make_shared<ShelfFlags>(*cached);
  f->version = shelf_version;
  for (const auto& [slot, qty] : reading.readings) {
    if (slot >= f->in_stock.size()) return nullptr;
    f->in_stock[slot] = qty > 0;
  }
  f->encoded = EncodeShelfFlags(f->version, f->in_stock);
  *is_new = true;
  return f;
}

void IotBff::Flags(const RequestContext& ctx, const std::string& shelf_id, bool force_refresh,
                   std::function<void(StatusOr<std::shared_ptr<const ShelfFlags>>)> done) {
  std::shared_ptr<const ShelfFlags> cached;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = flags_.find(shelf_id);
    if (it != flags_.end()) cached = it->second;
  }
  Duration freshness = std::chrono::seconds(options_.stock_freshness_s);
  if (cached && !force_refresh && scheduler_.Now() - cached->fetched_at < freshness) {
    counters_.flags_cached.fetch_add(1, std::memory_order_relaxed);
    return done(cached);
  }
  clients_.inventory().GetShelf(ctx, ctx.deadline, shelf_id, [this, shelf_id, done = std::move(done)](StatusOr<json> shelf) {
    if (!shelf.ok()) return done(shelf.status());
    counters_.flags_fetched.fetch_add(1, std::memory_order_relaxed);
    auto f = std::make_shared<ShelfFlags>();
    f->version = shelf->value("version", uint64_t{0});
    for (const auto& slot : shelf->value("slots", json::array())) {
      size_t index = slot.value("slot", size_t{0});
      if (index >= 4096) continue;
      if (f->in_stock.size() <= index) {
        f->in_stock.resize(index + 1, false);
        f->skus.resize(index + 1);
      }
      // In stock means at least one item on the slot; low_threshold is for replenishment, not for this bit.
      f->in_stock[index] = slot.value("qty", int64_t{0}) > 0;
      f->skus[index] = slot.value("sku", "");
    }
    f->encoded = EncodeShelfFlags(f->version, f->in_stock);
    f->fetched_at = scheduler_.Now();
    Publish(shelf_id, f);
    done(std::shared_ptr<const ShelfFlags>(f));
  });
}

size_t IotBff::cached_shelves() const {
  std::lock_guard<std::mutex> lock(mu_);
  return flags_.size();
}

void IotBff::Publish(const std::string& shelf_id, const std::shared_ptr<const ShelfFlags>& flags) {
  std::vector<std::function<void(const ShelfFlags&)>> notify;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto& slot = flags_[shelf_id];
    bool changed = !slot || slot->encoded != flags->encoded;
    slot = flags;
    if (!changed) return;
    for (auto& [id, obs] : observers_) {
      if (obs.first == shelf_id) notify.push_back(obs.second);
    }
  }
  for (auto& n : notify) n(*flags);
}

uint64_t IotBff::Observe(const std::string& shelf_id, std::function<void(const ShelfFlags&)> on_change) {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t id = next_observer_++;
  observers_[id] = {shelf_id, std::move(on_change)};
  return id;
}

void IotBff::Unobserve(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  observers_.erase(id);
}

void IotBff::HandleStockQuery(IotCaller caller, std::string payload, std::function<void(IotReply)> done) {
  counters_.stock_queries.fetch_add(1);
  EnsureTrace(caller);
  done = Traced(caller, "iot/v1/{device}/stock/get", "stock/get", std::move(done));
  auto q = DecodeStockQuery(payload, max_payload_bytes_);
  if (!q.ok()) {
    counters_.bad_payloads.fetch_add(1);
    return done(Error(q.status().code(), q.status().message()));
  }
  if (caller.api_key.empty()) caller.api_key = q->api_key;
  if (!q->shelf_id.empty()) return GetShelfFlags(std::move(caller), q->shelf_id, std::move(done));
  GetSkuInStock(std::move(caller), q->sku, std::move(done));
}

void IotBff::GetShelfFlags(IotCaller caller, const std::string& shelf_id, std::function<void(IotReply)> done) {
  counters_.shelf_queries.fetch_add(1, std::memory_order_relaxed);
  EnsureTrace(caller);
  done = Traced(caller, {}, "GET /s/{shelf_id}", std::move(done));  // MQTT: traced as its stock/get
  if (!IsValidId(shelf_id)) return done(Error(StatusCode::kInvalidArgument, "bad shelf id"));
  IotReply error;
  auto record = Admit(caller, caller.device_id, caller.api_key, &error);
  if (!record.ok()) return done(std::move(error));
  if (!record->MayRead(shelf_id)) {
    counters_.forbidden.fetch_add(1, std::memory_order_relaxed);
    return done(Error(StatusCode::kPermissionDenied, "shelf " + shelf_id + " is not allowed for this device"));
  }
  RequestContext ctx = ContextFor(caller, caller.device_id);
  Flags(ctx, shelf_id, false, [this, done = std::move(done)](StatusOr<std::shared_ptr<const ShelfFlags>> flags) {
    if (!flags.ok()) {
      if (flags.status().code() == StatusCode::kNotFound) return done(Error(StatusCode::kNotFound, "no such shelf"));
      return done(Error(StatusCode::kUnavailable, "inventory unreachable, retry later", kInventoryRetryAfterS));
    }
    IotReply r;
    r.version = (*flags)->version;
    r.payload = (*flags)->encoded;
    done(std::move(r));
  });
}

void IotBff::GetSkuInStock(IotCaller caller, const std::string& sku, std::function<void(IotReply)> done) {
  counters_.sku_queries.fetch_add(1, std::memory_order_relaxed);
  EnsureTrace(caller);
  done = Traced(caller, {}, "GET /p/{sku}", std::move(done));
  if (!IsValidId(sku)) return done(Error(StatusCode::kInvalidArgument, "bad sku"));
  IotReply error;
  auto record = Admit(caller, caller.device_id, caller.api_key, &error);
  if (!record.ok()) return done(std::move(error));
  RequestContext ctx = ContextFor(caller, caller.device_id);
  clients_.inventory().GetStock(ctx, ctx.deadline, sku, [this, done = std::move(done)](StatusOr<json> stock) {
    if (!stock.ok()) {
      if (stock.status().code() == StatusCode::kNotFound) return done(Error(StatusCode::kNotFound, "no such sku"));
      return done(Error(StatusCode::kUnavailable, "inventory unreachable, retry later", kInventoryRetryAfterS));
    }
    IotReply r;
    r.version = stock->value("version", uint64_t{0});
    r.payload = EncodeBool(stock->value("available", int64_t{0}) > 0);
    done(std::move(r));
  });
}

}  // namespace bff
