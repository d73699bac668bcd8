// CoAP and CoAP-over-DTLS-PSK link of the simulated shelf sensors: one libcoap client session per device on
// one loop thread, telemetry as a confirmable POST /t, each exchange answered by its response, by
// libcoap giving up, or by its deadline.
//
// Threading. libcoap is not thread-safe, so only the loop thread touches it once Start() has handed over.
// SendTelemetry() puts a request in a mailbox whose eventfd sits, beside libcoap's own epoll fd
// (coap_context_get_coap_fd), in the loop's epoll set; the loop sleeps until a datagram, a libcoap timer, a
// request or the next exchange deadline needs it. Exchanges and deadlines are the loop's own state, so no
// lock is held when an exchange's `done` runs (on the loop thread).
//
// Retransmission. RFC 7252's defaults (ACK_TIMEOUT 2 s, MAX_RETRANSMIT 4) keep a request alive for up to
// 45 s, far beyond a device's wait for an answer. Each session uses kAckTimeoutS = 1 s and
// kMaxRetransmit = 2 (ACK_RANDOM_FACTOR stays 1.5): sends at 0 s, 1-1.5 s and 3-4.5 s, and libcoap gives
// up (NACK) at 7-10.5 s. A deadline shorter than that ends the
// exchange first; a late response then finds no exchange and is only acknowledged.
//
// Sessions. Plain CoAP sessions (a socket each) are all opened in Start(). DTLS sessions are opened by the
// loop at most kMaxHandshakes at a time: libcoap's server takes only so many handshakes at once (100 by
// default) and ignores the rest, whose clients then wait for OpenSSL's doubling retransmission timer (with
// 3,000 devices handshaking at once, a third of the exchanges went unanswered and p99 was 3 s; paced,
// none and 60 ms). Devices with a reading waiting go first,
// then the others in order, so a fleet is paired soon after Start(). A handshake still unfinished when one
// of its exchanges reaches its deadline is abandoned (its slot goes to the next device; the device's other
// exchanges end too), and so is an established DTLS session on which an exchange got no answer at all: a
// restarted server knows nothing of it and would ignore it until libcoap gave up. A DTLS session that
// fails or is closed is replaced before the device's next exchange; whatever it still carried ends with
// kNoAnswer. NSTART is raised to kNstart so that readings a device keeps outstanding go out together
// instead of one round trip after another.
#include <coap3/coap.h>
#include <netdb.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <queue>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/log.h"
#include "firmware-sim/link.h"

namespace bff::sim {
namespace {

using Clock = std::chrono::steady_clock;

constexpr unsigned kAckTimeoutS = 1;
constexpr uint16_t kMaxRetransmit = 2;
constexpr uint16_t kNstart = 32;
// DTLS handshakes in progress at once, per link (libcoap's server default is 100 per endpoint).
constexpr size_t kMaxHandshakes = 32;
constexpr int kMaxEpollEvents = 16;
// RFC 7252 section 5.10.5: Max-Age absent means 60 seconds.
constexpr int kDefaultMaxAgeS = 60;
constexpr char kTelemetryPath[] = "t";
constexpr int kMaxLibcoapLinesPerSecond = 10;

// 10,000 devices are 10,000 sockets: take what the hard limit allows.
void RaiseFileLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max) return;
  rl.rlim_cur = rl.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
    log::Warn("coap link: cannot raise the open file limit", {{"error", std::strerror(errno)}});
  }
}

