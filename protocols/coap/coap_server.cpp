// CoAP front of the IoT BFF on libcoap 4.3.1: resources, DTLS-PSK, and IotBff's answers carried back to
// the one thread that may touch libcoap.
//
// Threading. libcoap is not thread-safe, so everything libcoap runs on the loop thread. IotBff answers
// either at once (inside the request handler: errors, cached flags) or later on a scheduler thread. A late
// answer is put in a mailbox whose eventfd sits, together with libcoap's own epoll fd
// (coap_context_get_coap_fd), in the loop's epoll set: the loop sleeps until a datagram, a libcoap timer
// or an answer needs it, and never blocks on IotBff.
//
// Late answers use libcoap's async support: the handler registers the request (coap_register_async with
// no delay), and when the answer arrives the loop calls coap_async_trigger, upon which libcoap hands a
// copy of the request to the same handler, which then fills the response. libcoap 4.3.1 would answer a
// CON request it holds this way with an empty ACK at once and the response later as a separate CON
// (RFC 7252 5.2.2): four datagrams where a device wants two. So the first pass suppresses that empty
// ACK, and an answer ready within kPiggybackWindow goes out as the ACK itself (piggybacked, with the
// request's message id). A later answer goes out as a separate CON response, which the client takes as
// acknowledgement too; a retransmission of the request in between is acknowledged by libcoap (it sends
// the empty ACK for requests it holds), so nothing is lost either way.
//
// Observe. libcoap cannot observe its "unknown" resource, so /s/{shelf} resources are created the first
// time a shelf is answered successfully (bounded by kMaxShelfResources). A request that first names a
// shelf is re-dispatched by libcoap after the resource exists, so even the very first registration is
// established. Each shelf with observers is observed in IotBff once; IotBff's change callbacks post the
// new flags to the loop, which stores them and calls coap_resource_notify_observers; libcoap then replays
// each stored request to the handler, answered from the stored flags without asking IotBff again.
//
// Content-Format: none is sent. msgpack has no registered CoAP Content-Format number and every resource
// has exactly one representation (CONTRACT.md section 4), so the option would be bytes on a constrained
// link that carry nothing; requests' Content-Format is ignored.
#include "protocols/coap/coap_server.h"

#include <coap3/coap.h>
#include <netdb.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/select.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <chrono>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include <msgpack.hpp>

#include "common/log.h"
#include "common/tcp_nodelay.h"
#include "observability/metrics.h"
#include "protocols/msgpack/iot_codec.h"
#include "security/input_validation.h"

namespace bff {
namespace {

using SteadyClock = std::chrono::steady_clock;

// Answers awaited from IotBff at once; past this, requests get 5.03 with Max-Age kBusyRetryAfterS.
constexpr size_t kMaxPendingRequests = 4096;
constexpr int kBusyRetryAfterS = 1;
// Observable /s/{shelf} resources created on demand (only for shelves a device may read).
constexpr size_t kMaxShelfResources = 10000;
// Idle sessions kept (plain and DTLS); past this libcoap drops the least recently used idle one.
constexpr unsigned kMaxIdleSessions = 10000;
// A late answer within this time after the request still goes out piggybacked on the ACK. Well below
// the first retransmission of a client with RFC 7252's default ACK_TIMEOUT (2 s, so 2-3 s).
constexpr auto kPiggybackWindow = std::chrono::milliseconds(500);
constexpr int kMaxEpollEvents = 8;
constexpr size_t kMaxEtagBytes = 8;

constexpr char kTelemetryPath[] = "t";
constexpr char kShelfSegment[] = "s";
constexpr char kSkuSegment[] = "p";

enum class Route { kTelemetry, kShelf, kSku };

// The resource label of bffd_coap_requests_total.
enum MetricResource : size_t { kMetricT, kMetricS, kMetricP, kMetricOther, kMetricResources };
constexpr std::string_view kMetricResourceNames[kMetricResources] = {"t", "s", "p", "other"};
// Response codes counted: classes 2 to 5 (a code byte is class << 5 | detail), one slot each.
constexpr uint8_t kFirstCountedCode = 2 << 5;
constexpr size_t kCodeSlots = 4 * 32;

// One IotBff call, shared by the loop and the callback (which may run on any thread).
struct Call {
  std::mutex mu;
  std::optional<IotReply> reply;
  bool deferred = false;  // the handler returned without it: the callback posts to the mailbox
  uint64_t id = 0;
};

struct FlagsUpdate {
  std::string shelf;
  std::string encoded;
  uint64_t version = 0;
};

using MailItem = std::variant<std::shared_ptr<Call>, FlagsUpdate>;

// What other threads hand to the loop thread. Outlives the server when callbacks still hold it; after
// Close() it drops everything.
class Mailbox {
 public:
  Mailbox() : fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}
  ~Mailbox() {
    if (fd_ >= 0) close(fd_);
  }
  Mailbox(const Mailbox&) = delete;
  Mailbox& operator=(const Mailbox&) = delete;

  int fd() const { return fd_; }
  void Push(MailItem item) {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return;
    items_.push_back(std::move(item));
    WakeLocked();
  }
  void Wake() {
    std::lock_guard<std::mutex> lock(mu_);
    if (!closed_) WakeLocked();
  }
  std::deque<MailItem> Take() {
    uint64_t n;
    while (read(fd_, &n, sizeof(n)) > 0) {
    }
    std::lock_guard<std::mutex> lock(mu_);
    return std::exchange(items_, {});
  }
  void Close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    items_.clear();
  }

