// IotBff rules against the embedded reference domain: acknowledgement only after inventory, flags and
// versions, bad input, keys, shelves, rate limits, observers.
#include "clients/iot/iot_bff.h"

#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "domain/domain_services.h"
#include "domain/seed.h"
#include "downstream/in_process_transport.h"
#include "protocols/msgpack/iot_codec.h"
#include "support/collecting_span_sink.h"
#include "support/test_support.h"

namespace bff {
namespace {

using std::chrono::seconds;

// Parameter: whether readings take the embedded domain's typed entry (as bffd does) or the HTTP form
// through the in-process transport (as with a remote domain, and under injected faults).
class IotBffTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    work_.emplace(boost::asio::make_work_guard(io_));
    for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { io_.run(); });
    DomainOptions d;
    d.data_dir = dir_.path();
    d.password_iterations = 1000;
    auto domain = DomainServices::Create(d, sched_);
    ASSERT_TRUE(domain.ok()) << domain.status().ToString();
    domain_ = std::move(domain).value();
    transport_ = std::make_unique<InProcessTransport>(*domain_, sched_);
    minter_ = std::make_unique<CredentialMinter>(*LoadOrCreateInternalSecret(dir_.path()));
    clients_ = std::make_unique<DownstreamClients>(*transport_, *minter_, sched_, GetParam() ? domain_.get() : nullptr);
    auto store = ApiKeyStore::Open(dir_.path());
    ASSERT_TRUE(store.ok());
    store_ = std::move(store).value();
    shelf_only_ = SeedShelfOnlyProduct(0);
    key_ = *store_->Add("sensor-a", {shelf_only_.shelf_id}, 100, 200);
    slow_key_ = *store_->Add("sensor-slow", {"shelf-01-02"}, 0.01, 3);
    registry_ = std::make_unique<KeyRegistry>(*store_, dir_.path() + "/keys.db", sched_, std::chrono::milliseconds(0));
    limiter_ = std::make_unique<TokenBucketLimiter>(sched_);
    Config config;
    config.iot.inventory_timeout_ms = 300;
    iot_ = std::make_unique<IotBff>(config, *clients_, sched_, *registry_, *limiter_);
  }
  void TearDown() override {
    if (domain_) domain_->ReleaseHeld();
    work_.reset();
    for (auto& t : threads_) t.join();
  }

  IotReply Telemetry(const std::string& device, const std::string& key, uint64_t seq, uint32_t slot, uint32_t qty,
                     std::optional<uint64_t> version = std::nullopt, const std::string& shelf = "") {
    bff::Telemetry t;
    t.device_id = device;
    t.shelf_id = shelf.empty() ? shelf_only_.shelf_id : shelf;
    t.seq = seq;
    t.ts = 1790000000;
    t.readings = {{slot, qty}};
    t.version = version;
    t.api_key = key;
    return Call([&](auto done) { iot_->HandleTelemetry(MqttCaller(device), EncodeTelemetry(t, true), done); });
  }

  IotCaller MqttCaller(const std::string& device) {
    IotCaller c;
    c.transport = IotTransport::kMqtt;
    c.device_id = device;
    c.trace = TraceContext::NewRoot();
    return c;
  }

  IotReply Call(const std::function<void(std::function<void(IotReply)>)>& fn) {
    auto p = std::make_shared<std::promise<IotReply>>();
    auto f = p->get_future();
    fn([p](IotReply r) { p->set_value(std::move(r)); });
    EXPECT_EQ(f.wait_for(seconds(20)), std::future_status::ready);
    return f.get();
  }

  testing::TempDir dir_;
  boost::asio::io_context io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::vector<std::thread> threads_;
  AsioScheduler sched_{io_};
  std::unique_ptr<DomainServices> domain_;
  std::unique_ptr<Transport> transport_;
  std::unique_ptr<CredentialMinter> minter_;
  std::unique_ptr<DownstreamClients> clients_;
  std::unique_ptr<ApiKeyStore> store_;
  std::unique_ptr<KeyRegistry> registry_;
  std::unique_ptr<TokenBucketLimiter> limiter_;
  std::unique_ptr<IotBff> iot_;
  SeedSlotRef shelf_only_;
  std::string key_, slow_key_;
};

