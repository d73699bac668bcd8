// firmware-sim against a real bffd and mosquitto: a hundred devices for ten seconds over each protocol
// end with nothing lost and exactly the acknowledged readings in inventory, also across a broker
// restart; the demo scenario and the faults it can play show up in the BFF's answers.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

#include <nlohmann/json.hpp>

#include "support/processes.h"

namespace bff::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr size_t kDevices = 100;

class FirmwareSimTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access("/usr/sbin/mosquitto", X_OK) != 0) GTEST_SKIP() << "mosquitto is not installed";
    if (access(BinPath("firmware-sim").c_str(), X_OK) != 0) GTEST_FAIL() << "firmware-sim is not built";
    keys_ = dir_.path() + "/sim-keys.txt";
    std::string out;
    ASSERT_EQ(RunCommand(Sim() + " --provision " + std::to_string(kDevices) + " --data " + dir_.path() + " --keys " + keys_ +
                             " --provision-rate 100 --provision-burst 200 2>&1",
                         &out),
              0)
        << out;
    broker_ = std::make_unique<MosquittoProcess>(dir_.path(), dir_.path() + "/broker");
    ASSERT_TRUE(broker_->ready());
    std::ofstream(dir_.path() + "/bffd.toml") << "[iot]\ndemo_fleet = 0\n[domain]\npassword_iterations = 1000\n";
    bffd_ = std::make_unique<BffdProcess>(
        dir_.path(), std::vector<std::string>{"--config", dir_.path() + "/bffd.toml", "--mqtt", broker_->uri()});
    ASSERT_TRUE(bffd_->ready()) << bffd_->process().Stderr();
    ASSERT_TRUE(WaitFor([&] { return bffd_->process().Stderr().find("mqtt: connected and subscribed") != std::string::npos; }, 20s));
  }

  static std::string Sim() { return BinPath("firmware-sim"); }

  // Sets `flag` to `value` in args (replacing a value already there).
  static void Set(std::vector<std::string>& args, const std::string& flag, const std::string& value) {
    auto it = std::find(args.begin(), args.end(), flag);
    if (it != args.end() && it + 1 != args.end()) {
      *(it + 1) = value;
    } else {
      args.insert(args.end(), {flag, value});
    }
  }

  std::vector<std::string> SimArgs(const std::string& protocol, const std::string& report, double rate, int seconds) {
    return {"--protocol", protocol, "--keys", keys_, "--devices", std::to_string(kDevices), "--rate", std::to_string(rate),
            "--duration", std::to_string(seconds), "--drain", "30", "--timeout", "3", "--backoff-max", "4", "--seed", "7",
            "--report", report,
            "--mqtt", broker_->uri(), "--coap", "127.0.0.1:" + std::to_string(bffd_->coap_port()), "--coaps",
            "127.0.0.1:" + std::to_string(bffd_->coaps_port()), "--log-level", "warn"};
  }

  json RunSim(const std::vector<std::string>& args, const std::string& report) {
    ChildProcess sim(Sim(), args, dir_.path());
    EXPECT_EQ(sim.Wait(120s), 0) << sim.Stderr();
    json r = json::parse(ReadFile(report), nullptr, false);
    EXPECT_TRUE(r.is_object()) << sim.Stderr();
    return r;
  }

  // Readings inventory stored from the simulated devices, counted with the sqlite3 shell.
  uint64_t StoredReadings(const std::string& protocol_prefix = "") {
    std::string out;
    std::string where = "device_id LIKE 'sim-%'";
    if (!protocol_prefix.empty()) where = "device_id LIKE '" + protocol_prefix + "%'";
    EXPECT_EQ(RunCommand("sqlite3 -readonly " + dir_.path() + "/domain.db \"SELECT COUNT(*) FROM shelf_readings WHERE " + where +
                             "\"",
                         &out),
              0);
    try {
      return std::stoull(out);
    } catch (const std::exception&) {
      return 0;
    }
  }

  // What every clean run must show.
  void ExpectNothingLost(const json& r, const std::string& what) {
    EXPECT_GT(r.value("acknowledged", 0), 500) << what << ": " << r.dump();
    EXPECT_EQ(r.value("lost", -1), 0) << what << ": " << r.dump();
    EXPECT_EQ(r.value("buffered", -1), 0) << what << ": " << r.dump();
    EXPECT_EQ(r.value("dropped", -1), 0) << what << ": " << r.dump();
    EXPECT_EQ(r.value("rejected", -1), 0) << what << ": " << r.dump();
    EXPECT_NE(r["latency_ms"]["p50"], nullptr);
    EXPECT_NE(r["latency_ms"]["p99"], nullptr);
  }

  TempDir dir_;
  std::string keys_;
  std::unique_ptr<MosquittoProcess> broker_;
  std::unique_ptr<BffdProcess> bffd_;
};

