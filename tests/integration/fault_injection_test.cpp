// Faults with real processes: bffd in front of bff-domain, whose services are made slow, erroring,
// hanging or down one at a time and all together, killed with SIGKILL and restarted, and left
// without disk space. Each case ends with bffd healthy and every acknowledged write stored.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "domain/seed.h"
#include "support/processes.h"

namespace bff::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr char kSku[] = "SKU-10001";
// The web page's optional parts, as the page's `degraded` list names them.
const std::vector<std::string> kOptionalServices = {"inventory", "reviews", "recommendations", "promotions"};
// A fault for each way a service can fail. The latency is far past any of the page's budgets.
const std::vector<std::pair<std::string, std::string>> kFaults = {
    {"slow", R"({"latency_ms": 3000})"},
    {"erroring", R"({"error_rate": 1.0})"},
    {"hanging", R"({"hang": true})"},
    {"down", R"({"down": true})"},
};
// Longest a degraded page may take: the slowest optional budget (recommendations, 200 ms) plus slack
// for a loaded machine. A page that waited for the fault would take 3 s or forever.
constexpr auto kDegradedPageBudget = 1500ms;

class FaultInjectionTest : public ::testing::Test {
 protected:
  // bff-domain on `domain_dir` (bffd's own data dir by default), bffd pointed at it.
  void StartDomain(const std::string& domain_dir, uint16_t port = 0) {
    domain_dir_ = domain_dir;
    std::vector<std::string> args;
    if (port != 0) args = {"--listen", "127.0.0.1:" + std::to_string(port)};
    domain_ = std::make_unique<DomainProcess>(domain_dir, args);
    ASSERT_TRUE(domain_->ready()) << domain_->process().Stderr();
  }

  void StartBffd() {
    if (domain_dir_ != dir_.path()) {
      // bffd mints the internal credential with the secret the domain checks it against.
      std::filesystem::copy_file(domain_dir_ + "/internal.key", dir_.path() + "/internal.key",
                                 std::filesystem::copy_options::overwrite_existing);
    }
    std::ofstream(dir_.path() + "/bffd.toml") << "[mqtt]\nenabled = false\n[iot]\ndemo_fleet = 0\n"
                                                 "[web]\ncookie_secure = false\n";
    bffd_ = std::make_unique<BffdProcess>(
        dir_.path(), std::vector<std::string>{"--config", dir_.path() + "/bffd.toml", "--domain", domain_->base_url()});
    ASSERT_TRUE(bffd_->ready()) << bffd_->process().Stderr();
  }

  StatusOr<HttpResponse> Fault(const std::string& service, const std::string& body) {
    HttpRequest r;
    r.method = "PUT";
    r.path = "/admin/v1/faults/" + service;
    r.body = body;
    r.headers.Set("Content-Type", "application/json");
    return http_.Send(domain_->base_url(), r);
  }

  void ClearFaults() {
    HttpRequest r;
    r.method = "DELETE";
    r.path = "/admin/v1/faults";
    auto cleared = http_.Send(domain_->base_url(), r);
    ASSERT_TRUE(cleared.ok() && cleared->status == 204);
  }

  StatusOr<HttpResponse> Page(const std::string& sku = kSku) { return http_.Get(bffd_->http_url(), "/web/v1/products/" + sku); }

  // Logs in as a demo user; keeps the session cookie and CSRF token for AddToCart.
  void Login(const std::string& user = "alice", const std::string& password = "demo-alice") {
    HttpRequest r;
    r.method = "POST";
    r.path = "/web/v1/session";
    r.body = json{{"username", user}, {"password", password}}.dump();
    r.headers.Set("Content-Type", "application/json");
    auto login = http_.Send(bffd_->http_url(), r);
    ASSERT_TRUE(login.ok());
    ASSERT_EQ(login->status, 201) << login->body;
    std::string set_cookie(login->headers.Get("Set-Cookie"));
    cookie_ = set_cookie.substr(0, set_cookie.find(';'));
    csrf_ = json::parse(login->body)["csrf_token"];
  }

  StatusOr<HttpResponse> AddToCart(const std::string& sku, int qty = 1) {
    HttpRequest r;
    r.method = "POST";
    r.path = "/web/v1/cart/items";
    r.body = json{{"sku", sku}, {"qty", qty}}.dump();
    r.headers.Set("Content-Type", "application/json");
    r.headers.Set("Cookie", cookie_);
    r.headers.Set("X-CSRF-Token", csrf_);
    return http_.Send(bffd_->http_url(), r, 10s);
  }

  // The quantity of `sku` in a cart answer, 0 when absent.
  static int64_t QtyIn(const HttpResponse& r, const std::string& sku) {
    auto body = json::parse(r.body, nullptr, false);
    if (!body.is_object() || !body.contains("cart")) return -1;
    for (const auto& item : body["cart"]["items"]) {
      if (item.value("sku", "") == sku) return item.value("qty", int64_t{0});
    }
    return 0;
  }