 private:
  void WakeLocked() {
    uint64_t one = 1;
    // EAGAIN means the counter is already non-zero: the loop wakes anyway.
    [[maybe_unused]] ssize_t n = write(fd_, &one, sizeof(one));
  }

  int fd_;
  std::mutex mu_;
  bool closed_ = false;
  std::deque<MailItem> items_;
};

std::string TokenOf(const coap_pdu_t* pdu) {
  coap_bin_const_t t = coap_pdu_get_token(pdu);
  return std::string(reinterpret_cast<const char*>(t.s), t.length);
}

coap_bin_const_t BinOf(const std::string& s) {
  return coap_bin_const_t{s.size(), reinterpret_cast<const uint8_t*>(s.data())};
}

std::vector<std::string> OptionValues(const coap_pdu_t* pdu, coap_option_num_t number) {
  std::vector<std::string> out;
  coap_opt_filter_t filter;
  coap_option_filter_clear(&filter);
  coap_option_filter_set(&filter, number);
  coap_opt_iterator_t it;
  if (coap_option_iterator_init(pdu, &it, &filter) == nullptr) return out;
  while (coap_opt_t* opt = coap_option_next(&it)) {
    out.emplace_back(reinterpret_cast<const char*>(coap_opt_value(opt)), coap_opt_length(opt));
  }
  return out;
}

std::string QueryValue(const coap_pdu_t* pdu, std::string_view name) {
  for (const std::string& q : OptionValues(pdu, COAP_OPTION_URI_QUERY)) {
    if (q.size() > name.size() && q.compare(0, name.size(), name) == 0 && q[name.size()] == '=') {
      return q.substr(name.size() + 1);
    }
  }
  return {};
}

// The Observe option's value, if the request carries one (0 register, 1 deregister).
std::optional<uint32_t> ObserveAction(const coap_pdu_t* pdu) {
  coap_opt_iterator_t it;
  coap_opt_t* opt = coap_check_option(pdu, COAP_OPTION_OBSERVE, &it);
  if (opt == nullptr) return std::nullopt;
  return coap_decode_var_bytes(coap_opt_value(opt), coap_opt_length(opt));
}

// ETag of a stock version: big-endian, minimal length (at least one byte).
std::string EtagFor(uint64_t version) {
  std::string etag;
  do {
    etag.insert(etag.begin(), static_cast<char>(version & 0xff));
    version >>= 8;
  } while (version != 0 && etag.size() < kMaxEtagBytes);
  return etag;
}

// IotBff's telemetry answer is the MQTT acknowledgement {"q": seq, "f": flags}; CoAP's body is the flags.
std::optional<std::string> FlagsFromAck(std::string_view ack) {
  try {
    msgpack::object_handle oh = msgpack::unpack(ack.data(), ack.size());
    const msgpack::object& o = oh.get();
    if (o.type != msgpack::type::MAP) return std::nullopt;
    for (uint32_t i = 0; i < o.via.map.size; ++i) {
      const msgpack::object_kv& kv = o.via.map.ptr[i];
      if (kv.key.type == msgpack::type::STR && kv.key.via.str.size == 1 && kv.key.via.str.ptr[0] == 'f') {
        msgpack::sbuffer out;
        msgpack::pack(out, kv.val);
        return std::string(out.data(), out.size());
      }
    }
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

void SetCode(coap_pdu_t* response, int code) {
  coap_pdu_set_code(response, static_cast<coap_pdu_code_t>(COAP_RESPONSE_CODE(code)));
}

void AddUintOption(coap_pdu_t* response, coap_option_num_t number, uint32_t value) {
  uint8_t buf[4];
  coap_add_option(response, number, coap_encode_var_safe(buf, sizeof(buf), value), buf);
}

void AddOption(coap_pdu_t* response, coap_option_num_t number, const std::string& value) {
  coap_add_option(response, number, value.size(), reinterpret_cast<const uint8_t*>(value.data()));
}

void AddBody(coap_pdu_t* response, const std::string& body) {
  if (!body.empty()) coap_add_data(response, body.size(), reinterpret_cast<const uint8_t*>(body.data()));
}

// Options go before the body: libcoap refuses options once a PDU holds data.
void RespondError(coap_pdu_t* response, StatusCode code, const std::string& message, int retry_after_s = 0,
                  size_t size1 = 0) {
  int coap_code = CoapCodeFor(code);
  SetCode(response, coap_code);
  if (retry_after_s > 0) AddUintOption(response, COAP_OPTION_MAXAGE, static_cast<uint32_t>(retry_after_s));
  if (size1 > 0) AddUintOption(response, COAP_OPTION_SIZE1, static_cast<uint32_t>(size1));
  AddBody(response, EncodeError(coap_code, message, retry_after_s));
}

// "host:port", "[v6]:port"; port 0 = any free port.
StatusOr<coap_address_t> ResolveAddress(const std::string& text) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon + 1 == text.size()) return InvalidArgument("expected host:port, got " + text);
  std::string host = text.substr(0, colon);
  std::string port = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &res);
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

