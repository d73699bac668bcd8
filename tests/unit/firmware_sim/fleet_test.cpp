// Tests for the fleet loop with a fake link: rates, windows, faults on purpose, the state file across
// a reboot, and a summary whose counts add up.
#include "firmware-sim/fleet.h"

#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "protocols/msgpack/iot_codec.h"
#include "support/test_support.h"

namespace bff::sim {
namespace {

using namespace std::chrono_literals;

// Answers from its own thread, like a real link: acknowledged unless told otherwise.
class FakeLink : public Link {
 public:
  ~FakeLink() override { Stop(); }
  std::string_view protocol() const override { return "fake"; }
  bool key_in_payload() const override { return true; }
  Status Start(const std::vector<DeviceIdentity>& devices) override {
    devices_ = devices;
    thread_ = std::thread([this] { Loop(); });
    return Status::Ok();
  }
  void SendTelemetry(size_t index, uint64_t seq, std::string payload, std::chrono::milliseconds,
                     std::function<void(Answer)> done) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++exchanges_;
    Answer a;
    auto decoded = DecodeTelemetry(payload);
    if (!decoded.ok()) {
      a = Answer{AnswerKind::kRejected, 400, "", 0};
    } else if (down_) {
      a = Answer{AnswerKind::kRetryLater, 503, "", 1};
    } else {
      a = Answer{AnswerKind::kAcknowledged, 204, EncodeShelfFlags(1, std::vector<bool>(8, true)), 0};
      stored_.insert({devices_.at(index).device_id, seq});
    }
    queue_.emplace_back(std::move(done), std::move(a));
    cv_.notify_one();
  }
  size_t connected() const override { return devices_.size(); }
  void Stop() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      cv_.notify_one();
    }
    if (thread_.joinable()) thread_.join();
  }

  void set_down(bool down) {
    std::lock_guard<std::mutex> lock(mu_);
    down_ = down;
  }
  std::set<std::pair<std::string, uint64_t>> stored() {
    std::lock_guard<std::mutex> lock(mu_);
    return stored_;
  }
  uint64_t exchanges() {
    std::lock_guard<std::mutex> lock(mu_);
    return exchanges_;
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      while (!queue_.empty()) {
        auto [done, a] = std::move(queue_.front());
        queue_.pop_front();
        lock.unlock();
        done(std::move(a));
        lock.lock();
      }
      if (stop_) return;
    }
  }

  std::vector<DeviceIdentity> devices_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<std::function<void(Answer)>, Answer>> queue_;
  std::set<std::pair<std::string, uint64_t>> stored_;
  uint64_t exchanges_ = 0;
  bool down_ = false;
  bool stop_ = false;
  std::thread thread_;
};

std::vector<DeviceIdentity> Devices(size_t n) {
  std::vector<DeviceIdentity> out;
  for (size_t i = 0; i < n; ++i) out.push_back({"sim-" + std::to_string(i), "shelf-01-01", std::string(32, 'a')});
  return out;
}

FleetOptions Fast() {
  FleetOptions o;
  o.timeout = 200ms;
  o.drain = 5s;
  o.device.backoff_min = 20ms;
  o.device.backoff_max = 100ms;
  return o;
}

TEST(FleetTest, AsFastAsAcknowledgedEveryReadingIsAcknowledgedOnceAndNoneIsLost) {
  FakeLink link;
  ASSERT_TRUE(link.Start(Devices(20)).ok());
  FleetOptions o = Fast();
  o.rate_max = true;
  o.device.window = 4;
  o.duration = 300ms;
  Fleet fleet(o, Devices(20), {&link});
  nlohmann::json s = fleet.Run();
  link.Stop();
  EXPECT_GT(s["acknowledged"].get<uint64_t>(), 100u) << s.dump();
  EXPECT_EQ(s["acknowledged"], s["sent"]);
  EXPECT_EQ(s["lost"], 0);
  EXPECT_EQ(s["buffered"], 0);
  EXPECT_EQ(link.stored().size(), s["acknowledged"].get<size_t>()) << "what the service stored is what was acknowledged";
  EXPECT_NE(s["latency_ms"]["p99"], nullptr);
  EXPECT_EQ(s["protocols"]["fake"]["acknowledged"], s["acknowledged"]);
}

