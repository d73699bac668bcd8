// The fleet's loop: every device's timer, readings from the shop, sends through its link, answers
// posted back to the loop thread, faults, progress, state file and summary.
#include "firmware-sim/fleet.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <sstream>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/log.h"
#include "protocols/msgpack/iot_codec.h"

namespace bff::sim {
namespace {

namespace net = boost::asio;
using std::chrono::milliseconds;

// Readings are taken at most this far ahead of a rate's schedule when a device fell behind (so a
// stalled device does not burst its whole backlog of wakes at once).
constexpr int kMaxCatchUpWakes = 4;
// A stop during the run still gives readings in flight this long to be acknowledged.
constexpr milliseconds kStopDrain{2000};

uint64_t UnixMicros() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

milliseconds Jittered(milliseconds base, double jitter, Rng& rng) {
  double f = 1.0 + jitter * (2.0 * rng.Unit() - 1.0);
  return milliseconds(std::max<int64_t>(1, static_cast<int64_t>(static_cast<double>(base.count()) * f)));
}

}  // namespace

void LatencySamples::Add(double ms) {
  ++count_;
  max_ = std::max(max_, ms);
  if (kept_.size() >= kMaxKept) {
    // Thin out evenly: keep every other sample, then go on.
    std::vector<float> half;
    half.reserve(kMaxKept / 2 + 1);
    for (size_t i = 0; i < kept_.size(); i += 2) half.push_back(kept_[i]);
    kept_.swap(half);
  }
  kept_.push_back(static_cast<float>(ms));
}

nlohmann::json LatencySamples::Summary() const {
  nlohmann::json out = {{"count", count_}};
  if (kept_.empty()) {
    for (const char* k : {"p50", "p90", "p99", "max"}) out[k] = nullptr;
    return out;
  }
  std::vector<float> sorted = kept_;
  std::sort(sorted.begin(), sorted.end());
  auto at = [&](double q) {
    size_t i = static_cast<size_t>(std::ceil(q * static_cast<double>(sorted.size()))) - 1;
    return std::round(static_cast<double>(sorted[std::min(i, sorted.size() - 1)]) * 100.0) / 100.0;
  };
  out["p50"] = at(0.50);
  out["p90"] = at(0.90);
  out["p99"] = at(0.99);
  out["max"] = std::round(max_ * 100.0) / 100.0;
  return out;
}

class Fleet::Impl {
 public:
  struct Member {
    std::unique_ptr<Device> device;
    Link* link = nullptr;
    size_t link_index = 0;
    bool flood = false;
    int skew_s = 0;
    int battery = 100;
    SimTime next_wake{};
    std::unique_ptr<net::steady_timer> timer;
    SimTime timer_at = SimTime::max();
  };

  Impl(FleetOptions options, std::vector<DeviceIdentity> devices, std::vector<Link*> links)
      : options_(std::move(options)), links_(std::move(links)), shop_(options_.shop), rng_(MixSeed(options_.seed, 1, 0)),
        tick_(io_) {
    uint64_t base_seq = UnixMicros();
    members_.reserve(devices.size());
    for (size_t i = 0; i < devices.size(); ++i) {
      Member m;
      m.flood = i < options_.flood_devices;
      DeviceOptions d = options_.device;
      // A flooding device ignores the server's Max-Age: one exchange every flood interval, a retry or not.
      if (m.flood) d.backoff_min = d.backoff_max = options_.flood_interval;
      // Without a state file a reboot loses the counter; starting from the clock keeps seqs increasing
      // (up to a million readings a second per device).
      m.device = std::make_unique<Device>(devices[i], d, base_seq, MixSeed(options_.seed, 2, i));
      if (options_.slot_count > 0) m.device->set_slot_count(options_.slot_count);
      m.link = links_[i % links_.size()];
      m.link_index = i / links_.size();
      if (options_.clock_skew_s > 0) m.skew_s = static_cast<int>(rng_.Range(-options_.clock_skew_s, options_.clock_skew_s));
      m.timer = std::make_unique<net::steady_timer>(io_);
      members_.push_back(std::move(m));
    }
    for (Link* l : links_) per_protocol_[std::string(l->protocol())];
  }

