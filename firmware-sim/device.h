// One simulated shelf sensor's firmware logic, apart from any transport and clock: the buffer of
// unacknowledged readings (the device's flash), what to send now, what an answer means, back-off,
// and the slot LEDs lit from the stock flags. Time comes in as arguments, so tests drive it by hand.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/rng.h"
#include "firmware-sim/link.h"

namespace bff::sim {

using SimClock = std::chrono::steady_clock;
using SimTime = SimClock::time_point;

// Contract bound: at most this many [slot, qty] pairs in one telemetry message.
inline constexpr size_t kMaxSlotsPerReading = 64;

struct DeviceOptions {
  size_t buffer_capacity = 64;  // unacknowledged readings kept; past it the oldest is dropped (counted)
  size_t window = 1;            // readings outstanding at once
  std::chrono::milliseconds backoff_min{1000};
  std::chrono::milliseconds backoff_max{60000};
  double backoff_jitter = 0.25;  // ± share of each back-off, so a fleet does not retry in step
};

// One wake's report of its shelf.
struct Reading {
  uint64_t seq = 0;
  uint64_t ts = 0;  // unix seconds, as the device's clock says
  std::vector<std::pair<uint32_t, uint32_t>> slots;  // [slot, qty]
  int battery_pct = 100;
  int temp_decicelsius = 200;
  bool malformed = false;  // sent as broken bytes on purpose (a fault of the simulation)
  uint32_t attempts = 0;   // sends so far
};

struct DeviceCounters {
  uint64_t recorded = 0;      // readings taken
  uint64_t sent = 0;          // first sends
  uint64_t retried = 0;       // sends after the first
  uint64_t acknowledged = 0;  // readings acknowledged (each once)
  uint64_t duplicate_acks = 0;
  uint64_t rejected = 0;      // refused for good (and dropped)
  std::map<int, uint64_t> rejected_by_code;
  uint64_t retry_later = 0;   // 4.29 / 5.03 answers
  uint64_t no_answer = 0;     // exchanges that timed out
  uint64_t dropped = 0;       // buffer full: oldest dropped
  uint64_t dropped_after_send = 0;  // of which had been sent at least once (they count as lost)
};

// What the device decides to do with an answer, for the caller's log.
enum class Verdict { kDone, kDropped, kBackOff };

class Device {
 public:
  Device(DeviceIdentity identity, DeviceOptions options, uint64_t first_seq, uint64_t rng_seed);

  const DeviceIdentity& identity() const { return identity_; }
  // Slots of the shelf: 0 until the first stock flags told it (until then a wake reports slot 0 only,
  // which every shelf has), or as configured.
  size_t slot_count() const { return slot_count_; }
  void set_slot_count(size_t n) { slot_count_ = std::min(n, kMaxSlotsPerReading); }
  uint64_t version() const { return version_; }
  bool has_version() const { return has_version_; }
  const std::vector<bool>& leds() const { return leds_; }  // lit = in stock
  const DeviceCounters& counters() const { return counters_; }
  size_t buffered() const { return buffer_.size(); }
  // Buffered readings that went out at least once (not lost: the device still has them).
  size_t buffered_sent() const;
  size_t in_flight() const { return in_flight_.size(); }
  bool drained() const { return buffer_.empty(); }
  uint64_t next_seq() const { return next_seq_; }
  SimTime backoff_until() const { return backoff_until_; }

  // A wake: the reading of `qty` (one per slot) enters the buffer with the next seq.
  void Record(uint64_t unix_s, const std::vector<uint32_t>& qty, int battery_pct, int temp_decicelsius,
              bool malformed = false);
  // Readings to send now, oldest first: none during a back-off, at most `window` in flight. Each
  // returned reading is marked in flight (copies: the buffer may drop the original meanwhile).
  std::vector<Reading> Due(SimTime now);
  // The answer to the exchange of `seq`.
  Verdict OnAnswer(uint64_t seq, const Answer& answer, SimTime now);

  // The flash: next seq, slot count and the buffer; restored after a reboot.
  nlohmann::json Save() const;
  void Restore(const nlohmann::json& state);

 private:
  void BackOff(SimTime now, std::optional<std::chrono::milliseconds> hint);
  void TakeFlags(const std::string& encoded);

  DeviceIdentity identity_;
  DeviceOptions options_;
  Rng rng_;
  uint64_t next_seq_;
  size_t slot_count_ = 0;
  uint64_t version_ = 0;
  bool has_version_ = false;
  std::vector<bool> leds_;
  std::deque<Reading> buffer_;
  std::set<uint64_t> in_flight_;
  std::chrono::milliseconds backoff_{0};
  SimTime backoff_until_{};
  DeviceCounters counters_;
};

}  // namespace bff::sim