// coap_endpoint_str() reads "127.0.0.1:5683 UDP" or "[::]:5684 DTLS", with the port the socket got.
uint16_t BoundPort(const coap_endpoint_t* ep) {
  std::string s = coap_endpoint_str(ep);
  s = s.substr(0, s.find(' '));
  size_t colon = s.rfind(':');
  if (colon == std::string::npos) return 0;
  try {
    return static_cast<uint16_t>(std::stoul(s.substr(colon + 1)));
  } catch (const std::exception&) {
    return 0;
  }
}

void LogFromLibcoap(coap_log_t level, const char* message) {
  std::string m = message ? message : "";
  while (!m.empty() && (m.back() == '\n' || m.back() == '\r')) m.pop_back();
  if (level <= LOG_ERR) {
    log::Warn("coap: libcoap error", {{"detail", m}});
  } else {
    log::Info("coap: libcoap", {{"detail", m}});
  }
}

class CoapServerImpl : public CoapServer {
 public:
  CoapServerImpl(CoapServerOptions options, IotBff& iot, PskLookup psk)
      : options_(std::move(options)), iot_(iot), psk_(std::move(psk)), mailbox_(std::make_shared<Mailbox>()) {}
  ~CoapServerImpl() override { Stop(); }

  Status Init();
  uint16_t coap_port() const override { return coap_port_; }
  uint16_t coaps_port() const override { return coaps_port_; }
  size_t observers() const override { return observer_count_.load(); }
  void Stop() override;

 private:
  // A request whose answer IotBff has not given yet; libcoap holds it as an async entry.
  struct Pending {
    std::shared_ptr<Call> call;
    coap_session_t* session = nullptr;  // referenced until the entry goes
    std::string token;
    std::string shelf;  // GET /s/{shelf}: the shelf
    coap_mid_t mid = 0;
    bool confirmable = false;
    SteadyClock::time_point received;
    bool ready = false;
  };
  // A shelf with an observable resource.
  struct Shelf {
    coap_resource_t* resource = nullptr;
    bool known = false;  // flags below were seen
    std::string encoded;
    uint64_t version = 0;
    uint64_t iot_observer = 0;  // 0 = not observed in IotBff
    std::set<std::pair<coap_session_t*, std::string>> observers;  // (session, token)
  };
  struct Target {
    Route route;
    std::string id;  // shelf or sku
  };

  static void OnTelemetry(coap_resource_t* r, coap_session_t* s, const coap_pdu_t* req, const coap_string_t*,
                          coap_pdu_t* resp) {
    auto* self = static_cast<CoapServerImpl*>(coap_resource_get_userdata(r));
    self->OnRequest(Target{Route::kTelemetry, {}}, r, s, req, resp);
    self->CountAnswer(kMetricT, resp);
  }
  static void OnGet(coap_resource_t* r, coap_session_t* s, const coap_pdu_t* req, const coap_string_t*,
                    coap_pdu_t* resp) {
    auto* self = static_cast<CoapServerImpl*>(coap_resource_get_userdata(r));
    std::vector<std::string> path = OptionValues(req, COAP_OPTION_URI_PATH);
    if (path.size() == 2 && path[0] == kShelfSegment) {
      self->OnRequest(Target{Route::kShelf, path[1]}, r, s, req, resp);
      return self->CountAnswer(kMetricS, resp);
    }
    if (path.size() == 2 && path[0] == kSkuSegment) {
      self->OnRequest(Target{Route::kSku, path[1]}, r, s, req, resp);
      return self->CountAnswer(kMetricP, resp);
    }
    RespondError(resp, StatusCode::kNotFound, "no such resource");
    self->CountAnswer(kMetricOther, resp);
  }
  static void OnNotAllowed(coap_resource_t* r, coap_session_t*, const coap_pdu_t*, const coap_string_t*, coap_pdu_t* resp) {
    SetCode(resp, 405);
    AddBody(resp, EncodeError(405, "method not allowed"));
    static_cast<CoapServerImpl*>(coap_resource_get_userdata(r))->CountAnswer(kMetricOther, resp);
  }
  static const coap_bin_const_t* OnPskIdentity(coap_bin_const_t* identity, coap_session_t* session, void* arg) {
    // Lets the event handler find the server for a handshake that then fails.
    if (coap_session_get_app_data(session) == nullptr) coap_session_set_app_data(session, arg);
    return static_cast<CoapServerImpl*>(arg)->LookupPsk(identity);
  }
  static int OnEvent(coap_session_t* session, const coap_event_t event) {
    if (event == COAP_EVENT_DTLS_ERROR) {
      auto* self = static_cast<CoapServerImpl*>(coap_session_get_app_data(session));
      if (self != nullptr && self->dtls_failures_ != nullptr) self->dtls_failures_->Inc();
    }
    if (event == COAP_EVENT_SERVER_SESSION_DEL) {
      if (auto* self = static_cast<CoapServerImpl*>(coap_session_get_app_data(session))) self->ForgetSession(session);
    }
    return 0;
  }