  // Every answer bffd gives in trouble is the contract's JSON error.
  static void ExpectJsonError(const HttpResponse& r, int status) {
    EXPECT_EQ(r.status, status) << r.body;
    auto body = json::parse(r.body, nullptr, false);
    ASSERT_TRUE(body.is_object() && body.contains("error")) << r.body;
    EXPECT_TRUE(body["error"]["code"].is_string()) << r.body;
    EXPECT_TRUE(body["error"]["trace_id"].is_string()) << r.body;
  }

  // bffd is healthy: ready on the admin port and serving a whole product page.
  void ExpectHealthy() {
    bool ready = WaitFor(
        [&] {
          auto r = http_.Get(bffd_->admin_url(), "/readyz");
          return r.ok() && r->status == 200;
        },
        30s);
    EXPECT_TRUE(ready) << "bffd never became ready again";
    auto page = Page();
    ASSERT_TRUE(page.ok());
    EXPECT_EQ(page->status, 200) << page->body;
    EXPECT_EQ(json::parse(page->body)["degraded"], json::array()) << page->body;
    EXPECT_TRUE(bffd_->process().running());
  }

  TempDir dir_;
  std::string domain_dir_;
  TestHttpClient http_;
  std::unique_ptr<DomainProcess> domain_;
  std::unique_ptr<BffdProcess> bffd_;
  std::string cookie_, csrf_;
};

TEST_F(FaultInjectionTest, EachOptionalServiceFailingAloneOnlyDegradesItsOwnPart) {
  StartDomain(dir_.path());
  StartBffd();
  for (const auto& service : kOptionalServices) {
    for (const auto& [kind, fault] : kFaults) {
      SCOPED_TRACE(service + " " + kind);
      auto set = Fault(service, fault);
      ASSERT_TRUE(set.ok() && set->status == 200);
      auto t0 = std::chrono::steady_clock::now();
      auto page = Page();
      auto took = std::chrono::steady_clock::now() - t0;
      ASSERT_TRUE(page.ok()) << page.status().message();
      ASSERT_EQ(page->status, 200) << page->body;
      json body = json::parse(page->body);
      EXPECT_EQ(body["degraded"], json::array({service})) << page->body;
      EXPECT_EQ(body["name"].get<std::string>().empty(), false) << "the catalog part is whole";
      EXPECT_LT(took, kDegradedPageBudget) << "the page waited for the failing service";
      ClearFaults();
    }
  }
  ExpectHealthy();
}

TEST_F(FaultInjectionTest, AllServicesFailingTogetherDegradeThePageOrRefuseItWithoutCatalog) {
  StartDomain(dir_.path());
  StartBffd();
  Login();
  auto warm = http_.Get(bffd_->http_url(), std::string("/mobile/v1/products/") + kSku);
  ASSERT_TRUE(warm.ok() && warm->status == 200);
  for (size_t i = 0; i < kOptionalServices.size(); ++i) {
    ASSERT_TRUE(Fault(kOptionalServices[i], kFaults[i].second).ok());
  }
  auto page = Page();
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->status, 200) << page->body;
  std::set<std::string> degraded;
  json body = json::parse(page->body);
  for (const auto& d : body["degraded"]) degraded.insert(d.get<std::string>());
  EXPECT_EQ(degraded, std::set<std::string>(kOptionalServices.begin(), kOptionalServices.end())) << page->body;

  // Without catalog there is no page: 503 with Retry-After, and the mobile app's cached copy still
  // answers. A cart add needs inventory (down here): refused, and nothing is added.
  ASSERT_TRUE(Fault("catalog", R"({"down": true})").ok());
  ASSERT_TRUE(Fault("cart", R"({"hang": true})").ok());
  auto refused = Page();
  ASSERT_TRUE(refused.ok());
  ExpectJsonError(*refused, 503);
  EXPECT_FALSE(refused->headers.Get("Retry-After").empty());
  auto cached = http_.Get(bffd_->http_url(), std::string("/mobile/v1/products/") + kSku);
  ASSERT_TRUE(cached.ok());
  EXPECT_EQ(cached->status, 200) << "the mobile cache answers while the catalog is down: " << cached->body;
  auto add = AddToCart("SKU-10002");
  ASSERT_TRUE(add.ok());
  EXPECT_GE(add->status, 500) << add->body;
  ExpectJsonError(*add, add->status);

  ClearFaults();
  ExpectHealthy();
  auto after = AddToCart("SKU-10002");
  ASSERT_TRUE(after.ok());
  ASSERT_EQ(after->status, 200) << after->body;
  EXPECT_EQ(QtyIn(*after, "SKU-10002"), 1) << "the refused add left nothing behind: " << after->body;
}