TEST(FleetTest, ATargetRateIsRoughlyKeptAcrossTheFleet) {
  FakeLink link;
  ASSERT_TRUE(link.Start(Devices(10)).ok());
  FleetOptions o = Fast();
  o.rate = 200;
  o.duration = 1s;
  Fleet fleet(o, Devices(10), {&link});
  nlohmann::json s = fleet.Run();
  link.Stop();
  // 200 a second for 1 s; the bound is loose (the machine is shared) but far from "as fast as possible".
  EXPECT_GE(s["readings"].get<uint64_t>(), 100u) << s.dump();
  EXPECT_LE(s["readings"].get<uint64_t>(), 300u) << s.dump();
  EXPECT_EQ(s["lost"], 0);
}

TEST(FleetTest, LossyLinksAndAnOutageEndWithNothingLost) {
  FakeLink link;
  ASSERT_TRUE(link.Start(Devices(10)).ok());
  FleetOptions o = Fast();
  o.rate = 500;
  o.duration = 600ms;
  o.loss = 0.3;
  o.device.window = 4;
  o.drain = 20s;  // a bound: the run ends as soon as everything is delivered
  link.set_down(true);  // the first exchanges are refused with 5.03 until the outage ends
  Fleet fleet(o, Devices(10), {&link});
  std::thread heal([&] {
    bff::testing::WaitFor([&] { return link.exchanges() > 20; }, 5s);
    link.set_down(false);
  });
  nlohmann::json s = fleet.Run();
  heal.join();
  link.Stop();
  EXPECT_GT(s["retried"].get<uint64_t>(), 0u) << s.dump();
  EXPECT_GT(s["retry_later"].get<uint64_t>(), 0u);
  EXPECT_GT(s["lost_on_link"].get<uint64_t>(), 0u);
  EXPECT_EQ(s["lost"], 0) << s.dump();
  EXPECT_EQ(s["buffered"], 0);
  EXPECT_EQ(s["acknowledged"], s["sent"]);
  // A lost answer means the service stored a reading the device sent again: stored once all the same.
  EXPECT_EQ(link.stored().size(), s["acknowledged"].get<size_t>());
}

TEST(FleetTest, MalformedReadingsAreRefusedAndCountedNotLost) {
  FakeLink link;
  ASSERT_TRUE(link.Start(Devices(5)).ok());
  FleetOptions o = Fast();
  o.rate = 300;
  o.duration = 500ms;
  o.malformed = 0.5;
  Fleet fleet(o, Devices(5), {&link});
  nlohmann::json s = fleet.Run();
  link.Stop();
  EXPECT_GT(s["rejected"].get<uint64_t>(), 0u) << s.dump();
  EXPECT_EQ(s["rejected_by_code"]["400"], s["rejected"]);
  EXPECT_EQ(s["lost"], 0);
  EXPECT_EQ(s["acknowledged"].get<uint64_t>() + s["rejected"].get<uint64_t>(), s["sent"].get<uint64_t>());
}

TEST(FleetTest, UnacknowledgedReadingsSurviveARebootThroughTheStateFile) {
  bff::testing::TempDir dir;
  std::string state = dir.path() + "/fleet-state.json";
  std::set<uint64_t> first_seqs;
  {
    FakeLink link;
    ASSERT_TRUE(link.Start(Devices(3)).ok());
    link.set_down(true);
    FleetOptions o = Fast();
    o.rate = 100;
    o.duration = 300ms;
    o.drain = 100ms;
    o.state_file = state;
    Fleet fleet(o, Devices(3), {&link});
    nlohmann::json s = fleet.Run();
    link.Stop();
    ASSERT_GT(s["buffered"].get<uint64_t>(), 0u) << s.dump();
    EXPECT_EQ(s["acknowledged"], 0);
    for (size_t i = 0; i < fleet.size(); ++i) {
      nlohmann::json flash = fleet.device(i).Save();
      for (auto& r : flash["buffer"]) first_seqs.insert(r["q"].get<uint64_t>());
    }
  }
  ASSERT_TRUE(std::filesystem::exists(state));
  FakeLink link;
  ASSERT_TRUE(link.Start(Devices(3)).ok());
  FleetOptions o = Fast();
  o.rate = 1;  // hardly any new readings: the point is the old ones
  o.duration = 200ms;
  o.state_file = state;
  Fleet fleet(o, Devices(3), {&link});
  nlohmann::json s = fleet.Run();
  link.Stop();
  EXPECT_EQ(s["lost"], 0);
  std::set<uint64_t> stored;
  for (auto& [device, seq] : link.stored()) stored.insert(seq);
  for (uint64_t seq : first_seqs) EXPECT_TRUE(stored.count(seq)) << "seq " << seq << " resent after the reboot with the same seq";
}

}  // namespace
}  // namespace bff::sim