TEST_F(FirmwareSimTest, AHundredDevicesForTenSecondsOverEachProtocolLoseNothing) {
  uint64_t before = 0;
  for (const std::string protocol : {"mqtt", "coap", "coaps"}) {
    std::string report = dir_.path() + "/report-" + protocol + ".json";
    json r = RunSim(SimArgs(protocol, report, 100, 10), report);
    ExpectNothingLost(r, protocol);
    uint64_t stored = StoredReadings();
    EXPECT_EQ(stored - before, r.value("acknowledged", uint64_t{0})) << protocol << ": inventory holds exactly what was acknowledged";
    before = stored;
    EXPECT_GT(r["protocols"][protocol]["acknowledged"].get<uint64_t>(), 0u) << r.dump();
  }
}

TEST_F(FirmwareSimTest, ABrokerKilledAndRestartedMidRunLosesNothing) {
  std::string report = dir_.path() + "/report-restart.json";
  ChildProcess sim(Sim(), SimArgs("mqtt", report, 100, 12), dir_.path());
  ASSERT_TRUE(WaitFor([&] { return StoredReadings() > 100; }, 30s)) << sim.Stderr();
  ASSERT_TRUE(broker_->Restart());
  uint64_t at_restart = StoredReadings();
  ASSERT_EQ(sim.Wait(120s), 0) << sim.Stderr();
  json r = json::parse(ReadFile(report), nullptr, false);
  ASSERT_TRUE(r.is_object());
  ExpectNothingLost(r, "broker restart");
  EXPECT_GT(StoredReadings(), at_restart) << "the fleet went on after the restart";
  EXPECT_EQ(StoredReadings(), r.value("acknowledged", uint64_t{0}));
  EXPECT_GT(r.value("retried", 0) + r.value("no_answer", 0), 0) << "the outage was felt: " << r.dump();
}

TEST_F(FirmwareSimTest, FaultsOnPurposeShowInTheAnswers) {
  // 20 % of exchanges lost on the link, a tenth of the readings malformed, clocks off by up to an hour.
  std::string report = dir_.path() + "/report-faults.json";
  std::vector<std::string> args = SimArgs("coap", report, 100, 5);
  for (const char* a : {"--loss", "0.2", "--malformed", "0.1", "--clock-skew", "3600"}) args.push_back(a);
  Set(args, "--timeout", "1");
  json r = RunSim(args, report);
  EXPECT_EQ(r.value("lost", -1), 0) << r.dump();
  EXPECT_GT(r.value("lost_on_link", 0), 0) << r.dump();
  EXPECT_GT(r.value("retried", 0), 0);
  EXPECT_GT(r["rejected_by_code"].value("400", 0), 0) << "malformed readings are refused: " << r.dump();
  EXPECT_EQ(r.value("rejected", 0), r["rejected_by_code"].value("400", 0));
  EXPECT_EQ(StoredReadings(), r.value("acknowledged", uint64_t{0})) << "nothing malformed was stored";
}

TEST_F(FirmwareSimTest, AFloodingDeviceIsHeldBackAndARevokedOneRefused) {
  // Three more devices with small buckets; the last one's key is revoked at once. bffd notices new and
  // revoked keys by itself (it watches keys.db).
  auto reloads = [&] {
    std::string log = bffd_->process().Stderr();
    size_t n = 0;
    for (size_t at = log.find("reloading"); at != std::string::npos; at = log.find("reloading", at + 1)) ++n;
    return n;
  };
  size_t before = reloads();
  std::string keys = dir_.path() + "/flood-keys.txt";
  std::string out;
  ASSERT_EQ(RunCommand(Sim() + " --provision 3 --prefix flood --revoke 1 --provision-rate 1 --provision-burst 3 --data " +
                           dir_.path() + " --keys " + keys + " 2>&1",
                       &out),
            0)
      << out;
  ASSERT_TRUE(WaitFor([&] { return reloads() > before; }, 20s)) << bffd_->process().Stderr();
  std::string report = dir_.path() + "/report-flood.json";
  std::vector<std::string> args = SimArgs("coap", report, 10, 4);
  Set(args, "--keys", keys);
  Set(args, "--devices", "3");
  Set(args, "--drain", "3");
  Set(args, "--flood", "1");
  json r = RunSim(args, report);
  EXPECT_GT(r.value("retry_later", 0), 0) << "the flooder is rate limited (4.29): " << r.dump();
  EXPECT_GT(r["rejected_by_code"].value("401", 0), 0) << "the revoked device is refused (4.01): " << r.dump();
}

}  // namespace
}  // namespace bff::testing