// libcoap says the same thing for every session (10,000 "ICMP: Connection refused" while a server
// restarts): at most kMaxLibcoapLinesPerSecond lines a second, and how many were dropped.
void LogFromLibcoap(coap_log_t level, const char* message) {
  static std::mutex mu;
  static Clock::time_point window;
  static int lines = 0;
  static uint64_t dropped = 0;
  uint64_t dropped_before = 0;
  {
    std::lock_guard<std::mutex> lock(mu);
    Clock::time_point now = Clock::now();
    if (now - window >= std::chrono::seconds(1)) {
      window = now;
      lines = 0;
    }
    if (++lines > kMaxLibcoapLinesPerSecond) {
      ++dropped;
      return;
    }
    dropped_before = std::exchange(dropped, 0);
  }
  if (dropped_before > 0) log::Warn("coap link: libcoap lines dropped", {{"count", dropped_before}});
  std::string m = message ? message : "";
  while (!m.empty() && (m.back() == '\n' || m.back() == '\r')) m.pop_back();
  log::Warn(level <= LOG_ERR ? "coap link: libcoap error" : "coap link: libcoap", {{"detail", m}});
}

// "host:port", "[v6]:port".
StatusOr<coap_address_t> ResolveAddress(const std::string& text) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) {
    return InvalidArgument("expected host:port, got " + text);
  }
  std::string host = text.substr(0, colon);
  std::string port = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0 || res == nullptr) return InvalidArgument("cannot resolve " + text + ": " + gai_strerror(rc));
  coap_address_t addr;
  coap_address_init(&addr);
  if (res->ai_addrlen > sizeof(addr.addr)) {
    freeaddrinfo(res);
    return InvalidArgument("unsupported address " + text);
  }
  addr.size = res->ai_addrlen;
  std::memcpy(&addr.addr, res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  return addr;
}

std::string TokenOf(const coap_pdu_t* pdu) {
  coap_bin_const_t t = coap_pdu_get_token(pdu);
  return std::string(reinterpret_cast<const char*>(t.s), t.length);
}

Answer NoAnswer() { return Answer{AnswerKind::kNoAnswer, 0, {}, 0}; }

struct Request {
  size_t index = 0;
  std::string payload;
  Clock::time_point deadline;
  std::function<void(Answer)> done;
};

// Requests from other threads to the loop. After Close() it takes nothing more and hands back what it held.
class Mailbox {
 public:
  Mailbox() : fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}
  ~Mailbox() {
    if (fd_ >= 0) close(fd_);
  }
  Mailbox(const Mailbox&) = delete;
  Mailbox& operator=(const Mailbox&) = delete;

  int fd() const { return fd_; }
  // Takes `r` only when it returns true.
  bool Push(Request& r) {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return false;
    items_.push_back(std::move(r));
    Wake();
    return true;
  }
  void Wake() {
    uint64_t one = 1;
    // EAGAIN means the counter is already non-zero: the loop wakes anyway.
    [[maybe_unused]] ssize_t n = write(fd_, &one, sizeof(one));
  }
  std::deque<Request> Take() {
    uint64_t n;
    while (read(fd_, &n, sizeof(n)) > 0) {
    }
    std::lock_guard<std::mutex> lock(mu_);
    return std::exchange(items_, {});
  }
  std::deque<Request> Close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    return std::exchange(items_, {});
  }

 private:
  int fd_;
  std::mutex mu_;
  bool closed_ = false;
  std::deque<Request> items_;
};

class CoapLink : public Link {
 public:
  CoapLink(LinkOptions options, bool dtls) : options_(std::move(options)), dtls_(dtls) {}
  ~CoapLink() override { Stop(); }

  std::string_view protocol() const override { return dtls_ ? "coaps" : "coap"; }
  bool key_in_payload() const override { return false; }

  Status Start(const std::vector<DeviceIdentity>& devices) override;

  void SendTelemetry(size_t index, uint64_t, std::string payload, std::chrono::milliseconds timeout,
                     std::function<void(Answer)> done) override {
    if (!running_.load() || index >= devices_.size()) {
      done(NoAnswer());
      return;
    }
    Request r{index, std::move(payload), Clock::now() + timeout, std::move(done)};
    // Refused only once Stop() has closed the mailbox.
    if (!mailbox_.Push(r)) r.done(NoAnswer());
  }

  size_t connected() const override { return running_.load() ? devices_.size() : 0; }
  void Stop() override;