  nlohmann::json Run() {
    LoadState();
    started_ = SimClock::now();
    last_save_ = started_;
    if (options_.duration.count() > 0) end_ = started_ + options_.duration;
    running_ = true;
    for (size_t i = 0; i < members_.size(); ++i) StartMember(i);
    ScheduleTick();
    io_.run();
    SaveState();
    if (options_.progress) *options_.progress << (options_.progress_tty ? "\r" : "") << ProgressLine() << "\n";
    return Summary();
  }

  void Stop() {
    net::post(io_, [this] {
      if (stopping_) return;
      stopping_ = true;
      BeginDrain(kStopDrain);
    });
  }

  const Device& device(size_t i) const { return *members_[i].device; }
  size_t size() const { return members_.size(); }

 private:
  void StartMember(size_t i) {
    Member& m = members_[i];
    SimTime now = SimClock::now();
    if (options_.rate_max || m.flood) {
      m.next_wake = now;
    } else if (options_.rate > 0) {
      // Spread the first wakes over one period so the aggregate rate is even from the start.
      double period_ms = 1000.0 * static_cast<double>(members_.size()) / options_.rate;
      m.next_wake = now + milliseconds(static_cast<int64_t>(period_ms * static_cast<double>(i) / static_cast<double>(members_.size())));
    } else {
      m.next_wake = now + milliseconds(static_cast<int64_t>(rng_.Unit() * static_cast<double>(options_.interval.count())));
    }
    Pump(i);
  }

  milliseconds Period() const {
    if (options_.rate > 0) {
      return milliseconds(std::max<int64_t>(1, static_cast<int64_t>(1000.0 * static_cast<double>(members_.size()) / options_.rate)));
    }
    return options_.interval;
  }

  void Record(Member& m, SimTime now) {
    size_t slots = m.device->slot_count() == 0 ? 1 : m.device->slot_count();
    std::vector<uint32_t> qty =
        shop_.Observe(m.device->identity().shelf_id, slots, std::chrono::duration_cast<milliseconds>(now - started_));
    // Batteries drain slowly; the temperature wanders around 21 °C.
    if (rng_.Unit() < 0.01 && m.battery > 5) --m.battery;
    int temp = 190 + static_cast<int>(rng_.Range(0, 40));
    bool malformed = options_.malformed > 0 && rng_.Unit() < options_.malformed;
    m.device->Record(NowUnixS(m), qty, m.battery, temp, malformed);
  }

  void Pump(size_t i) {
    Member& m = members_[i];
    SimTime now = SimClock::now();
    if (running_) {
      if (options_.rate_max && !m.flood) {
        // Keep the window full: a new reading as soon as one is out of the buffer.
        while (m.device->buffered() < options_.device.window) Record(m, now);
      } else {
        int wakes = 0;
        while (now >= m.next_wake && wakes < kMaxCatchUpWakes) {
          Record(m, now);
          ++wakes;
          if (m.flood) {
            m.next_wake = now + options_.flood_interval;
          } else if (options_.rate > 0) {
            m.next_wake += Period();
          } else {
            m.next_wake = now + Jittered(options_.interval, options_.jitter, rng_);
          }
        }
        if (now >= m.next_wake) m.next_wake = now + Period();  // far behind: skip ahead
      }
    }
    for (const Reading& r : m.device->Due(now)) Send(i, r);
    Schedule(i, now);
  }

  void Schedule(size_t i, SimTime now) {
    Member& m = members_[i];
    SimTime at = SimTime::max();
    if (running_ && !(options_.rate_max && !m.flood)) at = m.next_wake;
    // Readings waiting for the end of a back-off.
    if (m.device->buffered() > m.device->in_flight()) at = std::min(at, std::max(now, m.device->backoff_until()));
    if (at == SimTime::max() || at == m.timer_at) return;
    m.timer_at = at;
    m.timer->expires_at(at);
    m.timer->async_wait([this, i, at](const boost::system::error_code& ec) {
      if (ec) return;
      Member& mm = members_[i];
      if (mm.timer_at == at) mm.timer_at = SimTime::max();
      Pump(i);
    });
  }