  void Run();
  void DrainMailbox();
  // After a handler: counts the response it built (a notification, a request's answer, or nothing yet
  // when the answer comes later).
  void CountAnswer(MetricResource resource, const coap_pdu_t* response);
  void OnRequest(const Target& target, coap_resource_t* resource, coap_session_t* session, const coap_pdu_t* request,
                 coap_pdu_t* response);
  IotCaller CallerFor(coap_session_t* session, const coap_pdu_t* request, bool device_in_query) const;
  void StartCall(const Target& target, const IotCaller& caller, const coap_pdu_t* request, std::shared_ptr<Call> call);
  bool Defer(const Target& target, coap_session_t* session, const coap_pdu_t* request, coap_pdu_t* response,
             std::shared_ptr<Call> call, bool ready);
  void Respond(const Target& target, coap_resource_t* resource, coap_session_t* session, const coap_pdu_t* request,
               const IotReply& reply, coap_pdu_t* response);
  void RespondFlags(const coap_pdu_t* request, const std::string& encoded, uint64_t version, coap_pdu_t* response);
  bool RespondFromShelf(const std::string& shelf_id, const coap_pdu_t* request, coap_pdu_t* response);
  bool IsTracked(const std::string& shelf_id, coap_session_t* session, const std::string& token) const;
  void Track(const std::string& shelf_id, coap_session_t* session, const std::string& token);
  void Untrack(const std::string& shelf_id, coap_session_t* session, const std::string& token);
  void ForgetSession(coap_session_t* session);
  void UnobserveIfIdle(Shelf& shelf);
  Shelf* EnsureShelfResource(const std::string& shelf_id);
  void RememberFlags(const std::string& shelf_id, const std::string& encoded, uint64_t version);
  const coap_bin_const_t* LookupPsk(const coap_bin_const_t* identity);

  CoapServerOptions options_;
  IotBff& iot_;
  PskLookup psk_;
  std::shared_ptr<Mailbox> mailbox_;
  coap_context_t* ctx_ = nullptr;
  coap_resource_t* unknown_resource_ = nullptr;
  uint16_t coap_port_ = 0;
  uint16_t coaps_port_ = 0;
  int epoll_fd_ = -1;
  int coap_fd_ = -1;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::mutex stop_mu_;
  bool stopped_ = false;
  std::atomic<size_t> observer_count_{0};
  // Metrics (loop thread only, except the DTLS counter, which libcoap also calls on it).
  CounterFamily* requests_ = nullptr;
  std::array<std::array<Counter*, kCodeSlots>, kMetricResources> request_counters_{};  // resolved on first use
  Counter* notifications_ = nullptr;
  Counter* dtls_failures_ = nullptr;
  bool notifying_ = false;  // the handler answered a notification

  // Loop-thread state.
  std::unordered_map<uint64_t, Pending> pending_;
  uint64_t next_call_id_ = 1;
  std::map<std::string, Shelf> shelves_;
  bool rerun_ = false;  // a handler triggered an async entry: run libcoap again before sleeping
  std::string psk_key_;  // the key returned to libcoap, which copies it before we overwrite it
  coap_bin_const_t psk_out_{0, nullptr};
};

Status CoapServerImpl::Init() {
  static std::once_flag once;
  std::call_once(once, [] {
    coap_startup();
    coap_set_log_handler(LogFromLibcoap);
    // Debug output would show identities and packet bytes; warnings are enough to operate.
    coap_set_log_level(LOG_WARNING);
  });
  if (mailbox_->fd() < 0) return Internal(std::string("coap: eventfd: ") + std::strerror(errno));
  if (options_.coap_address.empty() && options_.coaps_address.empty()) {
    return InvalidArgument("coap: neither coap_address nor coaps_address is set");
  }
  ctx_ = coap_new_context(nullptr);
  if (ctx_ == nullptr) return Internal("coap: cannot create a libcoap context");
  coap_context_set_max_idle_sessions(ctx_, kMaxIdleSessions);
  coap_context_set_session_timeout(ctx_, static_cast<unsigned>(options_.session_idle_s));
  coap_register_event_handler(ctx_, OnEvent);
  if (options_.metrics != nullptr) {
    requests_ = &options_.metrics->Counters("bffd_coap_requests_total",
                                           "CoAP requests answered, by resource (t, s, p, other) and response code.",
                                           {"resource", "code"});
    notifications_ = &options_.metrics->Counters("bffd_coap_notifications_total",
                                                "Observe notifications sent to devices observing a shelf.")
                          .With({});
    dtls_failures_ = &options_.metrics->Counters("bffd_coap_dtls_handshake_failures_total",
                                                "DTLS handshakes that failed (libcoap's DTLS error event): unknown or "
                                                "revoked identity, broken handshake.")
                          .With({});
  }

  if (!options_.coap_address.empty()) {
    StatusOr<coap_address_t> addr = ResolveAddress(options_.coap_address);
    if (!addr.ok()) return addr.status();
    coap_endpoint_t* ep = coap_new_endpoint(ctx_, &*addr, COAP_PROTO_UDP);
    if (ep == nullptr) return Unavailable("coap: cannot listen on " + options_.coap_address);
    coap_port_ = BoundPort(ep);
  }
  if (!options_.coaps_address.empty()) {
    if (!coap_dtls_is_supported()) return Unavailable("coap: this libcoap has no DTLS support");
    coap_dtls_spsk_t spsk;
    std::memset(&spsk, 0, sizeof(spsk));
    spsk.version = COAP_DTLS_SPSK_SETUP_VERSION;
    spsk.validate_id_call_back = OnPskIdentity;
    spsk.id_call_back_arg = this;
    if (!coap_context_set_psk2(ctx_, &spsk)) return Internal("coap: cannot set up DTLS-PSK");
    StatusOr<coap_address_t> addr = ResolveAddress(options_.coaps_address);
    if (!addr.ok()) return addr.status();
    coap_endpoint_t* ep = coap_new_endpoint(ctx_, &*addr, COAP_PROTO_DTLS);
    if (ep == nullptr) return Unavailable("coap: cannot listen on " + options_.coaps_address + " (DTLS)");
    coaps_port_ = BoundPort(ep);
  }
  // libcoap opens its sockets without a buffer option; a thousand devices waking together overflowed
  // the kernel's default (datagrams dropped, then retransmitted seconds later).
  for (uint16_t port : {coap_port_, coaps_port_}) {
    if (port == 0) continue;
    int got = SetUdpReceiveBuffer(port, options_.receive_buffer_bytes);
    if (got < options_.receive_buffer_bytes) {
      log::Warn("coap: receive buffer smaller than asked", {{"port", port}, {"asked", options_.receive_buffer_bytes}, {"got", got}});
    }
  }

  coap_resource_t* t = coap_resource_init(coap_make_str_const(kTelemetryPath), 0);
  coap_register_request_handler(t, COAP_REQUEST_POST, OnTelemetry);
  coap_resource_set_userdata(t, this);
  coap_add_resource(ctx_, t);
  // /s/{shelf} and /p/{sku}: the path varies, so they start on the unknown resource.
  unknown_resource_ = coap_resource_unknown_init2(OnNotAllowed, 0);
  coap_register_request_handler(unknown_resource_, COAP_REQUEST_GET, OnGet);
  coap_register_request_handler(unknown_resource_, COAP_REQUEST_POST, OnNotAllowed);
  coap_register_request_handler(unknown_resource_, COAP_REQUEST_DELETE, OnNotAllowed);
  coap_resource_set_userdata(unknown_resource_, this);
  coap_add_resource(ctx_, unknown_resource_);

  coap_fd_ = coap_context_get_coap_fd(ctx_);
  if (coap_fd_ >= 0) {
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) return Internal(std::string("coap: epoll_create1: ") + std::strerror(errno));
    for (int fd : {coap_fd_, mailbox_->fd()}) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.fd = fd;
      if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
        return Internal(std::string("coap: epoll_ctl: ") + std::strerror(errno));
      }
    }
  }
  thread_ = std::thread([this] { Run(); });
  log::Info("coap: listening", {{"coap_port", coap_port_}, {"coaps_port", coaps_port_}});
  return Status::Ok();
}