TEST_P(IotBffTest, AcknowledgesWithFlagsThenOmitsThemWhenTheDeviceIsCurrent) {
  IotReply r = Telemetry("sensor-a", key_, 1, static_cast<uint32_t>(shelf_only_.slot), 0);
  ASSERT_EQ(r.code, StatusCode::kOk) << r.payload;
  EXPECT_TRUE(r.flags_changed);
  EXPECT_EQ(r.seq, 1u);
  ASSERT_GT(r.version, 0u);
  IotReply again = Telemetry("sensor-a", key_, 2, static_cast<uint32_t>(shelf_only_.slot), 0, r.version);
  ASSERT_EQ(again.code, StatusCode::kOk);
  EXPECT_FALSE(again.flags_changed) << "the device's version is current: no flags";
  EXPECT_EQ(again.payload, EncodeAck(2, std::nullopt));
  EXPECT_EQ(iot_->counters().telemetry_acknowledged.load(), 2u);
}

TEST_P(IotBffTest, RetransmissionIsIdempotentAndSeqGoingBackwardsIsRefused) {
  ASSERT_EQ(Telemetry("sensor-a", key_, 2000, 0, 5).code, StatusCode::kOk);
  EXPECT_EQ(Telemetry("sensor-a", key_, 2000, 0, 5).code, StatusCode::kOk) << "same seq again is a retransmission";
  EXPECT_EQ(Telemetry("sensor-a", key_, 1990, 0, 5).code, StatusCode::kOk)
      << "an earlier reading retried after a later one was accepted is still taken";
  IotReply back = Telemetry("sensor-a", key_, 900, 0, 5);
  EXPECT_EQ(back.code, StatusCode::kInvalidArgument) << "more than the reorder window back: the counter was reset";
  EXPECT_EQ(CoapCodeFor(back.code), 400);
  EXPECT_EQ(Telemetry("sensor-a", key_, 2001, 0, 5).code, StatusCode::kOk) << "the device goes on";
}

TEST_P(IotBffTest, KeysAndShelvesAreEnforced) {
  EXPECT_EQ(Telemetry("sensor-a", std::string(32, '0'), 1, 0, 1).code, StatusCode::kUnauthenticated);
  EXPECT_EQ(Telemetry("sensor-ghost", key_, 1, 0, 1).code, StatusCode::kUnauthenticated) << "unknown device";
  IotReply forbidden = Telemetry("sensor-a", key_, 1, 0, 1, std::nullopt, "shelf-50-20");
  EXPECT_EQ(forbidden.code, StatusCode::kPermissionDenied);
  EXPECT_EQ(forbidden.payload, EncodeError(403, "shelf shelf-50-20 is not allowed for this device", 0, 1))
      << "the error map names the refused reading's seq";
  ASSERT_TRUE(store_->Revoke("sensor-a").ok());
  registry_->Reload();
  EXPECT_EQ(Telemetry("sensor-a", key_, 2, 0, 1).code, StatusCode::kUnauthenticated) << "revoked";
  EXPECT_GE(iot_->counters().auth_failures.load(), 3u);
}

TEST_P(IotBffTest, FloodingDeviceIsRateLimitedWithoutTouchingOthers) {
  int limited = 0;
  for (int i = 0; i < 10; ++i) {
    IotReply r = Telemetry("sensor-slow", slow_key_, 100 + i, 0, 1, std::nullopt, "shelf-01-02");
    if (r.code == StatusCode::kResourceExhausted) {
      ++limited;
      EXPECT_GE(r.retry_after_s, 1);
    }
  }
  EXPECT_EQ(limited, 7) << "burst of 3, then refused";
  EXPECT_EQ(Telemetry("sensor-a", key_, 1, 0, 2).code, StatusCode::kOk) << "another device is unaffected";
}

TEST_P(IotBffTest, InventoryDownMeansNoAcknowledgement) {
  Fault down;
  down.down = true;
  ASSERT_TRUE(domain_->SetFault("inventory", down).ok());
  IotReply r = Telemetry("sensor-a", key_, 1, 0, 2);
  EXPECT_EQ(r.code, StatusCode::kUnavailable);
  EXPECT_FALSE(r.acknowledge);
  EXPECT_GT(r.retry_after_s, 0);
  Fault hang;
  hang.hang = true;
  ASSERT_TRUE(domain_->SetFault("inventory", hang).ok());
  IotReply h = Telemetry("sensor-a", key_, 2, 0, 2);
  EXPECT_FALSE(h.acknowledge) << "a hanging inventory must not be acknowledged";
  domain_->ClearFaults();
  EXPECT_EQ(Telemetry("sensor-a", key_, 2, 0, 2).code, StatusCode::kOk) << "the retry is accepted";
  EXPECT_EQ(iot_->counters().telemetry_unacknowledged.load(), 2u);
}

