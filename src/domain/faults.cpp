// Fault injection state for the reference domain services, and Fault's JSON form.
#include "domain/faults.h"

#include <algorithm>

#include "domain/http_util.h"

namespace bff {

nlohmann::json Fault::ToJson() const {
  return {{"latency_ms", latency_ms}, {"error_rate", error_rate}, {"hang", hang}, {"down", down}};
}

StatusOr<Fault> Fault::FromJson(const nlohmann::json& j) {
  if (!j.is_object()) return InvalidArgument("fault must be a JSON object");
  Fault f;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& key = it.key();
    const nlohmann::json& v = it.value();
    if (key == "latency_ms") {
      auto ms = domain::JsonInt(v, 0, domain::kMaxFaultLatencyMs);
      if (!ms)
        return InvalidArgument("latency_ms: must be an integer from 0 to " +
                               std::to_string(domain::kMaxFaultLatencyMs));
      f.latency_ms = static_cast<int>(*ms);
    } else if (key == "error_rate") {
      auto rate = domain::JsonNumber(v, 0.0, 1.0);
      if (!rate) return InvalidArgument("error_rate: must be a number from 0 to 1");
      f.error_rate = *rate;
    } else if (key == "hang") {
      if (!v.is_boolean()) return InvalidArgument("hang: must be true or false");
      f.hang = v.get<bool>();
    } else if (key == "down") {
      if (!v.is_boolean()) return InvalidArgument("down: must be true or false");
      f.down = v.get<bool>();
    } else {
      return InvalidArgument(key + ": unknown field (expected latency_ms, error_rate, hang, down)");
    }
  }
  return f;
}

namespace domain {
namespace {

// Fault rolls need no reproducibility across runs, only independence from the seed data.
constexpr uint64_t kFaultRngSeed = 0xFA017EDBFFD00001ULL;

}  // namespace

bool IsServiceName(std::string_view name) {
  return std::find(kServiceNames.begin(), kServiceNames.end(), name) != kServiceNames.end();
}

StatusOr<std::map<std::string, Fault>> ParseFaultTable(const nlohmann::json& j) {
  std::map<std::string, Fault> out;
  if (j.is_null()) return out;
  if (!j.is_object()) return InvalidArgument("faults must be an object keyed by service name");
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!IsServiceName(it.key())) return InvalidArgument(it.key() + ": unknown service");
    auto f = Fault::FromJson(it.value());
    if (!f.ok()) return InvalidArgument(it.key() + "." + f.status().message());
    out[it.key()] = *f;
  }
  return out;
}

FaultTable::FaultTable() : rng_(kFaultRngSeed) {
  for (std::string_view name : kServiceNames) faults_.emplace(std::string(name), Fault{});
}

FaultTable::Decision FaultTable::Admit(std::string_view service, Responder& done) {
  std::lock_guard<std::mutex> lock(mu_);
  Decision d;
  auto it = faults_.find(service);
  if (it == faults_.end()) return d;
  const Fault& f = it->second;
  if (f.down) {
    d.action = Action::kDown;
    return d;
  }
  if (f.hang) {
    auto held = held_.find(service);
    if (held == held_.end()) held = held_.emplace(std::string(service), std::vector<Responder>{}).first;
    held->second.push_back(std::move(done));
    d.action = Action::kHeld;
    return d;
  }
  d.latency_ms = f.latency_ms;
  d.error_rate = f.error_rate;
  return d;
}

bool FaultTable::RollError(double rate) {
  if (rate <= 0.0) return false;
  if (rate >= 1.0) return true;
  std::lock_guard<std::mutex> lock(mu_);
  return rng_.Unit() < rate;
}

std::vector<Responder> FaultTable::Set(std::string_view service, const Fault& fault) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Responder> out;
  auto it = faults_.find(service);
  if (it == faults_.end()) return out;
  it->second = fault;
  UpdateMaskLocked();
  if (auto held = held_.find(service); held != held_.end()) {
    out = std::move(held->second);
    held_.erase(held);
  }
  return out;
}

std::vector<Responder> FaultTable::Clear(std::string_view service) { return Set(service, Fault{}); }

std::vector<Responder> FaultTable::ClearAll() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [name, f] : faults_) f = Fault{};
  UpdateMaskLocked();
  std::vector<Responder> out;
  for (auto& [name, list] : held_) {
    for (auto& r : list) out.push_back(std::move(r));
  }
  held_.clear();
  return out;
}

std::vector<Responder> FaultTable::TakeAllHeld() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Responder> out;
  for (auto& [name, list] : held_) {
    for (auto& r : list) out.push_back(std::move(r));
  }
  held_.clear();
  return out;
}

Fault FaultTable::Get(std::string_view service) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = faults_.find(service);
  return it == faults_.end() ? Fault{} : it->second;
}

nlohmann::json FaultTable::ToJson() const {
  std::lock_guard<std::mutex> lock(mu_);
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [name, f] : faults_) j[name] = f.ToJson();
  return j;
}

void FaultTable::UpdateMaskLocked() {
  uint32_t mask = 0;
  for (size_t i = 0; i < kServiceNames.size(); ++i) {
    auto it = faults_.find(kServiceNames[i]);
    if (it == faults_.end()) continue;
    const Fault& f = it->second;
    if (f.down || f.hang || f.latency_ms > 0 || f.error_rate > 0.0) mask |= 1u << i;
  }
  faulty_mask_.store(mask, std::memory_order_release);
}

bool FaultTable::Quiet(std::string_view service) const {
  auto it = std::find(kServiceNames.begin(), kServiceNames.end(), service);
  if (it == kServiceNames.end()) return true;
  return (faulty_mask_.load(std::memory_order_acquire) & (1u << (it - kServiceNames.begin()))) == 0;
}

size_t FaultTable::held_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (const auto& [name, list] : held_) n += list.size();
  return n;
}

}  // namespace domain
}  // namespace bff