 private:
  struct Device {
    DeviceIdentity id;
    std::string query;  // "k=KEY", plain CoAP only
    coap_session_t* session = nullptr;
    bool handshaking = false;  // DTLS: opened, not connected yet; holds one of kMaxHandshakes
    bool broken = false;       // replace the session before the next exchange
    bool urgent = false;       // in urgent_: a reading waits for the handshake
    bool failure_logged = false;
    std::unordered_map<std::string, uint64_t> by_token;  // sent exchanges
    std::vector<uint64_t> unsent;                         // exchanges waiting for a session
  };
  struct Exchange {
    Device* device = nullptr;
    bool sent = false;
    std::string payload;  // until sent
    std::string token;
    coap_mid_t mid = COAP_INVALID_MID;
    std::function<void(Answer)> done;
  };

  static coap_response_t OnResponse(coap_session_t* session, const coap_pdu_t*, const coap_pdu_t* received,
                                    const coap_mid_t) {
    if (CoapLink* self = LinkOf(session)) self->HandleResponse(session, received);
    return COAP_RESPONSE_OK;
  }
  static void OnNack(coap_session_t* session, const coap_pdu_t* sent, const coap_nack_reason_t reason,
                     const coap_mid_t mid) {
    if (CoapLink* self = LinkOf(session)) self->HandleNack(session, sent, reason, mid);
  }
  static int OnEvent(coap_session_t* session, const coap_event_t event) {
    if (CoapLink* self = LinkOf(session)) self->HandleEvent(session, event);
    return 0;
  }
  static CoapLink* LinkOf(coap_session_t* session) {
    if (session == nullptr || coap_session_get_app_data(session) == nullptr) return nullptr;
    return static_cast<CoapLink*>(coap_get_app_data(coap_session_get_context(session)));
  }

  bool OpenSession(Device& d);
  void CloseSession(Device& d);
  void Run();
  void Send(Request r);
  void Transmit(Device& d, uint64_t id);
  void PumpHandshakes();
  void HandshakeOver(Device& d);
  void HandleResponse(coap_session_t* session, const coap_pdu_t* received);
  void HandleNack(coap_session_t* session, const coap_pdu_t* sent, coap_nack_reason_t reason, coap_mid_t mid);
  void HandleEvent(coap_session_t* session, coap_event_t event);
  void Finish(uint64_t id, Answer answer);
  void ExpireDue();
  int MillisToNextDeadline();

  LinkOptions options_;
  const bool dtls_;
  coap_address_t server_{};
  std::vector<Device> devices_;  // never resized after Start(): sessions point into it
  Mailbox mailbox_;
  coap_context_t* ctx_ = nullptr;
  int epoll_fd_ = -1;
  std::thread thread_;
  std::atomic<bool> running_{false};
  std::atomic<bool> stop_{false};
  std::mutex lifecycle_mu_;
  bool started_ = false;
  bool stopped_ = false;

  // Loop-thread state.
  std::unordered_map<uint64_t, Exchange> exchanges_;
  std::priority_queue<std::pair<Clock::time_point, uint64_t>, std::vector<std::pair<Clock::time_point, uint64_t>>,
                      std::greater<>>
      deadlines_;
  uint64_t next_exchange_ = 1;
  std::deque<Device*> urgent_;   // DTLS: devices with a reading waiting for a handshake
  std::deque<Device*> warm_;     // DTLS: devices not paired yet, from Start()
  std::vector<Device*> handshaking_;
};