void CoapServerImpl::Run() {
  while (!stop_.load()) {
    DrainMailbox();
    if (coap_io_process(ctx_, COAP_IO_NO_WAIT) < 0) log::Warn("coap: libcoap i/o failed");
    if (stop_.load()) break;
    if (rerun_) {
      rerun_ = false;
      continue;
    }
    if (epoll_fd_ >= 0) {
      epoll_event events[kMaxEpollEvents];
      // Readiness is level-triggered: whatever is not handled here wakes the next wait again.
      if (epoll_wait(epoll_fd_, events, kMaxEpollEvents, -1) < 0 && errno != EINTR) {
        log::Error("coap: epoll_wait failed", {{"error", std::strerror(errno)}});
        break;
      }
    } else {
      // libcoap built without epoll: its own select() also watches the mailbox.
      fd_set readfds;
      FD_ZERO(&readfds);
      FD_SET(mailbox_->fd(), &readfds);
      coap_io_process_with_fds(ctx_, COAP_IO_WAIT, mailbox_->fd() + 1, &readfds, nullptr, nullptr);
    }
  }
}

void CoapServerImpl::CountAnswer(MetricResource resource, const coap_pdu_t* response) {
  if (std::exchange(notifying_, false)) {
    if (notifications_ != nullptr) notifications_->Inc();
    return;
  }
  if (requests_ == nullptr) return;
  // Code 0 on a NON: the answer is deferred and counted when libcoap hands the request back.
  auto code = static_cast<uint8_t>(coap_pdu_get_code(response));
  if (code < kFirstCountedCode || static_cast<size_t>(code - kFirstCountedCode) >= kCodeSlots) return;
  Counter*& counter = request_counters_[resource][static_cast<size_t>(code - kFirstCountedCode)];
  if (counter == nullptr) {
    char text[8];
    std::snprintf(text, sizeof(text), "%u.%02u", static_cast<unsigned>(code >> 5), static_cast<unsigned>(code & 0x1f));
    counter = &requests_->With({kMetricResourceNames[resource], std::string_view(text)});
  }
  counter->Inc();
}

