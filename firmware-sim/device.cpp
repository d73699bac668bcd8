// A simulated shelf sensor's firmware rules: keep every reading until it is acknowledged, resend in
// order with the same seq, drop the oldest only when the buffer is full, back off on silence.
#include "firmware-sim/device.h"

#include <algorithm>

#include "protocols/msgpack/iot_codec.h"

namespace bff::sim {

Device::Device(DeviceIdentity identity, DeviceOptions options, uint64_t first_seq, uint64_t rng_seed)
    : identity_(std::move(identity)), options_(options), rng_(rng_seed), next_seq_(first_seq) {
  options_.buffer_capacity = std::max<size_t>(1, options_.buffer_capacity);
  options_.window = std::max<size_t>(1, options_.window);
}

void Device::Record(uint64_t unix_s, const std::vector<uint32_t>& qty, int battery_pct, int temp_decicelsius,
                    bool malformed) {
  Reading r;
  r.seq = next_seq_++;
  r.ts = unix_s;
  size_t n = slot_count_ == 0 ? 1 : std::min(slot_count_, qty.size());
  for (size_t slot = 0; slot < n && slot < qty.size(); ++slot) r.slots.emplace_back(static_cast<uint32_t>(slot), qty[slot]);
  r.battery_pct = battery_pct;
  r.temp_decicelsius = temp_decicelsius;
  r.malformed = malformed;
  ++counters_.recorded;
  // Full: the oldest reading not on the wire goes (one on the wire may still be acknowledged).
  while (buffer_.size() >= options_.buffer_capacity) {
    auto victim = std::find_if(buffer_.begin(), buffer_.end(), [&](const Reading& b) { return !in_flight_.count(b.seq); });
    if (victim == buffer_.end()) victim = buffer_.begin();
    ++counters_.dropped;
    if (victim->attempts > 0) ++counters_.dropped_after_send;
    in_flight_.erase(victim->seq);
    buffer_.erase(victim);
  }
  buffer_.push_back(std::move(r));
}

size_t Device::buffered_sent() const {
  return static_cast<size_t>(std::count_if(buffer_.begin(), buffer_.end(), [](const Reading& r) { return r.attempts > 0; }));
}

std::vector<Reading> Device::Due(SimTime now) {
  std::vector<Reading> out;
  if (now < backoff_until_) return out;
  for (Reading& r : buffer_) {
    if (in_flight_.size() >= options_.window) break;
    if (in_flight_.count(r.seq)) continue;
    in_flight_.insert(r.seq);
    if (r.attempts++ == 0) {
      ++counters_.sent;
    } else {
      ++counters_.retried;
    }
    out.push_back(r);
  }
  return out;
}

Verdict Device::OnAnswer(uint64_t seq, const Answer& answer, SimTime now) {
  in_flight_.erase(seq);
  auto it = std::find_if(buffer_.begin(), buffer_.end(), [&](const Reading& r) { return r.seq == seq; });
  switch (answer.kind) {
    case AnswerKind::kAcknowledged:
      if (it == buffer_.end()) {
        ++counters_.duplicate_acks;  // acknowledged before, or dropped meanwhile
      } else {
        ++counters_.acknowledged;
        buffer_.erase(it);
      }
      if (!answer.flags.empty()) TakeFlags(answer.flags);
      backoff_ = std::chrono::milliseconds(0);
      return Verdict::kDone;
    case AnswerKind::kRejected:
      if (it != buffer_.end()) {
        ++counters_.rejected;
        ++counters_.rejected_by_code[answer.code];
        buffer_.erase(it);
      }
      // A refused key or shelf will not heal by itself: do not hammer. A bad payload is just dropped.
      if (answer.code == 401 || answer.code == 403) BackOff(now, std::nullopt);
      return Verdict::kDropped;
    case AnswerKind::kRetryLater:
      ++counters_.retry_later;
      BackOff(now, answer.retry_after_s > 0 ? std::optional(std::chrono::milliseconds(answer.retry_after_s * 1000))
                                            : std::nullopt);
      return Verdict::kBackOff;
    case AnswerKind::kNoAnswer:
      ++counters_.no_answer;
      BackOff(now, std::nullopt);
      return Verdict::kBackOff;
  }
  return Verdict::kDone;
}

void Device::BackOff(SimTime now, std::optional<std::chrono::milliseconds> hint) {
  if (hint) {
    backoff_ = std::clamp(*hint, options_.backoff_min, options_.backoff_max);
  } else if (now < backoff_until_) {
    return;  // another exchange of the same window failed in the same outage: one failure, not several
  } else {
    backoff_ = backoff_.count() == 0 ? options_.backoff_min : std::min(options_.backoff_max, backoff_ * 2);
  }
  double spread = 1.0 + options_.backoff_jitter * (2.0 * rng_.Unit() - 1.0);
  auto wait = std::chrono::milliseconds(static_cast<int64_t>(static_cast<double>(backoff_.count()) * spread));
  // Several answers of one window may back off at once: the latest wins, never an earlier one.
  backoff_until_ = std::max(backoff_until_, now + wait);
}

void Device::TakeFlags(const std::string& encoded) {
  auto flags = DecodeShelfFlags(encoded);
  if (!flags.ok()) return;
  version_ = flags->first;
  has_version_ = true;
  leds_ = flags->second;
  if (slot_count_ == 0) set_slot_count(leds_.size());
}

nlohmann::json Device::Save() const {
  nlohmann::json buffer = nlohmann::json::array();
  for (const Reading& r : buffer_) {
    nlohmann::json slots = nlohmann::json::array();
    for (auto& [slot, qty] : r.slots) slots.push_back({slot, qty});
    buffer.push_back({{"q", r.seq}, {"t", r.ts}, {"r", slots}, {"b", r.battery_pct}, {"c", r.temp_decicelsius},
                      {"m", r.malformed}, {"n", r.attempts}});
  }
  return {{"next_seq", next_seq_}, {"slot_count", slot_count_}, {"buffer", buffer}};
}

void Device::Restore(const nlohmann::json& state) {
  if (!state.is_object()) return;
  next_seq_ = std::max(next_seq_, state.value("next_seq", uint64_t{0}));
  if (slot_count_ == 0) set_slot_count(state.value("slot_count", size_t{0}));
  buffer_.clear();
  in_flight_.clear();
  for (const auto& b : state.value("buffer", nlohmann::json::array())) {
    if (buffer_.size() >= options_.buffer_capacity) break;
    Reading r;
    r.seq = b.value("q", uint64_t{0});
    r.ts = b.value("t", uint64_t{0});
    for (const auto& s : b.value("r", nlohmann::json::array())) {
      if (s.is_array() && s.size() == 2) r.slots.emplace_back(s[0].get<uint32_t>(), s[1].get<uint32_t>());
    }
    r.battery_pct = b.value("b", 100);
    r.temp_decicelsius = b.value("c", 200);
    r.malformed = b.value("m", false);
    r.attempts = b.value("n", 0u);
    if (r.seq >= next_seq_) next_seq_ = r.seq + 1;
    buffer_.push_back(std::move(r));
  }
}

}  // namespace bff::sim
