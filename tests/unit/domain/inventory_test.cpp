// Inventory: stock and shelf answers, shelf readings (validation, idempotency, versions), group commit.
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <thread>

#include "common/log.h"
#include "domain/seed.h"
#include "domain_harness.h"

namespace bff::testing {
namespace {

nlohmann::json Reading(const std::string& device, const std::string& shelf, int64_t seq,
                       const nlohmann::json& readings) {
  return {{"device_id", device},  {"shelf_id", shelf},   {"seq", seq}, {"ts", 1767604000},
          {"readings", readings}, {"battery_pct", 91.5}, {"temp_c", 5}};
}

TEST(Inventory, StockAnswerShape) {
  DomainHarness h;
  auto r = h.Get("/inventory/v1/stock/SKU-10001");
  ASSERT_EQ(r.status, 200);
  auto j = BodyJson(r);
  EXPECT_EQ(j["sku"], "SKU-10001");
  ASSERT_EQ(j["warehouses"].size(), 3u);
  EXPECT_EQ(j["warehouses"][0]["id"], "wh-north");
  EXPECT_EQ(j["warehouses"][1]["id"], "wh-south");
  EXPECT_EQ(j["warehouses"][2]["id"], "wh-central");
  int64_t sum = 0;
  for (const auto& w : j["warehouses"]) sum += w["qty"].get<int64_t>();
  for (const auto& s : j["shelves"]) {
    sum += s["qty"].get<int64_t>();
    EXPECT_TRUE(s["shelf_id"].is_string());
    EXPECT_TRUE(s["slot"].is_number_integer());
  }
  EXPECT_EQ(j["available"], sum);
  EXPECT_GT(sum, 0);
  EXPECT_EQ(j["version"], 1);
  EXPECT_EQ(j["updated_at"], "2026-01-05T09:00:00Z");
  EXPECT_EQ(h.Get("/inventory/v1/stock/SKU-99999").status, 404);
  EXPECT_EQ(h.Get("/inventory/v1/stock/no%20pe").status, 400);
}

TEST(Inventory, ShelfAnswerShape) {
  DomainHarness h;
  auto j = BodyJson(h.Get("/inventory/v1/shelves/shelf-02-01"));
  EXPECT_EQ(j["shelf_id"], "shelf-02-01");
  EXPECT_EQ(j["store_id"], "store-02");
  EXPECT_EQ(j["version"], 1);
  ASSERT_EQ(j["slots"].size(), 24u);
  for (size_t i = 0; i < j["slots"].size(); ++i) {
    const auto& s = j["slots"][i];
    EXPECT_EQ(s["slot"], i);
    EXPECT_TRUE(s["sku"].is_string());
    EXPECT_GE(s["low_threshold"].get<int>(), 2);
  }
  EXPECT_EQ(h.Get("/inventory/v1/shelves/shelf-99-99").status, 404);
  auto list = BodyJson(h.Get("/inventory/v1/shelves?limit=3"));
  ASSERT_EQ(list["shelves"].size(), 3u);
  EXPECT_EQ(list["shelves"][0],
            nlohmann::json({{"shelf_id", "shelf-01-01"}, {"store_id", "store-01"}, {"slot_count", 24}}));
  auto next = BodyJson(h.Get("/inventory/v1/shelves?limit=3&cursor=" + list["next_cursor"].get<std::string>()));
  EXPECT_EQ(next["shelves"][0]["shelf_id"], "shelf-01-04");
}

TEST(Inventory, SpecialSkusMatchTheirDocumentedPlaces) {
  DomainHarness h;
  SeedSlotRef oos = SeedOutOfStockProduct(0);
  EXPECT_EQ(oos.sku, SeedOutOfStockSku());
  auto stock = BodyJson(h.Get("/inventory/v1/stock/" + oos.sku));
  EXPECT_EQ(stock["available"], 0);
  ASSERT_EQ(stock["shelves"].size(), 1u);
  EXPECT_EQ(stock["shelves"][0]["shelf_id"], oos.shelf_id);
  EXPECT_EQ(stock["shelves"][0]["slot"], oos.slot);

  SeedSlotRef only = SeedShelfOnlyProduct(0);
  stock = BodyJson(h.Get("/inventory/v1/stock/" + only.sku));
  EXPECT_GT(stock["available"].get<int>(), 0);
  ASSERT_EQ(stock["shelves"].size(), 1u);
  EXPECT_EQ(stock["shelves"][0]["shelf_id"], only.shelf_id);
  for (const auto& w : stock["warehouses"]) EXPECT_EQ(w["qty"], 0);
}

TEST(Inventory, ReadingUpdatesShelfAndStockAndIsIdempotent) {
  DomainHarness h;
  SeedSlotRef ref = SeedShelfOnlyProduct(1);
  auto shelf0 = BodyJson(h.Get("/inventory/v1/shelves/" + ref.shelf_id));
  auto stock0 = BodyJson(h.Get("/inventory/v1/stock/" + ref.sku));
  ASSERT_GT(stock0["available"].get<int>(), 0);

  auto r =
      h.Post("/inventory/v1/shelf-readings", Reading("dev-7", ref.shelf_id, 42, {{{"slot", ref.slot}, {"qty", 0}}}));
  ASSERT_EQ(r.status, 202) << r.body;
  auto ack = BodyJson(r);
  EXPECT_EQ(ack["accepted"], true);
  EXPECT_EQ(ack["duplicate"], false);
  EXPECT_EQ(ack["shelf_version"], shelf0["version"].get<int>() + 1);

  auto stock1 = BodyJson(h.Get("/inventory/v1/stock/" + ref.sku));
  EXPECT_EQ(stock1["available"], 0) << "a shelf-only sku read as empty is out of stock everywhere";
  EXPECT_EQ(stock1["version"], stock0["version"].get<int>() + 1);
  EXPECT_NE(stock1["updated_at"], stock0["updated_at"]);
  auto shelf1 = BodyJson(h.Get("/inventory/v1/shelves/" + ref.shelf_id));
  EXPECT_EQ(shelf1["slots"][ref.slot]["qty"], 0);
  EXPECT_EQ(shelf1["version"], ack["shelf_version"]);

  // The same (device, seq) again, even with other numbers: accepted, nothing changes.
  r = h.Post("/inventory/v1/shelf-readings", Reading("dev-7", ref.shelf_id, 42, {{{"slot", ref.slot}, {"qty", 30}}}));
  ASSERT_EQ(r.status, 202);
  EXPECT_EQ(BodyJson(r)["duplicate"], true);
  EXPECT_EQ(BodyJson(r)["shelf_version"], shelf1["version"]);
  EXPECT_EQ(BodyJson(h.Get("/inventory/v1/stock/" + ref.sku)), stock1);
  EXPECT_EQ(BodyJson(h.Get("/inventory/v1/shelves/" + ref.shelf_id)), shelf1);

  // Another device may use the same seq.
  r = h.Post("/inventory/v1/shelf-readings", Reading("dev-8", ref.shelf_id, 42, {{{"slot", ref.slot}, {"qty", 12}}}));
  ASSERT_EQ(r.status, 202);
  EXPECT_EQ(BodyJson(r)["duplicate"], false);
  auto stock2 = BodyJson(h.Get("/inventory/v1/stock/" + ref.sku));
  EXPECT_EQ(stock2["available"], 12);
  EXPECT_EQ(stock2["version"], stock1["version"].get<int>() + 1);

  // An unchanged quantity keeps the versions (they validate cached stock flags).
  r = h.Post("/inventory/v1/shelf-readings", Reading("dev-8", ref.shelf_id, 43, {{{"slot", ref.slot}, {"qty", 12}}}));
  ASSERT_EQ(r.status, 202);
  EXPECT_EQ(BodyJson(r)["duplicate"], false);
  EXPECT_EQ(BodyJson(h.Get("/inventory/v1/stock/" + ref.sku))["version"], stock2["version"]);
}

TEST(Inventory, OutOfStockSkuComesBackAfterARestockReading) {
  DomainHarness h;
  SeedSlotRef ref = SeedOutOfStockProduct(2);
  EXPECT_EQ(BodyJson(h.Get("/inventory/v1/stock/" + ref.sku))["available"], 0);
  ASSERT_EQ(
      h.Post("/inventory/v1/shelf-readings", Reading("dev-1", ref.shelf_id, 1, {{{"slot", ref.slot}, {"qty", 7}}}))
          .status,
      202);
  EXPECT_EQ(BodyJson(h.Get("/inventory/v1/stock/" + ref.sku))["available"], 7);
}

TEST(Inventory, ReadingValidationNamesTheField) {
  DomainHarness h;
  const nlohmann::json good = Reading("dev-1", "shelf-01-01", 1, {{{"slot", 0}, {"qty", 3}}});
  struct Case {
    const char* field;
    nlohmann::json value;
    int status;
  };
  const std::vector<Case> cases = {
      {"device_id", "bad id!", 400},
      {"device_id", 5, 400},
      {"shelf_id", "shelf 1", 400},
      {"shelf_id", "shelf-77-01", 404},
      {"seq", -1, 400},
      {"seq", 1.5, 400},
      {"seq", "1", 400},
      {"seq", nlohmann::json(18446744073709551615ULL), 400},
      {"ts", "now", 400},
      {"ts", -5, 400},
      {"readings", "x", 400},
      {"readings", {{{"slot", 24}, {"qty", 1}}}, 400},
      {"readings", {{{"slot", -1}, {"qty", 1}}}, 400},
      {"readings", {{{"slot", 0}, {"qty", 100001}}}, 400},
      {"readings", {{{"slot", 0}, {"qty", -1}}}, 400},
      {"readings", {{{"slot", 0}}}, 400},
      {"readings", {{{"qty", 0}}}, 400},
      {"readings", {1, 2}, 400},
      {"readings", {{{"slot", 0}, {"qty", 1}}, {{"slot", 0}, {"qty", 2}}}, 400},
      {"battery_pct", 101, 400},
      {"battery_pct", "full", 400},
      {"temp_c", "warm", 400},
  };
  for (const auto& c : cases) {
    nlohmann::json body = good;
    body[c.field] = c.value;
    auto r = h.Post("/inventory/v1/shelf-readings", body);
    EXPECT_EQ(r.status, c.status) << c.field << " = " << c.value.dump();
    if (c.status == 400) {
      EXPECT_NE(BodyJson(r)["error"]["message"].get<std::string>().find(std::string(c.field)), std::string::npos)
          << r.body;
    }
  }
  for (const char* field : {"device_id", "shelf_id", "seq", "ts", "readings"}) {
    nlohmann::json body = good;
    body.erase(field);
    EXPECT_EQ(h.Post("/inventory/v1/shelf-readings", body).status, 400) << field;
  }
  EXPECT_EQ(h.Post("/inventory/v1/shelf-readings", good).status, 202);
  // Nothing above changed the shelf except the one good reading.
  EXPECT_EQ(BodyJson(h.Get("/inventory/v1/shelves/shelf-01-01"))["slots"][0]["qty"], 3);
}

ShelfReading TypedReading(const std::string& device, const std::string& shelf, int64_t seq, int slot, int64_t qty) {
  ShelfReading r;
  r.device_id = device;
  r.shelf_id = shelf;
  r.seq = seq;
  r.ts = 1767604000;
  r.slots = {{slot, qty}};
  r.battery_pct = 80;
  return r;
}

// Submits through the typed entry and runs the scheduler until it answers.
StatusOr<ShelfReadingAccepted> SubmitTyped(DomainHarness& h, ShelfReading r, TimePoint deadline = TimePoint::max()) {
  std::optional<StatusOr<ShelfReadingAccepted>> got;
  int calls = 0;
  h.services->SubmitShelfReading(std::move(r), deadline, [&](StatusOr<ShelfReadingAccepted> a) {
    ++calls;
    got = std::move(a);
  });
  EXPECT_FALSE(got.has_value()) << "the answer must not come inline";
  h.scheduler.RunReady();
  EXPECT_EQ(calls, 1);
  return got.has_value() ? *got : Internal("no answer");
}

TEST(Inventory, TypedReadingIsStoredLikeTheHttpForm) {
  DomainHarness h;
  SeedSlotRef ref = SeedShelfOnlyProduct(1);
  auto shelf0 = BodyJson(h.Get("/inventory/v1/shelves/" + ref.shelf_id));
  auto a = SubmitTyped(h, TypedReading("dev-7", ref.shelf_id, 42, ref.slot, 0));
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_FALSE(a->duplicate);
  EXPECT_EQ(a->shelf_version, shelf0["version"].get<uint64_t>() + 1);
  EXPECT_EQ(a->changed_skus, std::vector<std::string>{ref.sku});
  EXPECT_EQ(BodyJson(h.Get("/inventory/v1/shelves/" + ref.shelf_id))["slots"][ref.slot]["qty"], 0);
  EXPECT_EQ(BodyJson(h.Get("/inventory/v1/stock/" + ref.sku))["available"], 0);

  // The same (device, seq) over HTTP is the same reading: a duplicate, whichever door it came through.
  auto r = h.Post("/inventory/v1/shelf-readings", Reading("dev-7", ref.shelf_id, 42, {{{"slot", ref.slot}, {"qty", 9}}}));
  ASSERT_EQ(r.status, 202);
  EXPECT_EQ(BodyJson(r)["duplicate"], true);
  auto again = SubmitTyped(h, TypedReading("dev-7", ref.shelf_id, 42, ref.slot, 9));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(again->shelf_version, a->shelf_version);
  EXPECT_TRUE(again->changed_skus.empty());
}

TEST(Inventory, TypedReadingIsCheckedLikeTheHttpForm) {
  DomainHarness h;
  struct Case {
    const char* what;
    std::function<void(ShelfReading&)> spoil;
    StatusCode code;
    const char* field;
  };
  const std::vector<Case> cases = {
      {"device id", [](ShelfReading& r) { r.device_id = "bad id!"; }, StatusCode::kInvalidArgument, "device_id"},
      {"unknown shelf", [](ShelfReading& r) { r.shelf_id = "shelf-77-01"; }, StatusCode::kNotFound, "shelf-77-01"},
      {"negative seq", [](ShelfReading& r) { r.seq = -1; }, StatusCode::kInvalidArgument, "seq"},
      {"ts past 9999", [](ShelfReading& r) { r.ts = 253402300800; }, StatusCode::kInvalidArgument, "ts"},
      {"slot past the shelf", [](ShelfReading& r) { r.slots = {{24, 1}}; }, StatusCode::kInvalidArgument, "readings.slot"},
      {"slot twice", [](ShelfReading& r) { r.slots = {{0, 1}, {0, 2}}; }, StatusCode::kInvalidArgument, "appears twice"},
      {"qty", [](ShelfReading& r) { r.slots = {{0, 100001}}; }, StatusCode::kInvalidArgument, "readings.qty"},
      {"battery", [](ShelfReading& r) { r.battery_pct = 101; }, StatusCode::kInvalidArgument, "battery_pct"},
      {"temperature", [](ShelfReading& r) { r.temp_c = 900; }, StatusCode::kInvalidArgument, "temp_c"},
      {"too many slots", [](ShelfReading& r) { r.slots.assign(65, {0, 1}); }, StatusCode::kInvalidArgument, "at most 64"},
  };
  for (const auto& c : cases) {
    ShelfReading r = TypedReading("dev-1", "shelf-01-01", 1, 0, 3);
    c.spoil(r);
    auto a = SubmitTyped(h, std::move(r));
    ASSERT_FALSE(a.ok()) << c.what;
    EXPECT_EQ(a.status().code(), c.code) << c.what << ": " << a.status().ToString();
    EXPECT_NE(a.status().message().find(c.field), std::string::npos) << c.what << ": " << a.status().message();
  }
  auto shelf = BodyJson(h.Get("/inventory/v1/shelves/shelf-01-01"));
  EXPECT_NE(shelf["slots"][0]["qty"], 3) << "a refused reading changed the shelf";
  ASSERT_TRUE(SubmitTyped(h, TypedReading("dev-1", "shelf-01-01", 1, 0, 3)).ok());
  EXPECT_EQ(BodyJson(h.Get("/inventory/v1/shelves/shelf-01-01"))["slots"][0]["qty"], 3);
}

TEST(Inventory, TypedReadingStillQueuedAtItsDeadlineIsNotStored) {
  DomainHarness h;
  SeedSlotRef ref = SeedShelfOnlyProduct(1);
  auto before = BodyJson(h.Get("/inventory/v1/shelves/" + ref.shelf_id));
  // The writer's turn comes at the current virtual time, which is the deadline itself.
  auto a = SubmitTyped(h, TypedReading("dev-3", ref.shelf_id, 5, ref.slot, 0), h.scheduler.Now());
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(BodyJson(h.Get("/inventory/v1/shelves/" + ref.shelf_id)), before);
  // Its retry is a new reading, not a duplicate of one that was never stored.
  auto retry = SubmitTyped(h, TypedReading("dev-3", ref.shelf_id, 5, ref.slot, 0));
  ASSERT_TRUE(retry.ok());
  EXPECT_FALSE(retry->duplicate);
}

TEST(Inventory, DirectCallsStopWhileAFaultIsInjectedOnTheService) {
  DomainHarness h;
  EXPECT_TRUE(h.services->DirectCallsAllowed("inventory"));
  Fault slow;
  slow.latency_ms = 50;
  ASSERT_TRUE(h.services->SetFault("reviews", slow).ok());
  EXPECT_TRUE(h.services->DirectCallsAllowed("inventory")) << "a fault elsewhere is not inventory's";
  EXPECT_FALSE(h.services->DirectCallsAllowed("reviews"));
  for (auto spoil : std::vector<std::function<void(Fault&)>>{[](Fault& f) { f.latency_ms = 1; },
                                                              [](Fault& f) { f.error_rate = 0.1; },
                                                              [](Fault& f) { f.hang = true; },
                                                              [](Fault& f) { f.down = true; }}) {
    Fault f;
    spoil(f);
    ASSERT_TRUE(h.services->SetFault("inventory", f).ok());
    EXPECT_FALSE(h.services->DirectCallsAllowed("inventory")) << f.ToJson().dump();
    h.services->ClearFaults();
    EXPECT_TRUE(h.services->DirectCallsAllowed("inventory"));
  }
  ASSERT_TRUE(h.services->SetFault("inventory", slow).ok());
  ASSERT_TRUE(h.services->SetFault("inventory", Fault{}).ok());
  EXPECT_TRUE(h.services->DirectCallsAllowed("inventory")) << "a fault set back to nothing is no fault";
}

// Readings that arrive while the writer is busy share one transaction; each is answered after it.
TEST(Inventory, ReadingsQueuedTogetherCommitTogether) {
  DomainHarness h;
  std::vector<int> commits;
  log::SetLevel(log::Level::kDebug);
  log::SetSink([&](std::string_view line) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && j.value("msg", "") == "domain: shelf readings committed") commits.push_back(j["readings"]);
  });
  constexpr int kReadings = 300;
  std::vector<std::shared_ptr<std::optional<HttpResponse>>> slots;
  for (int i = 0; i < kReadings; ++i) {
    slots.push_back(h.Start(MakeRequest(
        "POST", "/inventory/v1/shelf-readings",
        Reading("dev-" + std::to_string(i % 7), SeedShelfIdByNumber(i % 50), i, {{{"slot", 2}, {"qty", i % 9}}})
            .dump())));
  }
  // All requests are parsed and queued before the writer's first turn (tasks run in order), so the
  // writer finds them waiting: a full commit and the rest.
  h.scheduler.RunReady();
  log::SetSink(nullptr);
  log::SetLevel(log::Level::kInfo);
  for (const auto& slot : slots) {
    ASSERT_TRUE(slot->has_value());
    EXPECT_EQ((*slot)->status, 202);
  }
  EXPECT_EQ(commits, (std::vector<int>{256, kReadings - 256}));
}

