// Fuzz target: HTTP requests to the mobile and web BFFs (routing, headers, query strings and the JSON
// body of every endpoint) through ApiFront::Handle over the embedded domain, as bffd wires them. Each
// request is answered exactly once with a real HTTP status, and every 4xx/5xx with the contract's JSON
// error body.
//
// Input: "METHOD TARGET" line, "Name: value" header lines, an empty line, then the body. "@TOKEN@" stands
// for a valid mobile access token, "@SESSION@" for a web session cookie and "@CSRF@" for its CSRF token.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "api/api.h"
#include "clients/mobile/mobile_bff.h"
#include "clients/web/web_bff.h"
#include "fuzz_fixture.h"
#include "security/access_token_validator.h"
#include "security/session_store.h"

namespace {

using nlohmann::json;

constexpr int kLowestStatus = 100;
constexpr int kHighestStatus = 599;
constexpr int kFirstErrorStatus = 400;
// Access tokens live 15 minutes; a fresh one is fetched well before.
constexpr std::chrono::minutes kCredentialRefresh{10};

std::string_view NextLine(std::string_view& in) {
  size_t nl = in.find('\n');
  std::string_view line = in.substr(0, nl);
  in.remove_prefix(nl == std::string_view::npos ? in.size() : nl + 1);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

void ReplaceAll(std::string& s, std::string_view what, const std::string& with) {
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + with.size())) s.replace(at, what.size(), with);
}

bff::HttpRequest Parse(std::string_view in) {
  bff::HttpRequest req;
  std::string_view first = NextLine(in);
  size_t sp = first.find(' ');
  req.method = std::string(first.substr(0, sp));
  std::string_view target = sp == std::string_view::npos ? std::string_view() : first.substr(sp + 1);
  size_t q = target.find('?');
  req.path = std::string(target.substr(0, q));
  if (q != std::string_view::npos) req.query = std::string(target.substr(q + 1));
  for (std::string_view line = NextLine(in); !line.empty(); line = NextLine(in)) {
    size_t colon = line.find(':');
    std::string_view value = colon == std::string_view::npos ? std::string_view() : line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    req.headers.Add(std::string(line.substr(0, colon)), std::string(value));
  }
  req.body = std::string(in);
  return req;
}

struct HttpFixture {
  HttpFixture() {
    front = std::make_unique<bff::ApiFront>(bff::ApiFront::Options{}, domain.sched, &metrics);
    bff::DownstreamClients* clients = domain.clients.get();
    bff::Scheduler* sched = &domain.sched;
    tokens = bff::AccessTokenValidator::Create(
        bff::AccessTokenOptions{},
        [clients, sched](bff::AccessTokenValidator::JwksCallback done) {
          bff::RequestContext ctx;
          ctx.trace = bff::TraceContext::NewRoot();
          clients->identity().Jwks(ctx, sched->Now() + std::chrono::seconds(5), std::move(done));
        },
        domain.sched);
    tokens->Start();
    sessions = std::make_unique<bff::InMemorySessionStore>(bff::SessionOptions{});
    mobile = std::make_unique<bff::MobileBff>(config, *domain.clients, domain.sched, tokens);
    mobile->Register(*front);
    web = std::make_unique<bff::WebBff>(config, *domain.clients, domain.sched, *sessions, &metrics);
    web->Register(*front);
    Refresh();
  }

  bff::HttpResponse Handle(bff::HttpRequest req) {
    return bff::fuzz::AnswerOnce<bff::HttpResponse>("ApiFront", [&](auto done) { front->Handle(std::move(req), done); });
  }

  // Logs in the demo users once more: a bearer token for bob, a web session for alice.
  void Refresh() {
    bff::HttpRequest t;
    t.method = "POST";
    t.path = "/mobile/v1/auth/token";
    t.headers.Set("Content-Type", "application/json");
    t.body = R"({"grant_type":"password","username":"bob","password":"demo-bob"})";
    bff::HttpResponse tr = Handle(t);
    json tb = json::parse(tr.body, nullptr, false);
    if (tr.status != 200 || !tb.is_object() || !tb["access_token"].is_string()) bff::fuzz::SetupFailed("login: " + tr.body);
    access_token = tb["access_token"].get<std::string>();

    bff::HttpRequest s;
    s.method = "POST";
    s.path = "/web/v1/session";
    s.headers.Set("Content-Type", "application/json");
    s.body = R"({"username":"alice","password":"demo-alice"})";
    bff::HttpResponse sr = Handle(s);
    json sb = json::parse(sr.body, nullptr, false);
    if (sr.status != 201 || !sb.is_object() || !sb["csrf_token"].is_string()) bff::fuzz::SetupFailed("session: " + sr.body);
    std::string set_cookie(sr.headers.Get("Set-Cookie"));
    session_cookie = set_cookie.substr(0, set_cookie.find(';'));
    csrf = sb["csrf_token"].get<std::string>();
    refreshed = std::chrono::steady_clock::now();
  }

  bff::fuzz::DomainFixture domain;
  bff::Config config;
  bff::MetricsRegistry metrics;
  std::unique_ptr<bff::ApiFront> front;
  std::shared_ptr<bff::AccessTokenValidator> tokens;
  std::unique_ptr<bff::InMemorySessionStore> sessions;
  std::unique_ptr<bff::MobileBff> mobile;
  std::unique_ptr<bff::WebBff> web;
  std::string access_token, session_cookie, csrf;
  std::chrono::steady_clock::time_point refreshed;
};

void CheckAnswer(const bff::HttpRequest& req, const bff::HttpResponse& r) {
  if (r.status < kLowestStatus || r.status > kHighestStatus) {
    bff::fuzz::Finding("status " + std::to_string(r.status) + " for " + req.method + " " + req.Target());
  }
  if (req.method == "HEAD") {
    // Answered like GET without the body (HTTP semantics), errors included.
    if (!r.body.empty()) bff::fuzz::Finding("HEAD answered with a body");
    return;
  }
  if (r.status < kFirstErrorStatus) return;
  json body = json::parse(r.body, nullptr, false);
  if (!body.is_object() || !body["error"].is_object() || !body["error"]["code"].is_string() ||
      !body["error"]["message"].is_string() || !body["error"]["trace_id"].is_string()) {
    bff::fuzz::Finding(std::to_string(r.status) + " without the JSON error body: " + r.body);
  }
  if (r.headers.Get("Content-Type").find("application/json") == std::string_view::npos) {
    bff::fuzz::Finding(std::to_string(r.status) + " error body not labelled JSON");
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  bff::fuzz::Fixture<HttpFixture>();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  HttpFixture& f = bff::fuzz::Fixture<HttpFixture>();
  if (std::chrono::steady_clock::now() - f.refreshed > kCredentialRefresh) f.Refresh();
  std::string text(reinterpret_cast<const char*>(data), size);
  ReplaceAll(text, "@TOKEN@", f.access_token);
  ReplaceAll(text, "@SESSION@", f.session_cookie);
  ReplaceAll(text, "@CSRF@", f.csrf);
  bff::HttpRequest req = Parse(text);
  bff::HttpResponse r = f.Handle(req);
  if (bff::fuzz::Tracing()) std::fprintf(stderr, "%s %s -> %d %.200s\n", req.method.c_str(), req.Target().c_str(), r.status, r.body.c_str());
  CheckAnswer(req, r);
  return 0;
}