void CoapServerImpl::DrainMailbox() {
  for (MailItem& item : mailbox_->Take()) {
    if (auto* call = std::get_if<std::shared_ptr<Call>>(&item)) {
      auto it = pending_.find((*call)->id);
      if (it == pending_.end()) continue;
      Pending& p = it->second;
      p.ready = true;
      if (!p.shelf.empty()) {
        // Created before libcoap re-dispatches the request, so that a registration finds an observable
        // resource instead of the unknown one.
        std::lock_guard<std::mutex> lock(p.call->mu);
        if (p.call->reply && p.call->reply->code == StatusCode::kOk) EnsureShelfResource(p.shelf);
      }
      coap_async_t* async = coap_find_async(p.session, BinOf(p.token));
      if (async == nullptr) {
        // The exchange is gone (session closed); nobody is waiting for this answer.
        coap_session_release(p.session);
        pending_.erase(it);
        continue;
      }
      coap_async_trigger(async);
    } else {
      FlagsUpdate& update = std::get<FlagsUpdate>(item);
      auto it = shelves_.find(update.shelf);
      if (it == shelves_.end() || it->second.observers.empty()) continue;
      Shelf& shelf = it->second;
      if (shelf.known && update.version < shelf.version) continue;
      shelf.known = true;
      shelf.encoded = std::move(update.encoded);
      shelf.version = update.version;
      coap_resource_notify_observers(shelf.resource, nullptr);
    }
  }
}

IotCaller CoapServerImpl::CallerFor(coap_session_t* session, const coap_pdu_t* request, bool device_in_query) const {
  IotCaller caller;
  // A device's own trace context, when it sends one; otherwise the BFF starts a trace.
  std::vector<std::string> traceparent = OptionValues(request, kCoapTraceparentOption);
  if (!traceparent.empty()) caller.trace = TraceContext::AcceptOrCreate(traceparent.front());
  if (coap_session_get_proto(session) == COAP_PROTO_DTLS) {
    // The handshake proved the identity with its key; query parameters cannot override it.
    caller.transport = IotTransport::kCoaps;
    if (const coap_bin_const_t* id = coap_session_get_psk_identity(session)) {
      caller.device_id.assign(reinterpret_cast<const char*>(id->s), id->length);
    }
    if (const coap_bin_const_t* key = coap_session_get_psk_key(session)) {
      caller.api_key.assign(reinterpret_cast<const char*>(key->s), key->length);
    }
    return caller;
  }
  caller.transport = IotTransport::kCoap;
  caller.api_key = QueryValue(request, "k");
  if (device_in_query) caller.device_id = QueryValue(request, "d");
  return caller;
}

void CoapServerImpl::OnRequest(const Target& target, coap_resource_t* resource, coap_session_t* session,
                               const coap_pdu_t* request, coap_pdu_t* response) {
  std::string token = TokenOf(request);

  // 1. libcoap hands back a held request once its answer is in (see DrainMailbox).
  if (coap_async_t* async = coap_find_async(session, BinOf(token))) {
    auto id = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(coap_async_get_app_data(async)));
    auto it = pending_.find(id);
    if (it != pending_.end() && it->second.ready) {
      Pending p = std::move(it->second);
      pending_.erase(it);
      std::optional<IotReply> reply;
      {
        std::lock_guard<std::mutex> lock(p.call->mu);
        reply = std::move(p.call->reply);
      }
      if (p.confirmable && SteadyClock::now() - p.received < kPiggybackWindow) {
        coap_pdu_set_type(response, COAP_MESSAGE_ACK);
        coap_pdu_set_mid(response, p.mid);
      }
      if (reply) {
        Respond(target, resource, session, request, *reply, response);
      } else {
        RespondError(response, StatusCode::kInternal, "no answer");
      }
      coap_session_release(p.session);
      return;
    }
    // Still waiting: only a notification replays a held request (libcoap answers retransmissions itself).
    if (target.route == Route::kShelf && RespondFromShelf(target.id, request, response)) {
      notifying_ = true;
      return;
    }
  }

  // 2. A notification: libcoap replays an established observer's request after a change.
  if (target.route == Route::kShelf && ObserveAction(request) == 0u && IsTracked(target.id, session, token) &&
      RespondFromShelf(target.id, request, response)) {
    notifying_ = true;
    return;
  }

  // 3. A new request.
  if (target.route == Route::kTelemetry) {
    size_t len = 0;
    const uint8_t* data = nullptr;
    coap_get_data(request, &len, &data);
    coap_block_t block;
    bool blockwise = coap_get_block(request, COAP_OPTION_BLOCK1, &block) != 0 && (block.num != 0 || block.m != 0);
    if (len > options_.max_payload_bytes || blockwise) {
      // Readings are small and sent whole; block-wise transfer is refused instead of buffered.
      // Size1 tells the client the largest payload taken (RFC 7959 section 4).
      RespondError(response, StatusCode::kPayloadTooLarge,
                   "payload larger than " + std::to_string(options_.max_payload_bytes) + " bytes or split into blocks",
                   0, options_.max_payload_bytes);
      return;
    }
  }
  if (pending_.size() >= kMaxPendingRequests) {
    RespondError(response, StatusCode::kUnavailable, "busy, retry later", kBusyRetryAfterS);
    return;
  }

  auto call = std::make_shared<Call>();
  call->id = next_call_id_++;
  StartCall(target, CallerFor(session, request, target.route != Route::kTelemetry), request, call);
  std::optional<IotReply> now;
  {
    std::lock_guard<std::mutex> lock(call->mu);
    if (call->reply) {
      now = std::move(call->reply);
    } else {
      call->deferred = true;
    }
  }
  if (!now) {
    if (!Defer(target, session, request, response, std::move(call), false)) {
      RespondError(response, StatusCode::kUnavailable, "busy, retry later", kBusyRetryAfterS);
    }
    return;
  }
  // The unknown resource cannot hold an observation: a registration for a shelf without a resource
  // waits until libcoap re-dispatches it to the resource created for it.
  if (target.route == Route::kShelf && now->code == StatusCode::kOk && ObserveAction(request) == 0u &&
      resource == unknown_resource_ && EnsureShelfResource(target.id) != nullptr) {
    {
      std::lock_guard<std::mutex> lock(call->mu);
      call->reply = std::move(now);
    }
    if (Defer(target, session, request, response, call, true)) return;
    std::lock_guard<std::mutex> lock(call->mu);
    now = std::move(call->reply);
  }
  Respond(target, resource, session, request, *now, response);
}

