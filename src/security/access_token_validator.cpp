// Bearer access token validation against the identity service's JWKS, with periodic and on-demand refresh.
#include "security/access_token_validator.h"

#include <unordered_set>
#include <utility>

#include "common/http_message.h"
#include "common/log.h"
#include "security/compact_jws.h"
#include "security/jwt.h"

namespace bff {
namespace {

// Our tokens are a few hundred bytes; anything near this is abuse, refused before any decoding.
constexpr size_t kMaxTokenBytes = 8 * 1024;
constexpr std::string_view kBearer = "Bearer";

using Done = std::function<void(StatusOr<AuthenticatedUser>)>;

bool IsSpace(char c) { return c == ' ' || c == '\t'; }

StatusOr<std::string_view> ParseBearer(std::string_view header) {
  if (header.size() > kMaxTokenBytes + kBearer.size() + 2) return Unauthenticated("authorization header too large");
  while (!header.empty() && IsSpace(header.front())) header.remove_prefix(1);
  while (!header.empty() && IsSpace(header.back())) header.remove_suffix(1);
  if (header.empty()) return Unauthenticated("missing bearer token");
  size_t sp = 0;
  while (sp < header.size() && !IsSpace(header[sp])) ++sp;
  if (!EqualsIgnoreCase(header.substr(0, sp), kBearer)) return Unauthenticated("authorization scheme must be Bearer");
  std::string_view token = header.substr(sp);
  while (!token.empty() && IsSpace(token.front())) token.remove_prefix(1);
  if (token.empty()) return Unauthenticated("missing bearer token");
  for (char c : token) {
    if (IsSpace(c)) return Unauthenticated("malformed authorization header");
  }
  if (token.size() > kMaxTokenBytes) return Unauthenticated("bearer token too large");
  return token;
}

bool IsKeySet(const nlohmann::json& doc) {
  if (!doc.is_object()) return false;
  auto keys = doc.find("keys");
  return keys != doc.end() && keys->is_array();
}

std::unordered_set<std::string> KidsOf(const nlohmann::json& jwks) {
  std::unordered_set<std::string> kids;
  for (const auto& key : jwks.at("keys")) {
    if (!key.is_object()) continue;
    auto kid = key.find("kid");
    if (kid != key.end() && kid->is_string()) kids.insert(kid->get<std::string>());
  }
  return kids;
}

struct Waiter {
  std::string token;
  Done done;
};

}  // namespace

struct AccessTokenValidator::State {
  State(AccessTokenOptions o, JwksFetcher f, Scheduler& s)
      : options(std::move(o)), fetcher(std::move(f)), scheduler(s) {}

  const AccessTokenOptions options;
  const JwksFetcher fetcher;
  Scheduler& scheduler;

  mutable std::mutex mu;
  std::shared_ptr<const nlohmann::json> jwks;  // null until a fetch has succeeded
  std::unordered_set<std::string> kids;        // the kids in `jwks`
  bool fetching = false;
  bool started = false;
  bool stopped = false;
  bool ever_fetched = false;
  TimePoint last_fetch_start{};
  uint64_t fetches = 0;
  std::string last_error;
  std::vector<Waiter> waiters;  // answered when the running fetch completes
  std::shared_ptr<TimerHandle> refresh_timer;

  // Marks a fetch as running; the caller runs it with RunFetch after releasing `mu`.
  bool BeginFetchLocked() {
    if (fetching || stopped) return false;
    fetching = true;
    ever_fetched = true;
    last_fetch_start = scheduler.Now();
    ++fetches;
    return true;
  }

  void ScheduleRefreshLocked(const std::shared_ptr<State>& self) {
    std::weak_ptr<State> weak = self;
    refresh_timer = scheduler.RunAfter(options.refresh_interval, [weak] {
      if (auto s = weak.lock()) OnRefreshTimer(s);
    });
  }

  StatusOr<AuthenticatedUser> Verify(std::string_view token, const nlohmann::json& keys) const {
    JwtExpectations expect;
    expect.issuer = options.issuer;
    expect.audience = options.audience;
    expect.leeway_s = options.leeway_s;
    StatusOr<nlohmann::json> claims = VerifyJwtEs256(token, keys, expect);
    if (!claims.ok()) return claims.status();
    AuthenticatedUser user;
    auto sub = claims->find("sub");
    if (sub == claims->end() || !sub->is_string() || sub->get_ref<const std::string&>().empty()) {
      return Unauthenticated("token names no subject");
    }
    user.user_id = sub->get<std::string>();
    auto name = claims->find("name");
    if (name != claims->end() && name->is_string()) user.name = name->get<std::string>();
    auto exp = claims->find("exp");
    if (exp != claims->end() && exp->is_number()) user.expires_at = ToUnixSeconds(exp->get<double>());
    return user;
  }

  static void OnRefreshTimer(const std::shared_ptr<State>& s) {
    bool fetch = false;
    {
      std::lock_guard<std::mutex> lock(s->mu);
      if (s->stopped) return;
      fetch = s->BeginFetchLocked();
      s->ScheduleRefreshLocked(s);
    }
    if (fetch) RunFetch(s);
  }