Status CoapLink::Start(const std::vector<DeviceIdentity>& devices) {
  std::lock_guard<std::mutex> lock(lifecycle_mu_);
  if (started_) return FailedPrecondition("coap link: already started");
  started_ = true;
  static std::once_flag once;
  std::call_once(once, [] {
    coap_startup();
    coap_set_log_handler(LogFromLibcoap);
    // Debug output would show packets, and with them keys in the query.
    coap_set_log_level(LOG_WARNING);
  });
  RaiseFileLimit();
  if (mailbox_.fd() < 0) return Internal(std::string("coap link: eventfd: ") + std::strerror(errno));
  if (dtls_ && !coap_dtls_is_supported()) return Unavailable("coap link: this libcoap has no DTLS support");
  const std::string& address = dtls_ ? options_.coaps_address : options_.coap_address;
  StatusOr<coap_address_t> server = ResolveAddress(address);
  if (!server.ok()) return InvalidArgument("coap link: " + server.status().message());
  server_ = *server;

  ctx_ = coap_new_context(nullptr);
  if (ctx_ == nullptr) return Internal("coap link: cannot create a libcoap context");
  coap_set_app_data(ctx_, this);
  coap_register_response_handler(ctx_, OnResponse);
  coap_register_nack_handler(ctx_, OnNack);
  coap_register_event_handler(ctx_, OnEvent);

  devices_.resize(devices.size());
  size_t opened = 0;
  for (size_t i = 0; i < devices.size(); ++i) {
    Device& d = devices_[i];
    d.id = devices[i];
    if (!dtls_) d.query = "k=" + d.id.key;
    // DTLS: only the first here (it proves sockets can be had); the loop pairs the rest.
    if (dtls_ && i > 0) {
      warm_.push_back(&d);
    } else if (OpenSession(d)) {
      ++opened;
    }
  }
  if (!devices.empty() && opened == 0) {
    return Unavailable("coap link: cannot open a session to " + address + ": " + std::strerror(errno));
  }
  if (!dtls_ && opened < devices.size()) {
    log::Warn("coap link: some sessions could not be opened; retrying at their first exchange",
              {{"opened", opened}, {"devices", devices.size()}});
  }

  int coap_fd = coap_context_get_coap_fd(ctx_);
  if (coap_fd < 0) return Unavailable("coap link: this libcoap has no epoll support");
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) return Internal(std::string("coap link: epoll_create1: ") + std::strerror(errno));
  for (int fd : {coap_fd, mailbox_.fd()}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      return Internal(std::string("coap link: epoll_ctl: ") + std::strerror(errno));
    }
  }
  running_.store(true);
  thread_ = std::thread([this] { Run(); });
  log::Info("coap link: started", {{"protocol", protocol()}, {"server", address}, {"devices", devices_.size()}});
  return Status::Ok();
}

bool CoapLink::OpenSession(Device& d) {
  coap_session_t* s = nullptr;
  if (dtls_) {
    coap_dtls_cpsk_t setup;
    std::memset(&setup, 0, sizeof(setup));
    setup.version = COAP_DTLS_CPSK_SETUP_VERSION;
    // libcoap copies identity and key into the session; d.id keeps the originals alive regardless.
    setup.psk_info.identity.s = reinterpret_cast<const uint8_t*>(d.id.device_id.data());
    setup.psk_info.identity.length = d.id.device_id.size();
    setup.psk_info.key.s = reinterpret_cast<const uint8_t*>(d.id.key.data());
    setup.psk_info.key.length = d.id.key.size();
    s = coap_new_client_session_psk2(ctx_, nullptr, &server_, COAP_PROTO_DTLS, &setup);
  } else {
    s = coap_new_client_session(ctx_, nullptr, &server_, COAP_PROTO_UDP);
  }
  if (s == nullptr) return false;
  coap_session_set_ack_timeout(s, coap_fixed_point_t{kAckTimeoutS, 0});
  coap_session_set_max_retransmit(s, kMaxRetransmit);
  coap_session_set_nstart(s, kNstart);
  coap_session_set_app_data(s, &d);
  d.session = s;
  d.broken = false;
  if (dtls_) {
    d.handshaking = true;
    handshaking_.push_back(&d);
  }
  return true;
}

void CoapLink::HandshakeOver(Device& d) {
  if (!d.handshaking) return;
  d.handshaking = false;
  handshaking_.erase(std::find(handshaking_.begin(), handshaking_.end(), &d));
}