void CoapServerImpl::StartCall(const Target& target, const IotCaller& caller, const coap_pdu_t* request,
                               std::shared_ptr<Call> call) {
  auto done = [call, mailbox = mailbox_](IotReply reply) {
    std::unique_lock<std::mutex> lock(call->mu);
    call->reply = std::move(reply);
    if (!call->deferred) return;  // the handler is still running and takes it from here
    lock.unlock();
    mailbox->Push(call);
  };
  switch (target.route) {
    case Route::kTelemetry: {
      size_t len = 0;
      const uint8_t* data = nullptr;
      coap_get_data(request, &len, &data);
      std::string payload = len > 0 ? std::string(reinterpret_cast<const char*>(data), len) : std::string();
      iot_.HandleTelemetry(caller, std::move(payload), std::move(done));
      break;
    }
    case Route::kShelf:
      iot_.GetShelfFlags(caller, target.id, std::move(done));
      break;
    case Route::kSku:
      iot_.GetSkuInStock(caller, target.id, std::move(done));
      break;
  }
}

bool CoapServerImpl::Defer(const Target& target, coap_session_t* session, const coap_pdu_t* request,
                           coap_pdu_t* response, std::shared_ptr<Call> call, bool ready) {
  coap_async_t* async = coap_register_async(session, request, 0);
  if (async == nullptr) return false;
  uint64_t id = call->id;
  coap_async_set_app_data(async, reinterpret_cast<void*>(static_cast<uintptr_t>(id)));
  Pending p;
  p.call = std::move(call);
  p.session = coap_session_reference(session);
  p.token = TokenOf(request);
  if (target.route == Route::kShelf) p.shelf = target.id;
  p.mid = coap_pdu_get_mid(request);
  p.confirmable = coap_pdu_get_type(request) == COAP_MESSAGE_CON;
  p.received = SteadyClock::now();
  p.ready = ready;
  pending_.emplace(id, std::move(p));
  // An empty NON response is dropped by libcoap: no empty ACK now, so the answer can still ride on it.
  coap_pdu_set_type(response, COAP_MESSAGE_NON);
  if (ready) {
    coap_async_trigger(async);
    rerun_ = true;
  }
  return true;
}

void CoapServerImpl::Respond(const Target& target, coap_resource_t* resource, coap_session_t* session,
                             const coap_pdu_t* request, const IotReply& reply, coap_pdu_t* response) {
  if (reply.code != StatusCode::kOk) {
    int code = CoapCodeFor(reply.code);
    SetCode(response, code);
    if ((code == 429 || code == 503) && reply.retry_after_s > 0) {
      AddUintOption(response, COAP_OPTION_MAXAGE, static_cast<uint32_t>(reply.retry_after_s));
    }
    AddBody(response, reply.payload);
    return;
  }
  switch (target.route) {
    case Route::kTelemetry: {
      SetCode(response, 204);
      if (reply.flags_changed) {
        std::optional<std::string> flags = FlagsFromAck(reply.payload);
        if (flags) AddBody(response, *flags);
      }
      return;
    }
    case Route::kSku:
      SetCode(response, 205);
      AddBody(response, reply.payload);
      return;
    case Route::kShelf: {
      RememberFlags(target.id, reply.payload, reply.version);
      RespondFlags(request, reply.payload, reply.version, response);
      std::optional<uint32_t> observe = ObserveAction(request);
      if (observe == 0u && resource != unknown_resource_) Track(target.id, session, TokenOf(request));
      if (observe == 1u) Untrack(target.id, session, TokenOf(request));
      return;
    }
  }
}

void CoapServerImpl::RespondFlags(const coap_pdu_t* request, const std::string& encoded, uint64_t version,
                                  coap_pdu_t* response) {
  std::string etag = EtagFor(version);
  bool valid = false;
  for (const std::string& e : OptionValues(request, COAP_OPTION_ETAG)) valid = valid || e == etag;
  SetCode(response, valid ? 203 : 205);
  AddOption(response, COAP_OPTION_ETAG, etag);
  AddUintOption(response, COAP_OPTION_MAXAGE, static_cast<uint32_t>(options_.max_age_s));
  if (!valid) AddBody(response, encoded);
}

bool CoapServerImpl::RespondFromShelf(const std::string& shelf_id, const coap_pdu_t* request, coap_pdu_t* response) {
  auto it = shelves_.find(shelf_id);
  if (it == shelves_.end() || !it->second.known) return false;
  RespondFlags(request, it->second.encoded, it->second.version, response);
  return true;
}

void CoapServerImpl::RememberFlags(const std::string& shelf_id, const std::string& encoded, uint64_t version) {
  Shelf* shelf = EnsureShelfResource(shelf_id);
  if (shelf == nullptr || (shelf->known && version < shelf->version)) return;
  shelf->known = true;
  shelf->encoded = encoded;
  shelf->version = version;
}

