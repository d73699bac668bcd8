// A fleet of simulated shelf sensors on one Asio thread (a timer per device, no thread per device):
// duty cycles or a target aggregate rate, the shop they watch, faults on purpose, progress, the
// JSON summary, and the state file that keeps unacknowledged readings across a reboot.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "firmware-sim/device.h"
#include "firmware-sim/link.h"
#include "firmware-sim/shop.h"

namespace bff::sim {

struct FleetOptions {
  std::chrono::milliseconds duration{0};        // readings are taken this long; 0 = until Stop()
  double rate = 0;                              // aggregate wakes per second; 0 = duty cycle of `interval`
  bool rate_max = false;                        // as fast as acknowledged, `device.window` outstanding each
  std::chrono::milliseconds interval{10000};    // duty cycle: a device wakes about this often
  double jitter = 0.2;                          // ± share of each sleep
  std::chrono::milliseconds timeout{5000};      // one exchange
  std::chrono::milliseconds drain{15000};       // after the duration: time to deliver what is buffered
  DeviceOptions device;
  ShopOptions shop;
  uint64_t seed = 1;
  size_t slot_count = 0;                        // 0 = learn it from the first stock flags
  std::string state_file;                       // "" = no state kept
  std::chrono::milliseconds save_every{5000};
  // Faults on purpose.
  double loss = 0;            // share of exchanges lost on the link: half the requests, half the answers
  int clock_skew_s = 0;       // each device's clock is off by up to ± this
  size_t flood_devices = 0;   // the first N devices send every `flood_interval`, ignoring back-off
  std::chrono::milliseconds flood_interval{10};
  double malformed = 0;       // share of readings sent as broken msgpack
  // Progress: a line every `progress_every` (rewritten in place on a terminal).
  std::chrono::milliseconds progress_every{1000};
  bool progress_tty = false;
  std::ostream* progress = nullptr;  // nullptr: none
};

// Latencies of acknowledged exchanges, in ms.
class LatencySamples {
 public:
  void Add(double ms);
  nlohmann::json Summary() const;  // {p50, p90, p99, max, count}
  size_t count() const { return count_; }

 private:
  static constexpr size_t kMaxKept = 2000000;  // beyond it, every other sample (memory stays bounded)
  std::vector<float> kept_;
  size_t count_ = 0;
  double max_ = 0;
};

// The devices link `k` of `links` serves, in its own index order.
std::vector<DeviceIdentity> DevicesForLink(const std::vector<DeviceIdentity>& all, size_t k, size_t links);

class Fleet {
 public:
  // devices[i] speaks over links[i % links.size()] as that link's device i / links.size() (several
  // protocols can share one fleet; see DevicesForLink). Stop the links before destroying the Fleet:
  // their late answers are posted to its loop.
  Fleet(FleetOptions options, std::vector<DeviceIdentity> devices, std::vector<Link*> links);
  ~Fleet();

  // Runs the duration (or until Stop()), then drains; returns the summary. Links must be started.
  nlohmann::json Run();
  // From any thread (a signal handler thread): stop taking readings, drain briefly, return from Run().
  void Stop();

  // Valid after Run() returned.
  const Device& device(size_t i) const;
  size_t size() const;

 private:
  class Impl;  // the Asio loop, timers and members: all on one thread
  std::unique_ptr<Impl> impl_;
};

}  // namespace bff::sim