uint64_t Rejected(const IotCounters& c, IotRejectReason why) { return c.telemetry_rejected_by[static_cast<size_t>(why)].load(); }

TEST_P(IotBffTest, EveryReadingIsCountedAcknowledgedOrUnderOneReason) {
  const uint32_t slot = static_cast<uint32_t>(shelf_only_.slot);
  ASSERT_EQ(Telemetry("sensor-a", key_, 5000, slot, 4).code, StatusCode::kOk);
  ASSERT_EQ(Telemetry("sensor-a", std::string(32, '0'), 5001, slot, 4).code, StatusCode::kUnauthenticated);
  IotReply junk = Call([&](auto done) { iot_->HandleTelemetry(MqttCaller("sensor-a"), "\xc1\x00garbage", done); });
  ASSERT_EQ(junk.code, StatusCode::kInvalidArgument);
  ASSERT_EQ(Telemetry("sensor-a", key_, 5002, 0, 1, std::nullopt, "shelf-50-20").code, StatusCode::kPermissionDenied);
  ASSERT_EQ(Telemetry("sensor-a", key_, 100, slot, 4).code, StatusCode::kInvalidArgument) << "seq went backwards";
  ASSERT_EQ(Telemetry("sensor-a", key_, 5003, 999, 4).code, StatusCode::kInvalidArgument) << "inventory: no such slot";
  for (int i = 0; i < 4; ++i) Telemetry("sensor-slow", slow_key_, 10 + i, 0, 1, std::nullopt, "shelf-01-02");
  Fault down;
  down.down = true;
  ASSERT_TRUE(domain_->SetFault("inventory", down).ok());
  ASSERT_FALSE(Telemetry("sensor-a", key_, 5004, slot, 4).acknowledge);
  domain_->ClearFaults();

  const IotCounters& c = iot_->counters();
  EXPECT_EQ(c.telemetry_received.load(), 11u);
  EXPECT_EQ(c.telemetry_acknowledged.load(), 4u) << "one of sensor-a's, three of sensor-slow's burst";
  EXPECT_EQ(Rejected(c, IotRejectReason::kAuth), 1u);
  EXPECT_EQ(Rejected(c, IotRejectReason::kBadPayload), 1u);
  EXPECT_EQ(Rejected(c, IotRejectReason::kShelfNotAllowed), 1u);
  EXPECT_EQ(Rejected(c, IotRejectReason::kSeqBackwards), 1u);
  EXPECT_EQ(Rejected(c, IotRejectReason::kInvalid), 1u);
  EXPECT_EQ(Rejected(c, IotRejectReason::kRateLimited), 1u);
  EXPECT_EQ(Rejected(c, IotRejectReason::kUnavailable), 1u);
  uint64_t sum = 0;
  for (const auto& r : c.telemetry_rejected_by) sum += r.load();
  EXPECT_EQ(c.telemetry_acknowledged.load() + sum, c.telemetry_received.load());
  EXPECT_EQ(c.auth_failures.load(), 1u);
  EXPECT_EQ(c.forbidden.load(), 1u);
  EXPECT_EQ(c.rate_limited.load(), 1u);
  EXPECT_EQ(IotRejectReasonName(IotRejectReason::kShelfNotAllowed), "shelf_not_allowed");
}

TEST_P(IotBffTest, StockQueriesAndTheSourceOfTheirFlagsAreCounted) {
  IotCaller c = MqttCaller("sensor-a");
  c.api_key = key_;
  EXPECT_EQ(iot_->cached_shelves(), 0u);
  ASSERT_EQ(Call([&](auto done) { iot_->GetShelfFlags(c, shelf_only_.shelf_id, done); }).code, StatusCode::kOk);
  ASSERT_EQ(Call([&](auto done) { iot_->GetShelfFlags(c, shelf_only_.shelf_id, done); }).code, StatusCode::kOk);
  ASSERT_EQ(Call([&](auto done) { iot_->GetSkuInStock(c, shelf_only_.sku, done); }).code, StatusCode::kOk);
  const IotCounters& n = iot_->counters();
  EXPECT_EQ(n.shelf_queries.load(), 2u);
  EXPECT_EQ(n.sku_queries.load(), 1u);
  EXPECT_EQ(n.flags_fetched.load(), 1u) << "the first question asks inventory";
  EXPECT_EQ(n.flags_cached.load(), 1u) << "the second is answered from the cache";
  EXPECT_EQ(iot_->cached_shelves(), 1u);
  // The only change since the cached flags: the acknowledgement's flags follow from the reading itself.
  ASSERT_EQ(Telemetry("sensor-a", key_, 1, static_cast<uint32_t>(shelf_only_.slot), 0).code, StatusCode::kOk);
  EXPECT_EQ(n.flags_derived.load(), 1u);
  EXPECT_EQ(n.flags_fetched.load(), 1u);
}