CoapServerImpl::Shelf* CoapServerImpl::EnsureShelfResource(const std::string& shelf_id) {
  auto it = shelves_.find(shelf_id);
  if (it != shelves_.end()) return &it->second;
  if (shelves_.size() >= kMaxShelfResources || !IsValidId(shelf_id)) return nullptr;
  std::string path = std::string(kShelfSegment) + "/" + shelf_id;
  coap_str_const_t* uri = coap_new_str_const(reinterpret_cast<const uint8_t*>(path.data()), path.size());
  if (uri == nullptr) return nullptr;
  coap_resource_t* r = coap_resource_init(uri, COAP_RESOURCE_FLAGS_RELEASE_URI | COAP_RESOURCE_FLAGS_NOTIFY_NON);
  if (r == nullptr) return nullptr;
  coap_register_request_handler(r, COAP_REQUEST_GET, OnGet);
  coap_resource_set_get_observable(r, 1);
  coap_resource_set_userdata(r, this);
  coap_add_resource(ctx_, r);
  Shelf& shelf = shelves_[shelf_id];
  shelf.resource = r;
  return &shelf;
}

bool CoapServerImpl::IsTracked(const std::string& shelf_id, coap_session_t* session, const std::string& token) const {
  auto it = shelves_.find(shelf_id);
  return it != shelves_.end() && it->second.observers.count({session, token}) > 0;
}

void CoapServerImpl::Track(const std::string& shelf_id, coap_session_t* session, const std::string& token) {
  Shelf* shelf = EnsureShelfResource(shelf_id);
  if (shelf == nullptr || !shelf->observers.insert({session, token}).second) return;
  observer_count_.fetch_add(1);
  // Lets the session-deleted event find us again.
  coap_session_set_app_data(session, this);
  if (shelf->iot_observer == 0) {
    shelf->iot_observer = iot_.Observe(shelf_id, [shelf_id, mailbox = mailbox_](const ShelfFlags& flags) {
      mailbox->Push(FlagsUpdate{shelf_id, flags.encoded, flags.version});
    });
  }
}

void CoapServerImpl::Untrack(const std::string& shelf_id, coap_session_t* session, const std::string& token) {
  auto it = shelves_.find(shelf_id);
  if (it == shelves_.end() || it->second.observers.erase({session, token}) == 0) return;
  observer_count_.fetch_sub(1);
  UnobserveIfIdle(it->second);
}

void CoapServerImpl::ForgetSession(coap_session_t* session) {
  for (auto& [id, shelf] : shelves_) {
    size_t before = shelf.observers.size();
    for (auto it = shelf.observers.begin(); it != shelf.observers.end();) {
      it = it->first == session ? shelf.observers.erase(it) : std::next(it);
    }
    observer_count_.fetch_sub(before - shelf.observers.size());
    UnobserveIfIdle(shelf);
  }
}

void CoapServerImpl::UnobserveIfIdle(Shelf& shelf) {
  if (!shelf.observers.empty() || shelf.iot_observer == 0) return;
  iot_.Unobserve(shelf.iot_observer);
  shelf.iot_observer = 0;
}

const coap_bin_const_t* CoapServerImpl::LookupPsk(const coap_bin_const_t* identity) {
  std::fill(psk_key_.begin(), psk_key_.end(), '\0');
  psk_key_.clear();
  if (identity == nullptr || !psk_) return nullptr;
  std::string device(reinterpret_cast<const char*>(identity->s), identity->length);
  if (!IsValidId(device)) return nullptr;
  psk_key_ = psk_(device);
  if (psk_key_.empty()) {
    log::Info("coap: DTLS identity refused", {{"device", device}});
    return nullptr;
  }
  psk_out_ = coap_bin_const_t{psk_key_.size(), reinterpret_cast<const uint8_t*>(psk_key_.data())};
  return &psk_out_;
}

void CoapServerImpl::Stop() {
  std::lock_guard<std::mutex> lock(stop_mu_);
  if (stopped_) return;
  stopped_ = true;
  stop_.store(true);
  mailbox_->Wake();
  if (thread_.joinable()) thread_.join();
  // The loop is gone: what follows owns libcoap alone.
  for (auto& [id, shelf] : shelves_) {
    if (shelf.iot_observer != 0) iot_.Unobserve(shelf.iot_observer);
    shelf.iot_observer = 0;
    shelf.observers.clear();
  }
  observer_count_.store(0);
  for (auto& [id, p] : pending_) coap_session_release(p.session);
  pending_.clear();
  if (ctx_ != nullptr) coap_free_context(ctx_);
  ctx_ = nullptr;
  shelves_.clear();
  if (epoll_fd_ >= 0) close(epoll_fd_);
  epoll_fd_ = -1;
  mailbox_->Close();
  std::fill(psk_key_.begin(), psk_key_.end(), '\0');
}

}  // namespace

StatusOr<std::unique_ptr<CoapServer>> CoapServer::Start(CoapServerOptions options, IotBff& iot, PskLookup psk) {
  auto server = std::make_unique<CoapServerImpl>(std::move(options), iot, std::move(psk));
  if (Status s = server->Init(); !s.ok()) return s;
  return std::unique_ptr<CoapServer>(std::move(server));
}

}  // namespace bff