  void Send(size_t i, const Reading& r) {
    Member& m = members_[i];
    Telemetry t;
    t.device_id = m.device->identity().device_id;
    t.shelf_id = m.device->identity().shelf_id;
    t.seq = r.seq;
    t.ts = r.ts;
    t.readings = r.slots;
    t.battery_pct = r.battery_pct;
    t.temp_decicelsius = r.temp_decicelsius;
    if (m.device->has_version()) t.version = m.device->version();
    t.api_key = m.device->identity().key;
    std::string payload = EncodeTelemetry(t, m.link->key_in_payload());
    // Trailing bytes after the map: a firmware bug the BFF must refuse (400), never store.
    if (r.malformed) payload += '\xc1';
    ++in_flight_;
    ++per_protocol_[std::string(m.link->protocol())].sent;
    SimTime sent_at = SimClock::now();
    uint64_t seq = r.seq;
    double roll = options_.loss > 0 ? rng_.Unit() : 1.0;
    if (roll < options_.loss / 2) {
      // The request is lost on the way: the device hears nothing until its timeout.
      ++lost_on_link_;
      auto timer = std::make_shared<net::steady_timer>(io_, options_.timeout);
      timer->async_wait([this, i, seq, sent_at, timer](const boost::system::error_code&) {
        Answered(i, seq, sent_at, Answer{});
      });
      return;
    }
    bool drop_answer = roll < options_.loss;
    m.link->SendTelemetry(m.link_index, seq, std::move(payload), options_.timeout,
                          [this, i, seq, sent_at, drop_answer](Answer a) {
                            net::post(io_, [this, i, seq, sent_at, drop_answer, a = std::move(a)]() mutable {
                              if (!drop_answer) return Answered(i, seq, sent_at, a);
                              // The answer is lost on the way back: silence until the device's timeout.
                              ++lost_on_link_;
                              auto left = options_.timeout - std::chrono::duration_cast<milliseconds>(SimClock::now() - sent_at);
                              auto timer = std::make_shared<net::steady_timer>(io_, std::max(left, milliseconds(0)));
                              timer->async_wait([this, i, seq, sent_at, timer](const boost::system::error_code&) {
                                Answered(i, seq, sent_at, Answer{});
                              });
                            });
                          });
  }

  void Answered(size_t i, uint64_t seq, SimTime sent_at, const Answer& a) {
    --in_flight_;
    Member& m = members_[i];
    ProtocolStats& p = per_protocol_[std::string(m.link->protocol())];
    double ms = std::chrono::duration<double, std::milli>(SimClock::now() - sent_at).count();
    if (a.kind == AnswerKind::kAcknowledged) {
      p.latency.Add(ms);
      ++p.acknowledged;
      all_latency_.Add(ms);
    }
    std::vector<bool> leds_before = m.device->leds();
    Verdict v = m.device->OnAnswer(seq, a, SimClock::now());
    if (m.device->leds() != leds_before && log::Enabled(log::Level::kInfo)) {
      // The device's slot LEDs: lit (1) = in stock.
      std::string leds;
      for (bool lit : m.device->leds()) leds += lit ? '1' : '0';
      log::Info("firmware-sim: leds", {{"device", m.device->identity().device_id}, {"version", m.device->version()}, {"leds", leds}});
    }
    if (v == Verdict::kDropped && log::Enabled(log::Level::kInfo)) {
      // A device logs, backs off and moves on; the fleet keeps its log readable.
      if (++logged_rejections_ <= kMaxLoggedRejections) {
        log::Info("firmware-sim: reading refused", {{"device", m.device->identity().device_id}, {"seq", seq}, {"code", a.code}});
      }
    }
    Pump(i);
    if (draining_ && AllDrained()) Finish();
  }

