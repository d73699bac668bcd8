// Per-service fault injection state: the current Fault of each service and the requests a hang holds.
#pragma once

#include <array>
#include <atomic>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "domain/domain_services.h"
#include "common/rng.h"

namespace bff::domain {

// The services of CONTRACT.md section 1, by URL prefix. Same names as downstream's Service enum, which
// the domain cannot include (downstream depends on the domain).
inline constexpr std::array<std::string_view, 8> kServiceNames = {
    "catalog", "inventory", "reviews", "recommendations", "promotions", "cart", "analytics", "identity"};
bool IsServiceName(std::string_view name);

inline constexpr int kMaxFaultLatencyMs = 600000;

// Validates a fault table such as DomainOptions::initial_faults; errors name the service and field.
StatusOr<std::map<std::string, Fault>> ParseFaultTable(const nlohmann::json& j);

class FaultTable {
 public:
  enum class Action { kProceed, kDown, kHeld };
  struct Decision {
    Action action = Action::kProceed;
    int latency_ms = 0;
    double error_rate = 0.0;
  };

  FaultTable();

  // Decides what the fault of `service` does to one request. With a hang fault, `done` is moved into
  // the held list (answered 503 when released) and kHeld is returned.
  Decision Admit(std::string_view service, Responder& done);
  // True when this request should fail with 500 under `rate`.
  bool RollError(double rate);

  // Each returns the responders to release (answered by the caller, outside the lock).
  std::vector<Responder> Set(std::string_view service, const Fault& fault);
  std::vector<Responder> Clear(std::string_view service);
  std::vector<Responder> ClearAll();
  std::vector<Responder> TakeAllHeld();

  Fault Get(std::string_view service) const;
  // True when no fault at all is set on `service`; one atomic load, for per-request fast paths.
  bool Quiet(std::string_view service) const;
  nlohmann::json ToJson() const;
  size_t held_count() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, Fault, std::less<>> faults_;
  std::map<std::string, std::vector<Responder>, std::less<>> held_;
  Rng rng_;
  std::atomic<uint32_t> faulty_mask_{0};  // bit i: kServiceNames[i] has a fault set
  void UpdateMaskLocked();
};

}  // namespace bff::domain