TEST_P(IotBffTest, ObserversHearOnlyRealChanges) {
  std::atomic<int> notified{0};
  uint64_t id = iot_->Observe(shelf_only_.shelf_id, [&](const ShelfFlags&) { notified.fetch_add(1); });
  IotCaller c = MqttCaller("sensor-a");
  c.api_key = key_;
  ASSERT_EQ(Call([&](auto done) { iot_->GetShelfFlags(c, shelf_only_.shelf_id, done); }).code, StatusCode::kOk);
  int baseline = notified.load();
  ASSERT_EQ(Telemetry("sensor-a", key_, 1, static_cast<uint32_t>(shelf_only_.slot), 0).code, StatusCode::kOk);
  EXPECT_EQ(notified.load(), baseline + 1) << "in stock → out of stock is a change";
  ASSERT_EQ(Telemetry("sensor-a", key_, 2, static_cast<uint32_t>(shelf_only_.slot), 0).code, StatusCode::kOk);
  EXPECT_EQ(notified.load(), baseline + 1) << "the same count again is not";
  iot_->Unobserve(id);
  ASSERT_EQ(Telemetry("sensor-a", key_, 3, static_cast<uint32_t>(shelf_only_.slot), 7).code, StatusCode::kOk);
  EXPECT_EQ(notified.load(), baseline + 1);
}

TEST_P(IotBffTest, SkuQuestionIsOneBool) {
  IotCaller c = MqttCaller("sensor-a");
  c.api_key = key_;
  IotReply out = Call([&](auto done) { iot_->GetSkuInStock(c, SeedOutOfStockSku(), done); });
  ASSERT_EQ(out.code, StatusCode::kOk);
  EXPECT_EQ(out.payload, EncodeBool(false));
  IotReply in = Call([&](auto done) { iot_->GetSkuInStock(c, "SKU-10001", done); });
  EXPECT_EQ(in.payload, EncodeBool(true));
}

TEST_P(IotBffTest, FlagsFollowEveryReadingWhetherDerivedOrFetched) {
  // A second device on the same shelf, so that some readings come in between (a version gap).
  std::string other = *store_->Add("sensor-b", {shelf_only_.shelf_id}, 100, 200);
  registry_->Reload();
  uint32_t slot = static_cast<uint32_t>(shelf_only_.slot);
  struct Step {
    const char* device;
    uint32_t qty;
  };
  std::vector<Step> steps = {{"sensor-a", 0}, {"sensor-a", 4}, {"sensor-a", 3}, {"sensor-b", 0},
                             {"sensor-a", 0}, {"sensor-b", 9}, {"sensor-a", 9}, {"sensor-a", 0}};
  uint64_t seq = 1;
  for (const Step& step : steps) {
    IotReply r = Telemetry(step.device, step.device == std::string("sensor-a") ? key_ : other, seq++, slot, step.qty);
    ASSERT_EQ(r.code, StatusCode::kOk) << r.payload;
    // What the device was told must be what inventory now holds.
    std::promise<StatusOr<nlohmann::json>> shelf;
    RequestContext ctx;
    clients_->inventory().GetShelf(ctx, sched_.Now() + seconds(10), shelf_only_.shelf_id,
                                   [&](StatusOr<nlohmann::json> j) { shelf.set_value(std::move(j)); });
    StatusOr<nlohmann::json> held = shelf.get_future().get();
    ASSERT_TRUE(held.ok());
    std::vector<bool> bits;
    for (const auto& s : (*held)["slots"]) bits.push_back(s["qty"].get<int64_t>() > 0);
    if (r.flags_changed) {
      size_t at = r.payload.find("\xa1" "f");
      ASSERT_NE(at, std::string::npos);
      auto flags = DecodeShelfFlags(r.payload.substr(at + 2));
      ASSERT_TRUE(flags.ok());
      EXPECT_EQ(flags->first, (*held)["version"].get<uint64_t>()) << "step " << seq - 1;
      EXPECT_EQ(flags->second, bits) << "step " << seq - 1;
    }
    EXPECT_EQ(r.version, (*held)["version"].get<uint64_t>()) << "step " << seq - 1;
  }
}