  // The completion holds the state strongly: waiters are always answered, and the fetcher does not
  // keep the callback once it has called it, so no cycle outlives the fetch.
  static void RunFetch(const std::shared_ptr<State>& s) {
    try {
      s->fetcher([s](StatusOr<nlohmann::json> result) { OnFetched(s, std::move(result)); });
    } catch (const std::exception& e) {
      OnFetched(s, Unavailable(std::string("key set fetch failed: ") + e.what()));
    } catch (...) {
      OnFetched(s, Unavailable("key set fetch failed"));
    }
  }

  static void OnFetched(const std::shared_ptr<State>& s, StatusOr<nlohmann::json> result) {
    std::vector<Waiter> waiting;
    std::shared_ptr<const nlohmann::json> keys;
    std::string error;
    {
      std::lock_guard<std::mutex> lock(s->mu);
      if (!s->fetching) return;  // a second answer to the same fetch
      s->fetching = false;
      if (result.ok() && IsKeySet(*result)) {
        auto fresh = std::make_shared<const nlohmann::json>(std::move(result).value());
        s->kids = KidsOf(*fresh);
        s->jwks = std::move(fresh);
        s->last_error.clear();
      } else {
        s->last_error = result.ok() ? "the key set is not a JWKS document" : result.status().ToString();
      }
      error = s->last_error;
      waiting.swap(s->waiters);
      keys = s->jwks;
    }
    if (!error.empty()) {
      log::Warn("access token key set fetch failed", {{"error", error}, {"have_keys", keys != nullptr}});
    }
    for (Waiter& w : waiting) {
      if (!keys) {
        w.done(Unavailable("no access token signing keys: " + error));
      } else {
        w.done(s->Verify(w.token, *keys));
      }
    }
  }
};

AccessTokenValidator::AccessTokenValidator(AccessTokenOptions options, JwksFetcher fetcher, Scheduler& scheduler)
    : state_(std::make_shared<State>(std::move(options), std::move(fetcher), scheduler)) {}

std::shared_ptr<AccessTokenValidator> AccessTokenValidator::Create(AccessTokenOptions options, JwksFetcher fetcher,
                                                                   Scheduler& scheduler) {
  return std::shared_ptr<AccessTokenValidator>(
      new AccessTokenValidator(std::move(options), std::move(fetcher), scheduler));
}

void AccessTokenValidator::Start() {
  bool fetch = false;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    if (state_->started || state_->stopped) return;
    state_->started = true;
    fetch = state_->BeginFetchLocked();
    state_->ScheduleRefreshLocked(state_);
  }
  if (fetch) State::RunFetch(state_);
}

void AccessTokenValidator::Stop() {
  std::shared_ptr<TimerHandle> timer;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->stopped = true;
    timer = std::move(state_->refresh_timer);
  }
  if (timer) timer->Cancel();
}

uint64_t AccessTokenValidator::fetches() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->fetches;
}

void AccessTokenValidator::Validate(std::string_view authorization_header, Done done) {
  StatusOr<std::string_view> token = ParseBearer(authorization_header);
  if (!token.ok()) return done(token.status());

  // The kid decides whether the current key set can answer, so the header is read before verifying.
  auto decoded = DecodeJwtUnverified(*token);
  if (!decoded.ok()) return done(Unauthenticated("malformed token"));
  const nlohmann::json& header = decoded->first;
  auto alg = header.find("alg");
  if (alg == header.end() || !alg->is_string() || alg->get_ref<const std::string&>() != "ES256") {
    return done(Unauthenticated("token algorithm must be ES256"));
  }
  auto kid_it = header.find("kid");
  if (kid_it == header.end() || !kid_it->is_string() || kid_it->get_ref<const std::string&>().empty()) {
    return done(Unauthenticated("token header names no key (kid)"));
  }
  const std::string& kid = kid_it->get_ref<const std::string&>();

  std::shared_ptr<const nlohmann::json> keys;
  bool fetch = false;
  {
    State& s = *state_;
    std::lock_guard<std::mutex> lock(s.mu);
    if (s.jwks && s.kids.count(kid) > 0) {
      keys = s.jwks;
    } else if (s.fetching) {
      s.waiters.push_back({std::string(*token), std::move(done)});
      return;
    } else if (!s.stopped && (!s.ever_fetched || s.scheduler.Now() - s.last_fetch_start >= s.options.min_refetch_interval)) {
      // An unknown kid usually means the identity service rotated its key: look again, but not on
      // every request, or forged kids would turn into a flood of fetches.
      fetch = s.BeginFetchLocked();
      if (fetch) {
        s.waiters.push_back({std::string(*token), std::move(done)});
      } else {
        keys = s.jwks;
      }
    } else {
      keys = s.jwks;
    }
  }
  if (fetch) return State::RunFetch(state_);
  if (!keys) return done(Unavailable("no access token signing keys"));
  done(state_->Verify(*token, *keys));
}

}  // namespace bff