// Whatever the session still carried cannot be answered any more.
void CoapLink::CloseSession(Device& d) {
  std::vector<uint64_t> ids;
  for (auto& [token, id] : d.by_token) ids.push_back(id);
  for (uint64_t id : ids) Finish(id, NoAnswer());
  HandshakeOver(d);
  if (d.session != nullptr) {
    coap_session_t* s = d.session;
    d.session = nullptr;
    // Its last events and NACKs during release concern nobody now.
    coap_session_set_app_data(s, nullptr);
    coap_session_release(s);
  }
}

void CoapLink::Run() {
  while (!stop_.load()) {
    for (Request& r : mailbox_.Take()) Send(std::move(r));
    if (coap_io_process(ctx_, COAP_IO_NO_WAIT) < 0) log::Warn("coap link: libcoap i/o failed");
    ExpireDue();
    if (dtls_) PumpHandshakes();
    if (stop_.load()) break;
    epoll_event events[kMaxEpollEvents];
    // Level-triggered: whatever is not handled here wakes the next wait again.
    if (epoll_wait(epoll_fd_, events, kMaxEpollEvents, MillisToNextDeadline()) < 0 && errno != EINTR) {
      log::Error("coap link: epoll_wait failed", {{"error", std::strerror(errno)}});
      break;
    }
  }
}

void CoapLink::Send(Request r) {
  Device& d = devices_[r.index];
  if (d.session != nullptr && d.broken) CloseSession(d);
  uint64_t id = next_exchange_++;
  exchanges_.emplace(id, Exchange{&d, false, std::move(r.payload), {}, COAP_INVALID_MID, std::move(r.done)});
  deadlines_.emplace(r.deadline, id);
  if (d.session != nullptr) {
    // A DTLS session still in its handshake: libcoap holds the request until it is done.
    Transmit(d, id);
    return;
  }
  if (dtls_) {
    d.unsent.push_back(id);
    if (!d.urgent) {
      d.urgent = true;
      urgent_.push_back(&d);
    }
    PumpHandshakes();
    return;
  }
  if (!OpenSession(d)) {
    if (!d.failure_logged) {
      d.failure_logged = true;
      log::Warn("coap link: cannot open a session", {{"device", d.id.device_id}, {"error", std::strerror(errno)}});
    }
    Finish(id, NoAnswer());
    return;
  }
  Transmit(d, id);
}

void CoapLink::PumpHandshakes() {
  // The handshake-done event is the usual way out of handshaking_; the state covers any event missed.
  for (size_t i = 0; i < handshaking_.size();) {
    Device* d = handshaking_[i];
    if (coap_session_get_state(d->session) == COAP_SESSION_STATE_ESTABLISHED) {
      HandshakeOver(*d);
    } else {
      ++i;
    }
  }
  while (handshaking_.size() < kMaxHandshakes && (!urgent_.empty() || !warm_.empty())) {
    std::deque<Device*>& from = urgent_.empty() ? warm_ : urgent_;
    Device* d = from.front();
    from.pop_front();
    if (&from == &urgent_) d->urgent = false;
    if (d->session != nullptr) continue;
    std::vector<uint64_t> waiting = std::exchange(d->unsent, {});
    std::erase_if(waiting, [&](uint64_t id) { return exchanges_.count(id) == 0; });
    // Its readings all ended by their deadline meanwhile: it comes back with the next one.
    if (&from == &urgent_ && waiting.empty()) continue;
    if (!OpenSession(*d)) {
      if (!d->failure_logged) {
        d->failure_logged = true;
        log::Warn("coap link: cannot open a session", {{"device", d->id.device_id}, {"error", std::strerror(errno)}});
      }
      for (uint64_t id : waiting) Finish(id, NoAnswer());
      continue;
    }
    for (uint64_t id : waiting) Transmit(*d, id);
  }
}