  void ScheduleTick() {
    tick_.expires_after(std::min(options_.progress_every, milliseconds(500)));
    tick_.async_wait([this](const boost::system::error_code& ec) {
      if (ec || finished_) return;
      SimTime now = SimClock::now();
      if (options_.progress && now - last_progress_ >= options_.progress_every) {
        last_progress_ = now;
        *options_.progress << (options_.progress_tty ? "\r" : "") << ProgressLine() << (options_.progress_tty ? "" : "\n")
                           << std::flush;
      }
      if (!options_.state_file.empty() && now - last_save_ >= options_.save_every) {
        last_save_ = now;
        SaveState();
      }
      if (running_ && end_ != SimTime{} && now >= end_) BeginDrain(options_.drain);
      if (draining_ && (AllDrained() || now >= drain_end_)) return Finish();
      ScheduleTick();
    });
  }

  void BeginDrain(milliseconds budget) {
    if (finished_) return;
    running_ = false;
    SimTime until = SimClock::now() + budget;
    drain_end_ = draining_ ? std::min(drain_end_, until) : until;
    draining_ = true;
    active_end_ = SimClock::now();
    if (AllDrained()) Finish();
  }

  bool AllDrained() const {
    if (in_flight_ > 0) return false;
    return std::all_of(members_.begin(), members_.end(), [](const Member& m) { return m.device->drained(); });
  }

  void Finish() {
    if (finished_) return;
    finished_ = true;
    finished_at_ = SimClock::now();
    tick_.cancel();
    for (Member& m : members_) m.timer->cancel();
    // Answers still owed by links are abandoned: stopping the loop drops their posted handlers.
    io_.stop();
  }

  uint64_t NowUnixS(const Member& m) const {
    auto now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    return static_cast<uint64_t>(std::max<int64_t>(0, now + m.skew_s));
  }

  void SaveState() const {
    if (options_.state_file.empty()) return;
    nlohmann::json devices = nlohmann::json::object();
    for (const Member& m : members_) devices[m.device->identity().device_id] = m.device->Save();
    nlohmann::json state = {{"format", 1}, {"devices", devices}};
    std::string tmp = options_.state_file + ".tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << state.dump();
      if (!out) {
        log::Warn("firmware-sim: cannot write the state file", {{"path", options_.state_file}});
        return;
      }
    }
    std::error_code ec;
    std::filesystem::rename(tmp, options_.state_file, ec);
    if (ec) log::Warn("firmware-sim: cannot replace the state file", {{"path", options_.state_file}, {"error", ec.message()}});
  }

  void LoadState() {
    if (options_.state_file.empty() || !std::filesystem::exists(options_.state_file)) return;
    std::ifstream in(options_.state_file);
    nlohmann::json state = nlohmann::json::parse(in, nullptr, false);
    if (!state.is_object() || !state.contains("devices") || !state["devices"].is_object()) {
      log::Warn("firmware-sim: state file unreadable, starting fresh", {{"path", options_.state_file}});
      return;
    }
    size_t restored = 0, readings = 0;
    for (Member& m : members_) {
      auto it = state["devices"].find(m.device->identity().device_id);
      if (it == state["devices"].end()) continue;
      m.device->Restore(*it);
      ++restored;
      readings += m.device->buffered();
    }
    log::Info("firmware-sim: state restored", {{"devices", restored}, {"buffered_readings", readings}});
  }

  DeviceCounters Totals(uint64_t* buffered_sent, uint64_t* buffered) const {
    DeviceCounters t;
    *buffered_sent = 0;
    *buffered = 0;
    for (const Member& m : members_) {
      const DeviceCounters& c = m.device->counters();
      t.recorded += c.recorded;
      t.sent += c.sent;
      t.retried += c.retried;
      t.acknowledged += c.acknowledged;
      t.duplicate_acks += c.duplicate_acks;
      t.rejected += c.rejected;
      for (auto& [code, n] : c.rejected_by_code) t.rejected_by_code[code] += n;
      t.retry_later += c.retry_later;
      t.no_answer += c.no_answer;
      t.dropped += c.dropped;
      t.dropped_after_send += c.dropped_after_send;
      *buffered += m.device->buffered();
      *buffered_sent += m.device->buffered_sent();
    }
    return t;
  }