// SIGKILL the domain while a web user keeps adding to the cart; restart it on the same port. bffd
// answers 503 meanwhile, never hangs, recovers by itself, and every add it acknowledged is stored.
TEST_F(FaultInjectionTest, ADomainKilledAndRestartedMidTrafficLosesNothingAcknowledged) {
  StartDomain(dir_.path());
  const uint16_t port = domain_->port();
  StartBffd();
  Login();
  const std::string sku = "SKU-10003";
  int acknowledged = 0, attempted = 0, refused_while_down = 0;
  int64_t last_qty = 0;
  auto add = [&]() {
    ++attempted;
    auto r = AddToCart(sku);
    if (!r.ok()) return;  // the test client's own timeout: not acknowledged
    if (r->status == 200) {
      ++acknowledged;
      last_qty = QtyIn(*r, sku);
    } else {
      ExpectJsonError(*r, r->status);
      ++refused_while_down;
    }
  };
  for (int i = 0; i < 10; ++i) add();
  EXPECT_EQ(acknowledged, 10);
  domain_->process().Signal(SIGKILL);
  domain_->process().Wait(10s);
  for (int i = 0; i < 5; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    add();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s) << "an answer waited on a dead domain";
  }
  EXPECT_EQ(refused_while_down, 5) << "no acknowledgement without a domain";
  auto readyz = http_.Get(bffd_->admin_url(), "/readyz");
  ASSERT_TRUE(readyz.ok());
  EXPECT_EQ(readyz->status, 503) << "not ready while the domain is gone: " << readyz->body;
  auto page = Page();
  ASSERT_TRUE(page.ok());
  ExpectJsonError(*page, 503);

  StartDomain(dir_.path(), port);
  ExpectHealthy();
  for (int i = 0; i < 10; ++i) add();
  EXPECT_EQ(acknowledged, 20);
  EXPECT_GE(last_qty, acknowledged) << "every acknowledged add is in the cart";
  EXPECT_LE(last_qty, attempted);
}

// The domain's SQLite on a nearly full file system: writes fail with a 5xx from the domain, bffd
// answers 503 and keeps serving reads; when space returns, writes work again and the database
// passes SQLite's integrity check.
TEST_F(FaultInjectionTest, ADiskFullUnderTheDomainFailsWritesCleanlyAndCorruptsNothing) {
  const std::string mnt = dir_.path() + "/small-disk";
  ASSERT_EQ(mkdir(mnt.c_str(), 0700), 0);
  if (mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=64m") != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs here (" << std::strerror(errno) << "): run as root";
  }
  struct Unmount {
    std::string path;
    ~Unmount() { umount2(path.c_str(), MNT_DETACH); }
  } unmount{mnt};
  StartDomain(mnt);
  StartBffd();
  Login();
  auto before = AddToCart("SKU-10004");
  ASSERT_TRUE(before.ok());
  ASSERT_EQ(before->status, 200) << before->body;

  // Fill what is left of the file system.
  const std::string filler = mnt + "/filler";
  {
    std::ofstream out(filler, std::ios::binary);
    std::string block(1 << 20, 'x');
    while (out.write(block.data(), static_cast<std::streamsize>(block.size()))) {}
  }
  {
    std::ofstream out(filler, std::ios::binary | std::ios::app);
    while (out.put('x')) {}
  }
  int refused = 0;
  for (int i = 0; i < 20 && refused == 0; ++i) {
    auto full = AddToCart("SKU-10005");
    ASSERT_TRUE(full.ok());
    if (full->status != 200) {
      ExpectJsonError(*full, 503);
      ++refused;
    }
  }
  EXPECT_EQ(refused, 1) << "a write on a full disk is refused (within a few tries: SQLite may have pages in hand)";
  auto page = Page();
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->status, 200) << "reads go on: " << page->body;
  EXPECT_TRUE(domain_->process().running()) << domain_->process().Stderr();
  EXPECT_NE(domain_->process().Stderr().find("disk is full"), std::string::npos) << "the domain logs why writes fail";

  std::filesystem::remove(filler);
  bool writes_back = WaitFor(
      [&] {
        auto r = AddToCart("SKU-10006");
        return r.ok() && r->status == 200;
      },
      20s);
  EXPECT_TRUE(writes_back) << "writes work again once there is space";
  ExpectHealthy();

  domain_->process().Signal(SIGTERM);
  EXPECT_EQ(domain_->process().Wait(20s), 0) << domain_->process().Stderr();
  sqlite3* db = nullptr;
  std::string db_file;
  for (const auto& e : std::filesystem::directory_iterator(mnt)) {
    if (e.path().extension() == ".db" || e.path().extension() == ".sqlite") db_file = e.path().string();
  }
  ASSERT_FALSE(db_file.empty()) << "no database file in " << mnt;
  ASSERT_EQ(sqlite3_open_v2(db_file.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  std::string check;
  sqlite3_exec(
      db, "PRAGMA integrity_check",
      [](void* out, int, char** values, char**) {
        *static_cast<std::string*>(out) += values[0] ? values[0] : "";
        return 0;
      },
      &check, nullptr);
  sqlite3_close(db);
  EXPECT_EQ(check, "ok");
}

}  // namespace
}  // namespace bff::testing