void CoapLink::Transmit(Device& d, uint64_t id) {
  auto it = exchanges_.find(id);
  if (it == exchanges_.end()) return;
  std::string payload = std::exchange(it->second.payload, {});
  coap_pdu_t* pdu = coap_new_pdu(COAP_MESSAGE_CON, COAP_REQUEST_CODE_POST, d.session);
  if (pdu == nullptr) return Finish(id, NoAnswer());
  uint8_t token[8];
  size_t token_len = 0;
  coap_session_new_token(d.session, &token_len, token);
  bool built = coap_add_token(pdu, token_len, token) != 0 &&
               coap_add_option(pdu, COAP_OPTION_URI_PATH, sizeof(kTelemetryPath) - 1,
                               reinterpret_cast<const uint8_t*>(kTelemetryPath)) != 0;
  if (built && !d.query.empty()) {
    built = coap_add_option(pdu, COAP_OPTION_URI_QUERY, d.query.size(), reinterpret_cast<const uint8_t*>(d.query.data())) != 0;
  }
  if (!built) {
    coap_delete_pdu(pdu);
    return Finish(id, NoAnswer());
  }
  if (!payload.empty() && coap_add_data(pdu, payload.size(), reinterpret_cast<const uint8_t*>(payload.data())) == 0) {
    // This link sends every reading in one datagram, never block-wise; the server refuses larger
    // payloads (4.13) anyway, so one that does not fit is refused here the same way.
    coap_delete_pdu(pdu);
    Answer a;
    a.kind = AnswerKind::kRejected;
    a.code = 413;
    return Finish(id, std::move(a));
  }
  std::string tok(reinterpret_cast<const char*>(token), token_len);
  it->second.sent = true;
  it->second.token = tok;
  // Registered before coap_send(), which may already report a failure through the NACK handler.
  d.by_token[tok] = id;
  coap_mid_t mid = coap_send(d.session, pdu);
  it = exchanges_.find(id);
  if (it == exchanges_.end()) return;
  if (mid == COAP_INVALID_MID) return Finish(id, NoAnswer());
  it->second.mid = mid;
}

void CoapLink::HandleResponse(coap_session_t* session, const coap_pdu_t* received) {
  auto* d = static_cast<Device*>(coap_session_get_app_data(session));
  if (d == nullptr || d->session != session) return;
  auto t = d->by_token.find(TokenOf(received));
  if (t == d->by_token.end()) return;  // answered already, or its deadline passed
  uint64_t id = t->second;
  coap_pdu_code_t code = coap_pdu_get_code(received);
  int cls = static_cast<int>(code) >> 5;
  int number = cls * 100 + (static_cast<int>(code) & 0x1f);
  Answer a;
  a.code = number;
  if (cls == 2) {
    a.kind = AnswerKind::kAcknowledged;
    size_t len = 0;
    const uint8_t* data = nullptr;
    if (coap_get_data(received, &len, &data) && len > 0) a.flags.assign(reinterpret_cast<const char*>(data), len);
  } else if (number == 429 || number == 503) {
    a.kind = AnswerKind::kRetryLater;
    a.retry_after_s = kDefaultMaxAgeS;
    coap_opt_iterator_t it;
    if (coap_opt_t* opt = coap_check_option(received, COAP_OPTION_MAXAGE, &it)) {
      a.retry_after_s = static_cast<int>(coap_decode_var_bytes(coap_opt_value(opt), coap_opt_length(opt)));
    }
  } else if (cls == 4 || cls == 5) {
    a.kind = AnswerKind::kRejected;
  } else {
    return;  // not a response code: leave the exchange to its deadline
  }
  Finish(id, std::move(a));
}

void CoapLink::HandleNack(coap_session_t* session, const coap_pdu_t* sent, coap_nack_reason_t reason, coap_mid_t mid) {
  auto* d = static_cast<Device*>(coap_session_get_app_data(session));
  if (d == nullptr || d->session != session) return;
  uint64_t id = 0;
  if (sent != nullptr) {
    auto t = d->by_token.find(TokenOf(sent));
    if (t != d->by_token.end()) id = t->second;
  } else {
    for (auto& [token, eid] : d->by_token) {
      auto e = exchanges_.find(eid);
      if (e != exchanges_.end() && e->second.mid == mid) id = eid;
    }
  }
  if (reason == COAP_NACK_TLS_FAILED || (dtls_ && reason == COAP_NACK_TOO_MANY_RETRIES)) d->broken = true;
  if (id != 0) Finish(id, NoAnswer());
}