  std::string ProgressLine() const {
    uint64_t buffered_sent = 0, buffered = 0;
    DeviceCounters t = Totals(&buffered_sent, &buffered);
    double secs = std::chrono::duration<double>(SimClock::now() - started_).count();
    std::ostringstream line;
    line << "sent " << t.sent << "  acked " << t.acknowledged << "  rejected " << t.rejected << "  retried " << t.retried
         << "  in flight " << in_flight_ << "  buffered " << buffered << "  dropped " << t.dropped << "  "
         << static_cast<int64_t>(secs > 0 ? static_cast<double>(t.acknowledged) / secs : 0) << " acks/s";
    return line.str();
  }

  nlohmann::json Summary() const {
    uint64_t buffered_sent = 0, buffered = 0;
    DeviceCounters t = Totals(&buffered_sent, &buffered);
    // Lost: sent at least once, never acknowledged, not refused (that is an answer), not kept either.
    uint64_t lost = t.sent - std::min(t.sent, t.acknowledged + t.rejected + buffered_sent);
    nlohmann::json by_code = nlohmann::json::object();
    for (auto& [code, n] : t.rejected_by_code) by_code[std::to_string(code)] = n;
    SimTime active_end = active_end_ == SimTime{} ? finished_at_ : active_end_;
    double active_s = std::chrono::duration<double>(active_end - started_).count();
    double total_s = std::chrono::duration<double>(finished_at_ - started_).count();
    nlohmann::json protocols = nlohmann::json::object();
    for (auto& [name, p] : per_protocol_) {
      protocols[name] = {{"sent", p.sent}, {"acknowledged", p.acknowledged}, {"latency_ms", p.latency.Summary()}};
    }
    nlohmann::json out = {
        {"devices", members_.size()},
        {"duration_s", std::round(active_s * 1000.0) / 1000.0},
        {"total_s", std::round(total_s * 1000.0) / 1000.0},
        {"readings", t.recorded},
        {"sent", t.sent},
        {"acknowledged", t.acknowledged},
        {"rejected", t.rejected},
        {"rejected_by_code", by_code},
        {"retried", t.retried},
        {"retry_later", t.retry_later},
        {"no_answer", t.no_answer},
        {"duplicate_acks", t.duplicate_acks},
        {"dropped", t.dropped},
        {"lost", lost},
        {"buffered", buffered},
        {"lost_on_link", lost_on_link_},
        {"acks_per_s", total_s > 0 ? std::round(static_cast<double>(t.acknowledged) / total_s * 10.0) / 10.0 : 0.0},
        {"latency_ms", all_latency_.Summary()},
        {"protocols", protocols},
    };
    return out;
  }

  struct ProtocolStats {
    uint64_t sent = 0;  // exchanges, retries included
    uint64_t acknowledged = 0;
    LatencySamples latency;
  };
  static constexpr uint64_t kMaxLoggedRejections = 20;

  FleetOptions options_;
  std::vector<Link*> links_;
  Shop shop_;
  Rng rng_;
  net::io_context io_;
  net::steady_timer tick_;
  std::vector<Member> members_;
  std::map<std::string, ProtocolStats> per_protocol_;
  LatencySamples all_latency_;
  uint64_t in_flight_ = 0;
  uint64_t lost_on_link_ = 0;
  uint64_t logged_rejections_ = 0;
  bool running_ = false;
  bool draining_ = false;
  bool stopping_ = false;
  bool finished_ = false;
  SimTime started_{}, end_{}, drain_end_{}, active_end_{}, finished_at_{};
  SimTime last_progress_{}, last_save_{};
};

std::vector<DeviceIdentity> DevicesForLink(const std::vector<DeviceIdentity>& all, size_t k, size_t links) {
  std::vector<DeviceIdentity> out;
  for (size_t i = k; i < all.size(); i += std::max<size_t>(1, links)) out.push_back(all[i]);
  return out;
}

Fleet::Fleet(FleetOptions options, std::vector<DeviceIdentity> devices, std::vector<Link*> links)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(devices), std::move(links))) {}
Fleet::~Fleet() = default;
nlohmann::json Fleet::Run() { return impl_->Run(); }
void Fleet::Stop() { impl_->Stop(); }
const Device& Fleet::device(size_t i) const { return impl_->device(i); }
size_t Fleet::size() const { return impl_->size(); }

}  // namespace bff::sim
