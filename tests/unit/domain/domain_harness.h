// Test harness for the reference domain services: a fresh data dir, virtual time, minted credentials.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "common/scheduler.h"
#include "domain/domain_services.h"
#include "security/internal_credential.h"
#include "support/test_support.h"

namespace bff::testing {

inline constexpr int kTestPasswordIterations = 1000;

inline DomainOptions TestDomainOptions(const std::string& dir) {
  DomainOptions o;
  o.data_dir = dir;
  o.password_iterations = kTestPasswordIterations;
  return o;
}

// Builds a request; `target` may carry a query string.
inline HttpRequest MakeRequest(std::string method, const std::string& target, std::string body = "",
                               std::string content_type = "application/json") {
  HttpRequest r;
  r.method = std::move(method);
  size_t q = target.find('?');
  r.path = target.substr(0, q);
  if (q != std::string::npos) r.query = target.substr(q + 1);
  r.body = std::move(body);
  if (!r.body.empty() && !content_type.empty()) r.headers.Set("Content-Type", content_type);
  return r;
}

// One DomainServices over a temp dir, driven by a ManualScheduler (nothing runs until RunReady/Advance).
class DomainHarness {
 public:
  explicit DomainHarness(const std::function<void(DomainOptions&)>& tweak = nullptr) { Open(tweak); }

  void Open(const std::function<void(DomainOptions&)>& tweak = nullptr) {
    services.reset();
    DomainOptions o = TestDomainOptions(dir.path());
    if (tweak) tweak(o);
    auto created = DomainServices::Create(o, scheduler);
    ASSERT_TRUE(created.ok()) << created.status().ToString();
    services = std::move(*created);
    auto secret = LoadOrCreateInternalSecret(dir.path());
    ASSERT_TRUE(secret.ok());
    minter = std::make_unique<CredentialMinter>(*secret);
  }

  std::string Credential(const std::string& subject = "") { return minter->Mint(subject, "bffd"); }

  // Hands the request over without running anything; the answer lands in the returned slot.
  std::shared_ptr<std::optional<HttpResponse>> Start(HttpRequest req, bool authenticate = true,
                                                     const std::string& subject = "") {
    if (authenticate) req.headers.Set("Authorization", "Bearer " + Credential(subject));
    auto slot = std::make_shared<std::optional<HttpResponse>>();
    auto calls = std::make_shared<int>(0);
    services->Handle(std::move(req), [slot, calls](HttpResponse r) {
      ++*calls;
      EXPECT_EQ(*calls, 1) << "responder called more than once";
      *slot = std::move(r);
    });
    return slot;
  }

  // Sends and runs everything that is ready at the current virtual time; the request must be answered.
  HttpResponse Send(HttpRequest req, bool authenticate = true, const std::string& subject = "") {
    auto slot = Start(std::move(req), authenticate, subject);
    scheduler.RunReady();
    EXPECT_TRUE(slot->has_value()) << "no answer";
    return slot->has_value() ? **slot : HttpResponse{599, {}, ""};
  }

  HttpResponse Get(const std::string& target, const std::string& subject = "") {
    return Send(MakeRequest("GET", target), true, subject);
  }
  HttpResponse Post(const std::string& target, const nlohmann::json& body, const std::string& subject = "") {
    return Send(MakeRequest("POST", target, body.dump()), true, subject);
  }

  TempDir dir;
  ManualScheduler scheduler;
  std::unique_ptr<DomainServices> services;
  std::unique_ptr<CredentialMinter> minter;
};

inline nlohmann::json BodyJson(const HttpResponse& r) { return nlohmann::json::parse(r.body, nullptr, false); }

inline std::string ErrorCode(const HttpResponse& r) {
  auto j = BodyJson(r);
  if (!j.is_object() || !j.contains("error") || !j["error"].is_object()) return "<no error object>";
  return j["error"].value("code", "<no code>");
}

}  // namespace bff::testing
