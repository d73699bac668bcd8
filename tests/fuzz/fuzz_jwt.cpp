// Fuzz target: access-token parsing and validation (compact JWS, ES256 JWTs, JWK sets, the bearer
// validator). Input: one mode byte, then a token, a claims object to be signed, or a JWK set against
// which a valid token is checked. Signing uses a fixed key made for fuzzing only, so seed tokens stay
// valid across runs.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "common/scheduler.h"
#include "fuzz_check.h"
#include "fuzz_fixture.h"
#include "security/access_token_validator.h"
#include "security/compact_jws.h"
#include "security/jwt.h"

namespace {

using nlohmann::json;

// A P-256 key generated for these fuzz seeds; it signs nothing anywhere else.
constexpr char kFuzzSigningKeyPem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgkp2ZkdV1LT0+r6EH\n"
    "FfRCW27wzpve6P2obUrxxHYrVOChRANCAARKEEOxCTFqadSiTlfCxoA67x9YMrjZ\n"
    "mka6LX8Zm7V+t+gXdi/TqvRrf+IGWPRNahWT1si/53dvYLHfLQ4q/5QK\n"
    "-----END PRIVATE KEY-----\n";
// Tokens are judged at a fixed time, so an input means the same on every run.
constexpr int64_t kFuzzNowUnix = 1790000000;
constexpr char kIssuer[] = "bff-identity";
constexpr char kAudience[] = "bffd";

enum Mode : uint8_t { kToken = 0, kClaims = 1, kKeySet = 2, kModes = 3 };

struct JwtFixture {
  JwtFixture() : work(boost::asio::make_work_guard(io)), thread([this] { io.run(); }) {
    std::string pem_path = bff::fuzz::MakeTempDir() + "/fuzz-signing.pem";
    std::ofstream(pem_path) << kFuzzSigningKeyPem;
    auto loaded = bff::EcSigningKey::LoadOrCreate(pem_path);
    if (!loaded.ok()) bff::fuzz::SetupFailed("signing key: " + loaded.status().ToString());
    key.emplace(std::move(loaded).value());
    jwks = json{{"keys", json::array({key->PublicJwk()})}};
    valid_token = key->Sign({{"iss", kIssuer}, {"aud", kAudience}, {"sub", "u-1002"}, {"exp", kFuzzNowUnix + 600}});
    expect.issuer = kIssuer;
    expect.audience = kAudience;
    expect.now_unix = kFuzzNowUnix;
    json keys = jwks;
    validator = bff::AccessTokenValidator::Create(
        bff::AccessTokenOptions{}, [keys](bff::AccessTokenValidator::JwksCallback done) { done(keys); }, sched);
    validator->Start();
  }

  boost::asio::io_context io;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work;
  std::thread thread;
  bff::AsioScheduler sched{io};
  std::optional<bff::EcSigningKey> key;
  json jwks;
  std::string valid_token;
  bff::JwtExpectations expect;
  std::shared_ptr<bff::AccessTokenValidator> validator;
};

void CheckToken(JwtFixture& f, std::string_view token) {
  (void)bff::ParseCompactJws(token);
  (void)bff::DecodeJwtUnverified(token);
  (void)bff::VerifyJwtEs256(token, f.jwks, f.expect);
  auto user = bff::fuzz::AnswerOnce<bff::StatusOr<bff::AuthenticatedUser>>(
      "AccessTokenValidator", [&](auto done) { f.validator->Validate("Bearer " + std::string(token), done); });
  if (bff::fuzz::Tracing()) std::fprintf(stderr, "token -> %s\n", user.ok() ? user->user_id.c_str() : user.status().ToString().c_str());
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  bff::fuzz::Fixture<JwtFixture>();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  JwtFixture& f = bff::fuzz::Fixture<JwtFixture>();
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % kModes) {
    case kToken:
      CheckToken(f, rest);
      break;
    case kClaims: {
      json claims = json::parse(rest, nullptr, false);
      if (!claims.is_object()) return 0;
      std::string token = f.key->Sign(claims);
      auto verified = bff::VerifyJwtEs256(token, f.jwks, f.expect);
      // Claims pass through signing unchanged, unless they held invalid UTF-8 (replaced on encoding).
      if (verified.ok() && *verified != claims && json::parse(bff::EncodeJsonSegment(claims), nullptr, false) == claims) {
        bff::fuzz::Finding("verified claims differ from the signed ones");
      }
      CheckToken(f, token);
      break;
    }
    default: {
      json keys = json::parse(rest, nullptr, false);
      if (keys.is_discarded()) return 0;
      (void)bff::VerifyJwtEs256(f.valid_token, keys, f.expect);
      break;
    }
  }
  return 0;
}