// With a tracer, a message is a server span child of the device's, with the key check and the
// inventory call as its children; a refused key leaves an error on both.
TEST_P(IotBffTest, EachMessageIsASpanWithItsAuthCheckAndInventoryCall) {
  using testing::SpanAttr;
  auto sink = std::make_shared<testing::CollectingSpanSink>();
  Tracer tracer(sink);
  iot_->set_tracer(&tracer);
  bff::Telemetry t;
  t.device_id = "sensor-a";
  t.shelf_id = shelf_only_.shelf_id;
  t.seq = 1;
  t.ts = 1790000000;
  t.readings = {{static_cast<uint32_t>(shelf_only_.slot), 3}};
  t.api_key = key_;
  IotCaller caller = MqttCaller("sensor-a");
  const TraceContext sent = caller.trace;
  ASSERT_EQ(Call([&](auto done) { iot_->HandleTelemetry(caller, EncodeTelemetry(t, true), done); }).code, StatusCode::kOk);

  auto entries = sink->Named("iot/v1/{device}/telemetry");
  ASSERT_EQ(entries.size(), 1u);
  const Span& entry = entries[0];
  EXPECT_EQ(entry.trace_id, sent.trace_id);
  EXPECT_EQ(entry.span_id, sent.span_id) << "the adapter's context is this hop's span";
  EXPECT_EQ(entry.kind, SpanKind::kServer);
  EXPECT_EQ(SpanAttr<std::string>(entry, span_attr::kProtocol), "mqtt");
  EXPECT_EQ(SpanAttr<std::string>(entry, span_attr::kClientKind), "iot");
  EXPECT_EQ(SpanAttr<std::string>(entry, span_attr::kIotResult), "ok");
  EXPECT_EQ(entry.status, SpanStatus::kOk);
  auto checks = sink->Named("auth.check");
  ASSERT_EQ(checks.size(), 1u);
  EXPECT_EQ(checks[0].parent_span_id, entry.span_id);
  EXPECT_EQ(SpanAttr<std::string>(checks[0], span_attr::kAuthKind), "api_key");
  EXPECT_EQ(checks[0].status, SpanStatus::kOk);
  bool inventory = false;
  for (const auto& s : sink->spans()) {
    if (s.kind == SpanKind::kClient && s.parent_span_id == entry.span_id) {
      inventory = SpanAttr<std::string>(s, span_attr::kPeerService) == "inventory";
    }
  }
  EXPECT_TRUE(inventory) << "the reading's inventory call is a client span under the message";

  sink->Clear();
  t.seq = 2;
  t.api_key = std::string(32, '0');
  IotCaller coap;
  coap.transport = IotTransport::kCoap;
  coap.device_id = "sensor-a";
  coap.trace = TraceContext::NewRoot();
  ASSERT_EQ(Call([&](auto done) { iot_->HandleTelemetry(coap, EncodeTelemetry(t, true), done); }).code,
            StatusCode::kUnauthenticated);
  entries = sink->Named("POST /t");
  checks = sink->Named("auth.check");
  ASSERT_EQ(entries.size(), 1u);
  ASSERT_EQ(checks.size(), 1u);
  EXPECT_EQ(SpanAttr<std::string>(entries[0], span_attr::kProtocol), "coap");
  EXPECT_EQ(SpanAttr<std::string>(entries[0], span_attr::kIotResult), "UNAUTHENTICATED");
  EXPECT_EQ(entries[0].status, SpanStatus::kError);
  EXPECT_EQ(checks[0].status, SpanStatus::kError);
  EXPECT_EQ(SpanAttr<std::string>(checks[0], span_attr::kStatusCode), "UNAUTHENTICATED");
  for (const auto& s : sink->spans()) EXPECT_NE(s.kind, SpanKind::kClient) << "a refused key reaches no service";
  iot_->set_tracer(nullptr);
}

INSTANTIATE_TEST_SUITE_P(Readings, IotBffTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& p) { return p.param ? "Typed" : "HttpForm"; });

}  // namespace
}  // namespace bff