// Many concurrent readings through real threads: every one is answered once, in a committed state.
TEST(Inventory, ConcurrentReadingsAllCommit) {
  TempDir dir;
  boost::asio::io_context io;
  auto guard = boost::asio::make_work_guard(io);
  AsioScheduler scheduler(io);
  std::vector<std::thread> pool;
  for (int i = 0; i < 2; ++i) pool.emplace_back([&io] { io.run(); });
  {
    auto created = DomainServices::Create(TestDomainOptions(dir.path()), scheduler);
    ASSERT_TRUE(created.ok()) << created.status().ToString();
    auto& services = **created;
    CredentialMinter minter(*LoadOrCreateInternalSecret(dir.path()));
    const std::string auth = "Bearer " + minter.Mint("", "iot");

    constexpr int kDevices = 20;
    constexpr int kPerDevice = 25;
    std::atomic<int> accepted{0}, other{0};
    std::vector<std::thread> senders;
    for (int d = 0; d < kDevices; ++d) {
      senders.emplace_back([&, d] {
        for (int s = 0; s < kPerDevice; ++s) {
          auto req = MakeRequest(
              "POST", "/inventory/v1/shelf-readings",
              Reading("dev-" + std::to_string(d), SeedShelfIdByNumber(d), s, {{{"slot", 1}, {"qty", s}}}).dump());
          req.headers.Set("Authorization", auth);
          services.Handle(std::move(req), [&](HttpResponse r) { (r.status == 202 ? accepted : other)++; });
        }
      });
    }
    for (auto& t : senders) t.join();
    ASSERT_TRUE(WaitFor([&] { return accepted + other == kDevices * kPerDevice; }));
    EXPECT_EQ(other.load(), 0);

    std::atomic<bool> done{false};
    nlohmann::json shelf;
    auto req = MakeRequest("GET", "/inventory/v1/shelves/" + SeedShelfIdByNumber(3));
    req.headers.Set("Authorization", auth);
    services.Handle(std::move(req), [&](HttpResponse r) {
      shelf = BodyJson(r);
      done = true;
    });
    ASSERT_TRUE(WaitFor([&] { return done.load(); }));
    // Handle() may run a device's calls in any order across threads; the slot holds one of its values
    // and the shelf moved past its seeded version.
    EXPECT_LT(shelf["slots"][1]["qty"].get<int>(), kPerDevice);
    EXPECT_GT(shelf["version"].get<int>(), 1);
  }
  guard.reset();
  for (auto& t : pool) t.join();
}

}  // namespace
}  // namespace bff::testing