void CoapLink::HandleEvent(coap_session_t* session, coap_event_t event) {
  auto* d = static_cast<Device*>(coap_session_get_app_data(session));
  if (d == nullptr || d->session != session) return;
  switch (event) {
    case COAP_EVENT_DTLS_ERROR:
    case COAP_EVENT_DTLS_CLOSED:
    case COAP_EVENT_SESSION_FAILED:
    case COAP_EVENT_SESSION_CLOSED:
      if (!d->broken) log::Info("coap link: session lost; a new one opens at the next exchange",
                                {{"device", d->id.device_id}, {"event", static_cast<int>(event)}});
      d->broken = true;
      HandshakeOver(*d);
      break;
    case COAP_EVENT_DTLS_CONNECTED:
      d->failure_logged = false;
      HandshakeOver(*d);
      break;
    default:
      break;
  }
}

void CoapLink::Finish(uint64_t id, Answer answer) {
  auto it = exchanges_.find(id);
  if (it == exchanges_.end()) return;
  std::function<void(Answer)> done = std::move(it->second.done);
  // An unsent one stays listed in its device's unsent until the handshake queue drops it.
  if (it->second.sent) it->second.device->by_token.erase(it->second.token);
  exchanges_.erase(it);
  done(std::move(answer));
}

void CoapLink::ExpireDue() {
  Clock::time_point now = Clock::now();
  while (!deadlines_.empty() && deadlines_.top().first <= now) {
    uint64_t id = deadlines_.top().second;
    deadlines_.pop();
    auto it = exchanges_.find(id);
    if (it == exchanges_.end()) continue;
    Device& d = *it->second.device;
    bool sent = it->second.sent;
    Finish(id, NoAnswer());
    if (!dtls_ || !sent || d.session == nullptr) continue;
    if (d.handshaking) {
      CloseSession(d);
    } else {
      d.broken = true;
    }
  }
}

int CoapLink::MillisToNextDeadline() {
  // Entries of finished exchanges stay in the heap until their time: drop them so they cause no wake-up.
  while (!deadlines_.empty() && exchanges_.count(deadlines_.top().second) == 0) deadlines_.pop();
  if (deadlines_.empty()) return -1;
  auto left = std::chrono::ceil<std::chrono::milliseconds>(deadlines_.top().first - Clock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(left, 0, 60000));
}

void CoapLink::Stop() {
  std::lock_guard<std::mutex> lock(lifecycle_mu_);
  if (stopped_) return;
  stopped_ = true;
  stop_.store(true);
  running_.store(false);
  std::deque<Request> unsent = mailbox_.Close();
  mailbox_.Wake();
  if (thread_.joinable()) thread_.join();
  // The loop is gone: libcoap is ours alone from here.
  std::vector<std::function<void(Answer)>> ends;
  for (Request& r : unsent) ends.push_back(std::move(r.done));
  for (auto& [id, ex] : exchanges_) ends.push_back(std::move(ex.done));
  exchanges_.clear();
  deadlines_ = {};
  urgent_.clear();
  warm_.clear();
  for (Device& d : devices_) {
    d.by_token.clear();
    d.unsent.clear();
    CloseSession(d);
  }
  if (ctx_ != nullptr) coap_free_context(ctx_);
  ctx_ = nullptr;
  if (epoll_fd_ >= 0) close(epoll_fd_);
  epoll_fd_ = -1;
  for (auto& done : ends) done(NoAnswer());
  if (!devices_.empty()) log::Info("coap link: stopped", {{"protocol", protocol()}, {"devices", devices_.size()}});
}

}  // namespace

StatusOr<std::unique_ptr<Link>> MakeCoapLink(const LinkOptions& options, bool dtls) {
  return std::unique_ptr<Link>(std::make_unique<CoapLink>(options, dtls));
}

}  // namespace bff::sim
