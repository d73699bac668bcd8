// Load client of bench/iot.sh: many shelf sensors over raw MQTT 3.1.1 and raw CoAP (UDP), key provisioning
// in bulk, CoAP observers held open, and free ports for the servers the bench starts.
//
// Both protocols are spoken directly over non-blocking sockets on one epoll thread, so the client stays
// cheap next to the servers it measures (the machine has two cores). Every mode prints one JSON line with
// its figures on stdout; progress goes to stderr.
//
//   bench_iot_load free-port [--udp] [--pair]
//   bench_iot_load provision --data DIR --devices N --rate R --burst B --out KEYS
//   bench_iot_load mqtt --broker H:P --keys KEYS --devices N --window W --warmup S --duration S
//                       [--label NAME] [-- SUBSCRIBER ARGS...]
//   bench_iot_load mqtt-echo --broker H:P --password PW
//   bench_iot_load coap --server H:P --keys KEYS --devices N --outstanding 32 --warmup S --duration S
//   bench_iot_load coap-mirror --from H:P --to H:P --keys KEYS --devices N
//   bench_iot_load observe --server H:P --keys KEYS --observers N --sockets S [--window W]
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include <CLI/CLI.hpp>
#include <msgpack.hpp>

#include "protocols/msgpack/iot_codec.h"
#include "security/api_key_store.h"

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

// Shelves as the seeded inventory names them: shelf-SS-NN, SS 01..50, NN 01..20.
constexpr int kStores = 50;
constexpr int kShelvesPerStore = 20;
constexpr int kShelves = kStores * kShelvesPerStore;
constexpr size_t kProvisionBatch = 1000;  // keys per AddMany transaction

constexpr int kMaxEpollEvents = 256;
constexpr int kReadChunk = 64 * 1024;
constexpr size_t kMaxConnecting = 64;      // MQTT handshakes at once: a connect storm only fills the backlog
constexpr auto kConnectTimeout = std::chrono::seconds(60);
constexpr auto kProbeInterval = std::chrono::milliseconds(100);
constexpr auto kProbeTimeout = std::chrono::seconds(10);
constexpr int kMqttKeepAliveS = 0;         // runs are short; no PINGREQ traffic in the figures
constexpr size_t kSlotsPerReading = 4;
constexpr auto kResendCheckInterval = std::chrono::milliseconds(100);

constexpr auto kCoapAckTimeout = std::chrono::seconds(2);  // RFC 7252 ACK_TIMEOUT
constexpr int kCoapMaxRetransmit = 4;                      // RFC 7252 MAX_RETRANSMIT
constexpr size_t kCoapBatch = 64;                          // datagrams per recvmmsg/sendmmsg
constexpr size_t kMaxDatagram = 1500;
constexpr size_t kCoapTokenBytes = 8;
constexpr int kCoapSockets = 8;  // source ports of the throughput run, as if from several gateways

// CoAP (RFC 7252) numbers used here.
constexpr uint8_t kCoapCon = 0, kCoapAck = 2, kCoapRst = 3;
constexpr uint8_t kCoapGet = 1, kCoapPut = 3;
constexpr unsigned kOptObserve = 6, kOptUriPath = 11, kOptUriQuery = 15;

// MQTT 3.1.1 packet types (high nibble of the first byte).
constexpr uint8_t kConnect = 1, kConnack = 2, kPublish = 3, kPuback = 4, kSubscribe = 8, kSuback = 9,
                  kDisconnect = 14;

std::atomic<bool> g_stop{false};

void OnSignal(int) { g_stop.store(true); }

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// CPU seconds used so far (user + system) by this process, or by its waited-for children (the subscriber):
// shows whether the load side was near a core's limit.
double CpuSeconds(int who = RUSAGE_SELF) {
  rusage ru{};
  getrusage(who, &ru);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return s(ru.ru_utime) + s(ru.ru_stime);
}

void Die(const std::string& message) {
  std::fprintf(stderr, "bench_iot_load: %s\n", message.c_str());
  std::exit(1);
}

void DieErrno(const std::string& what) { Die(what + ": " + std::strerror(errno)); }

void RaiseFileLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

void SetNonBlocking(int fd) {
  int flags = fcntl(fd, F_GETFL, 0);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) DieErrno("fcntl");
}

sockaddr_in ParseAddress(const std::string& host_port) {
  size_t colon = host_port.rfind(':');
  if (colon == std::string::npos) Die("address must be HOST:PORT: " + host_port);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(std::stoi(host_port.substr(colon + 1))));
  if (inet_pton(AF_INET, host_port.substr(0, colon).c_str(), &a.sin_addr) != 1) Die("not an IPv4 address: " + host_port);
  return a;
}

struct DeviceKey {
  std::string device;
  std::string shelf;
  std::string key;
};

std::vector<DeviceKey> LoadKeys(const std::string& path, size_t wanted) {
  std::ifstream in(path);
  if (!in) Die("cannot read " + path);
  std::vector<DeviceKey> keys;
  DeviceKey k;
  while (in >> k.device >> k.shelf >> k.key) keys.push_back(k);
  if (keys.size() < wanted) Die(path + " holds " + std::to_string(keys.size()) + " keys, " + std::to_string(wanted) + " wanted");
  return keys;
}

// Latency samples of the measured window, in microseconds.
struct Latencies {
  std::vector<float> us;
  void Add(Clock::duration d) { us.push_back(static_cast<float>(std::chrono::duration<double, std::micro>(d).count())); }
  double PercentileMs(double p) {
    if (us.empty()) return 0;
    size_t i = std::min(us.size() - 1, static_cast<size_t>(p / 100.0 * static_cast<double>(us.size())));
    std::nth_element(us.begin(), us.begin() + static_cast<std::ptrdiff_t>(i), us.end());
    return us[i] / 1000.0;
  }
};

// The warm-up, measured and drain phases of a run.
struct Phases {
  TimePoint start, measure_from, measure_to;
  Phases(double warmup_s, double duration_s) {
    start = Clock::now();
    measure_from = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(warmup_s));
    measure_to = measure_from + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(duration_s));
  }
  bool measuring(TimePoint t) const { return t >= measure_from && t < measure_to; }
  bool loading(TimePoint t) const { return t < measure_to; }
};

// ---------------------------------------------------------------------------------------------------------
// free-port

bool PortFree(int type, uint16_t port) {
  int fd = socket(AF_INET, type, 0);
  if (fd < 0) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  close(fd);
  return ok;
}

uint16_t KernelPickedPort(int type) {
  int fd = socket(AF_INET, type, 0);
  if (fd < 0) DieErrno("socket");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) DieErrno("bind");
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

// --pair: coap-server listens on UDP and TCP at the port, and on port+1 for DTLS and TLS.
int FreePort(bool udp, bool pair) {
  constexpr int kAttempts = 100;
  for (int i = 0; i < kAttempts; ++i) {
    uint16_t p = KernelPickedPort(udp ? SOCK_DGRAM : SOCK_STREAM);
    if (!pair) {
      std::printf("%u\n", p);
      return 0;
    }
    if (p < 65535 && PortFree(SOCK_DGRAM, p) && PortFree(SOCK_STREAM, p) && PortFree(SOCK_DGRAM, p + 1) &&
        PortFree(SOCK_STREAM, p + 1)) {
      std::printf("%u\n", p);
      return 0;
    }
  }
  Die("no free port pair found");
  return 1;
}

// ---------------------------------------------------------------------------------------------------------
// provision

std::string ShelfName(int index) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "shelf-%02d-%02d", index / kShelvesPerStore + 1, index % kShelvesPerStore + 1);
  return buf;
}

// Device i watches shelf i mod 1000: sensor-SS-NN for the first thousand, sensor-SS-NN-K after that.
std::string DeviceName(int index) {
  std::string shelf = ShelfName(index % kShelves);
  std::string name = "sensor-" + shelf.substr(6);
  if (index >= kShelves) name += "-" + std::to_string(index / kShelves);
  return name;
}

int Provision(const std::string& data_dir, int devices, double rate, double burst, const std::string& out_path) {
  TimePoint t0 = Clock::now();
  auto store = bff::ApiKeyStore::Open(data_dir);
  if (!store.ok()) Die("key store: " + store.status().message());
  std::string contents;
  for (int first = 0; first < devices; first += static_cast<int>(kProvisionBatch)) {
    std::vector<bff::ApiKeyRecord> records;
    for (int i = first; i < std::min(devices, first + static_cast<int>(kProvisionBatch)); ++i) {
      bff::ApiKeyRecord r;
      r.device_id = DeviceName(i);
      r.shelves = {ShelfName(i % kShelves)};
      r.rate_per_s = rate;
      r.burst = burst;
      records.push_back(std::move(r));
    }
    auto keys = (*store)->AddMany(records);
    if (!keys.ok()) Die("AddMany: " + keys.status().message());
    for (size_t i = 0; i < records.size(); ++i) {
      contents += records[i].device_id + " " + records[i].shelves[0] + " " + (*keys)[i] + "\n";
    }
  }
  if (bff::Status s = bff::WriteSecretFile(out_path, contents); !s.ok()) Die(s.message());
  std::printf("{\"mode\":\"provision\",\"devices\":%d,\"seconds\":%.2f,\"store_count\":%zu}\n", devices,
              Seconds(Clock::now() - t0), (*store)->Count());
  return 0;
}

// ---------------------------------------------------------------------------------------------------------
// MQTT 3.1.1, just what a shelf sensor needs: CONNECT, SUBSCRIBE, PUBLISH/PUBACK at QoS 1.

void PutU16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xff));
}

void PutMqttString(std::string& out, std::string_view s) {
  PutU16(out, static_cast<uint16_t>(s.size()));
  out.append(s);
}

void PutPacket(std::string& out, uint8_t first_byte, std::string_view body) {
  out.push_back(static_cast<char>(first_byte));
  size_t len = body.size();
  do {
    uint8_t b = len % 128;
    len /= 128;
    if (len > 0) b |= 0x80;
    out.push_back(static_cast<char>(b));
  } while (len > 0);
  out.append(body);
}

// One whole packet at the front of `in`: its first byte, body offset and body length; false if incomplete.
bool NextPacket(std::string_view in, uint8_t* first, size_t* body_at, size_t* body_len) {
  if (in.size() < 2) return false;
  size_t len = 0, mult = 1, i = 1;
  for (;; ++i) {
    if (i >= in.size() || i > 4) return false;
    auto b = static_cast<uint8_t>(in[i]);
    len += (b & 0x7f) * mult;
    mult *= 128;
    if ((b & 0x80) == 0) break;
  }
  if (in.size() < i + 1 + len) return false;
  *first = static_cast<uint8_t>(in[0]);
  *body_at = i + 1;
  *body_len = len;
  return true;
}

uint16_t GetU16(std::string_view s, size_t at) {
  return static_cast<uint16_t>((static_cast<uint8_t>(s[at]) << 8) | static_cast<uint8_t>(s[at + 1]));
}

struct Reading {
  uint64_t seq;
  TimePoint sent;     // first sent: latencies count from here
  TimePoint last_tx;  // last sent: resends count from here
};

struct MqttDevice {
  enum class State { kIdle, kConnecting, kConnack, kSuback, kReady, kClosed };
  const DeviceKey* key = nullptr;
  int fd = -1;
  State state = State::kIdle;
  std::string in, out;
  bool watching_out = false;
  uint16_t next_pid = 1;
  uint64_t next_seq = 0;
  std::deque<Reading> outstanding;
  std::optional<uint64_t> version;  // last stock version seen in an ack: sent back as "v"
  bool probe = false;
};

struct MqttStats {
  uint64_t published = 0, acknowledged = 0, measured = 0, refused = 0, unknown_acks = 0, resent = 0;
  std::map<int, uint64_t> errors;  // "e" of error maps
};

class MqttLoad {
 public:
  MqttLoad(sockaddr_in broker, std::vector<DeviceKey> keys, int devices, int window, std::vector<std::string> receipts_cmd,
           std::string label, double resend_after_s)
      : broker_(broker),
        keys_(std::move(keys)),
        window_(window),
        receipts_cmd_(std::move(receipts_cmd)),
        label_(std::move(label)),
        resend_after_(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(resend_after_s))) {
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_ < 0) DieErrno("epoll_create1");
    // Seqs keep increasing across runs against the same bffd: a lower one would be refused.
    uint64_t seq_base = static_cast<uint64_t>(std::time(nullptr)) * 1000000u;
    devices_.resize(static_cast<size_t>(devices) + (ceiling() ? 1 : 0));
    for (size_t i = 0; i < devices_.size(); ++i) {
      devices_[i].key = &keys_[i];
      devices_[i].next_seq = seq_base;
      by_name_[keys_[i].device] = i;
    }
    if (ceiling()) devices_.back().probe = true;
  }

  int Run(double warmup_s, double duration_s, double drain_s) {
    if (ceiling()) StartReceipts();
    ConnectAll();
    if (ceiling()) WaitForSubscriber();
    Phases phases(warmup_s, duration_s);
    phases_ = &phases;
    for (auto& d : devices_) Fill(d, phases.start);
    for (auto& d : devices_) Flush(d);
    TimePoint next_resend_check = phases.start;
    while (!g_stop.load()) {
      TimePoint now = Clock::now();
      if (!phases.loading(now)) {
        if (Outstanding() == 0 || now - phases.measure_to > std::chrono::duration<double>(drain_s)) break;
      }
      Poll(20);
      if (now >= next_resend_check) {
        ResendOverdue(now);
        next_resend_check = now + kResendCheckInterval;
      }
    }
    double drained_s = Seconds(Clock::now() - phases.measure_to);
    for (auto& d : devices_) Disconnect(d);
    StopReceipts();
    uint64_t lost = stats_.published - stats_.acknowledged;
    std::string errors;
    for (auto& [code, n] : stats_.errors) errors += (errors.empty() ? "" : ",") + ("\"" + std::to_string(code) + "\":" + std::to_string(n));
    std::printf(
        "{\"mode\":\"mqtt\",\"target\":\"%s\",\"devices\":%zu,\"window\":%d,\"rate\":%.1f,\"published\":%lu,"
        "\"acknowledged\":%lu,\"lost\":%lu,\"resent\":%lu,\"refused\":%lu,\"unknown_acks\":%lu,\"errors\":{%s},\"p50_ms\":%.2f,"
        "\"p99_ms\":%.2f,\"drain_s\":%.2f,\"bytes_per_reading\":%zu,\"client_cpu_s\":%.2f,\"subscriber_cpu_s\":%.2f}\n",
        label_.c_str(), devices_.size() - (ceiling() ? 1 : 0), window_,
        static_cast<double>(stats_.measured) / duration_s, static_cast<unsigned long>(stats_.published),
        static_cast<unsigned long>(stats_.acknowledged), static_cast<unsigned long>(lost),
        static_cast<unsigned long>(stats_.resent), static_cast<unsigned long>(stats_.refused), static_cast<unsigned long>(stats_.unknown_acks), errors.c_str(),
        latencies_.PercentileMs(50), latencies_.PercentileMs(99), drained_s, reading_bytes_, CpuSeconds(),
        CpuSeconds(RUSAGE_CHILDREN));
    return 0;
  }

 private:
  bool ceiling() const { return !receipts_cmd_.empty(); }

  size_t Outstanding() const {
    size_t n = 0;
    for (auto& d : devices_) n += d.probe ? 0 : d.outstanding.size();
    return n;
  }

  // The ceiling: a subscriber's output (one topic per line) stands in for bffd's acknowledgements.
  void StartReceipts() {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) DieErrno("pipe2");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    std::vector<char*> argv;
    for (auto& a : receipts_cmd_) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawnp(&receipts_pid_, argv[0], &actions, nullptr, argv.data(), environ) != 0) DieErrno("spawn " + receipts_cmd_[0]);
    posix_spawn_file_actions_destroy(&actions);
    close(fds[1]);
    receipts_fd_ = fds[0];
    SetNonBlocking(receipts_fd_);
    Watch(receipts_fd_, EPOLLIN, -1);
  }

  void StopReceipts() {
    if (receipts_pid_ <= 0) return;
    kill(receipts_pid_, SIGTERM);
    waitpid(receipts_pid_, nullptr, 0);
    receipts_pid_ = 0;
  }

  // Until the subscriber is subscribed, nothing published reaches it: a probe device publishes until the
  // subscriber prints one of its readings.
  void WaitForSubscriber() {
    MqttDevice& probe = devices_.back();
    TimePoint deadline = Clock::now() + kProbeTimeout;
    while (!subscriber_ready_) {
      if (Clock::now() > deadline || g_stop.load()) Die("the subscriber printed nothing within " + std::to_string(kProbeTimeout.count()) + " s");
      Publish(probe, Clock::now());
      Flush(probe);
      TimePoint until = Clock::now() + kProbeInterval;
      while (!subscriber_ready_ && Clock::now() < until) Poll(10);
    }
  }

  void Watch(int fd, uint32_t events, int64_t index) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = static_cast<uint64_t>(index);
    if (epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev) != 0) DieErrno("epoll_ctl add");
  }

  void Rewatch(MqttDevice& d, size_t index, bool out) {
    epoll_event ev{};
    ev.events = EPOLLIN | (out ? EPOLLOUT : 0u);
    ev.data.u64 = index;
    if (epoll_ctl(epoll_, EPOLL_CTL_MOD, d.fd, &ev) != 0) DieErrno("epoll_ctl mod");
    d.watching_out = out;
  }

  void ConnectAll() {
    TimePoint deadline = Clock::now() + kConnectTimeout;
    size_t next = 0, ready = 0;
    for (;;) {
      size_t connecting = 0;
      ready = 0;
      for (auto& d : devices_) {
        if (d.state == MqttDevice::State::kReady) ++ready;
        if (d.state == MqttDevice::State::kConnecting || d.state == MqttDevice::State::kConnack ||
            d.state == MqttDevice::State::kSuback) {
          ++connecting;
        }
      }
      if (ready == devices_.size()) break;
      while (connecting < kMaxConnecting && next < devices_.size()) {
        StartConnect(next++);
        ++connecting;
      }
      if (Clock::now() > deadline || g_stop.load()) {
        Die("only " + std::to_string(ready) + " of " + std::to_string(devices_.size()) + " devices connected");
      }
      Poll(10);
    }
    std::fprintf(stderr, "bench_iot_load: %zu MQTT devices connected and subscribed\n", ready);
  }

  void StartConnect(size_t index) {
    MqttDevice& d = devices_[index];
    d.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (d.fd < 0) DieErrno("socket");
    // A device sends a reading and waits: Nagle would hold the next one for the ACK of the last.
    int one = 1;
    setsockopt(d.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(d.fd, reinterpret_cast<const sockaddr*>(&broker_), sizeof(broker_)) != 0 && errno != EINPROGRESS) {
      DieErrno("connect to the broker");
    }
    d.state = MqttDevice::State::kConnecting;
    Watch(d.fd, EPOLLIN | EPOLLOUT, static_cast<int64_t>(index));
    d.watching_out = true;
  }

  void SendConnect(MqttDevice& d) {
    std::string body;
    PutMqttString(body, "MQTT");
    body.push_back(4);                        // protocol level 3.1.1
    body.push_back(static_cast<char>(0xC2));  // username, password, clean session
    PutU16(body, kMqttKeepAliveS);
    PutMqttString(body, d.key->device + "-bench");
    PutMqttString(body, d.key->device);
    PutMqttString(body, d.key->key);
    PutPacket(d.out, kConnect << 4, body);
    d.state = MqttDevice::State::kConnack;
  }

  void SendSubscribe(MqttDevice& d) {
    std::string body;
    PutU16(body, d.next_pid++);
    for (const char* leaf : {"/ack", "/error"}) {
      PutMqttString(body, "iot/v1/" + d.key->device + leaf);
      body.push_back(1);
    }
    PutPacket(d.out, (kSubscribe << 4) | 0x2, body);
    d.state = MqttDevice::State::kSuback;
  }

  // Sends a new reading, or again the one with `resend_seq` (same seq, as the contract asks of devices).
  void Publish(MqttDevice& d, TimePoint now, std::optional<uint64_t> resend_seq = std::nullopt) {
    bff::Telemetry t;
    t.device_id = d.key->device;
    t.shelf_id = d.key->shelf;
    t.seq = resend_seq ? *resend_seq : d.next_seq++;
    t.ts = static_cast<uint64_t>(std::time(nullptr));
    // The same quantities every time: after the first reading a shelf's stock no longer changes, as on a
    // quiet shop floor.
    for (uint32_t slot = 0; slot < kSlotsPerReading; ++slot) t.readings.emplace_back(slot, 5 + slot);
    t.battery_pct = 87;
    t.temp_decicelsius = 215;
    t.version = d.version;
    t.api_key = d.key->key;
    std::string payload = bff::EncodeTelemetry(t, true);
    reading_bytes_ = payload.size();
    std::string body;
    PutMqttString(body, "iot/v1/" + d.key->device + "/telemetry");
    uint16_t pid = d.next_pid++;
    if (d.next_pid == 0) d.next_pid = 1;
    PutU16(body, pid);
    body += payload;
    PutPacket(d.out, (kPublish << 4) | 0x2, body);
    if (resend_seq) {
      ++stats_.resent;
      return;
    }
    d.outstanding.push_back({t.seq, now, now});
    if (!d.probe) ++stats_.published;
  }

  // A device keeps a reading until it sees it acknowledged: silence (bffd does not acknowledge what
  // inventory did not accept in time) means sending it again, oldest first.
  void ResendOverdue(TimePoint now) {
    if (ceiling() || resend_after_ <= Clock::duration::zero()) return;
    for (size_t i = 0; i < devices_.size(); ++i) {
      MqttDevice& d = devices_[i];
      bool any = false;
      for (Reading& r : d.outstanding) {
        if (now - r.last_tx < resend_after_) continue;
        r.last_tx = now;
        Publish(d, now, r.seq);
        any = true;
      }
      if (any) Flush(d);
    }
  }

  void Fill(MqttDevice& d, TimePoint now) {
    if (d.probe || d.state != MqttDevice::State::kReady || phases_ == nullptr || !phases_->loading(now)) return;
    while (d.outstanding.size() < static_cast<size_t>(window_)) Publish(d, now);
  }

  void Acknowledged(MqttDevice& d, std::deque<Reading>::iterator it, TimePoint now) {
    ++stats_.acknowledged;
    if (phases_ != nullptr && phases_->measuring(now)) {
      ++stats_.measured;
      latencies_.Add(now - it->sent);
    }
    d.outstanding.erase(it);
  }

  void OnAck(MqttDevice& d, std::string_view payload, TimePoint now) {
    std::optional<uint64_t> seq;
    try {
      msgpack::object_handle oh = msgpack::unpack(payload.data(), payload.size());
      const msgpack::object& o = oh.get();
      if (o.type == msgpack::type::MAP) {
        for (uint32_t i = 0; i < o.via.map.size; ++i) {
          const auto& kv = o.via.map.ptr[i];
          if (kv.key.type != msgpack::type::STR) continue;
          std::string_view k(kv.key.via.str.ptr, kv.key.via.str.size);
          if (k == "q" && kv.val.type == msgpack::type::POSITIVE_INTEGER) seq = kv.val.via.u64;
          if (k == "f" && kv.val.type == msgpack::type::ARRAY && kv.val.via.array.size > 0 &&
              kv.val.via.array.ptr[0].type == msgpack::type::POSITIVE_INTEGER) {
            d.version = kv.val.via.array.ptr[0].via.u64;
          }
        }
      }
    } catch (const std::exception&) {
    }
    auto it = seq ? std::find_if(d.outstanding.begin(), d.outstanding.end(), [&](const Reading& r) { return r.seq == *seq; })
                  : d.outstanding.end();
    if (it == d.outstanding.end()) {
      ++stats_.unknown_acks;  // a duplicate, or a reading refused earlier
      return;
    }
    Acknowledged(d, it, now);
  }

  void OnError(MqttDevice& d, std::string_view payload) {
    int code = 0;
    std::optional<uint64_t> seq;
    try {
      msgpack::object_handle oh = msgpack::unpack(payload.data(), payload.size());
      const msgpack::object& o = oh.get();
      for (uint32_t i = 0; o.type == msgpack::type::MAP && i < o.via.map.size; ++i) {
        const auto& kv = o.via.map.ptr[i];
        if (kv.key.type != msgpack::type::STR || kv.val.type != msgpack::type::POSITIVE_INTEGER) continue;
        std::string_view k(kv.key.via.str.ptr, kv.key.via.str.size);
        if (k == "e") code = static_cast<int>(kv.val.via.u64);
        if (k == "q") seq = kv.val.via.u64;
      }
    } catch (const std::exception&) {
    }
    ++stats_.errors[code];
    // The refused reading leaves the window (it is counted as not acknowledged); an error map without
    // "q" is taken to refer to the oldest one.
    auto it = seq ? std::find_if(d.outstanding.begin(), d.outstanding.end(), [&](const Reading& r) { return r.seq == *seq; })
                  : d.outstanding.begin();
    if (it != d.outstanding.end()) {
      d.outstanding.erase(it);
      ++stats_.refused;
    }
  }

  void OnReceipt(std::string_view topic, TimePoint now) {
    constexpr std::string_view kPrefix = "iot/v1/", kSuffix = "/telemetry";
    if (topic.size() <= kPrefix.size() + kSuffix.size() || topic.substr(0, kPrefix.size()) != kPrefix) return;
    std::string device(topic.substr(kPrefix.size(), topic.size() - kPrefix.size() - kSuffix.size()));
    auto found = by_name_.find(device);
    if (found == by_name_.end()) return;
    MqttDevice& d = devices_[found->second];
    if (d.probe) {
      subscriber_ready_ = true;
      return;
    }
    // QoS 1 keeps each publisher's messages in order: the oldest outstanding reading is the one printed.
    if (d.outstanding.empty()) {
      ++stats_.unknown_acks;
      return;
    }
    Acknowledged(d, d.outstanding.begin(), now);
    Fill(d, now);
    dirty_.push_back(found->second);
  }

  void ReadReceipts(TimePoint now) {
    char buf[kReadChunk];
    for (;;) {
      ssize_t n = read(receipts_fd_, buf, sizeof(buf));
      if (n == 0) Die("the subscriber (" + receipts_cmd_[0] + ") exited");
      if (n < 0) break;
      receipts_in_.append(buf, static_cast<size_t>(n));
    }
    size_t start = 0;
    for (size_t nl; (nl = receipts_in_.find('\n', start)) != std::string::npos; start = nl + 1) {
      OnReceipt(std::string_view(receipts_in_).substr(start, nl - start), now);
    }
    receipts_in_.erase(0, start);
  }

  void HandlePackets(MqttDevice& d, TimePoint now) {
    std::string_view in(d.in);
    size_t consumed = 0;
    uint8_t first;
    size_t at, len;
    while (NextPacket(in.substr(consumed), &first, &at, &len)) {
      std::string_view body = in.substr(consumed + at, len);
      consumed += at + len;
      switch (first >> 4) {
        case kConnack:
          if (body.size() < 2 || body[1] != 0) Die("broker refused " + d.key->device + " (CONNACK " + std::to_string(body.size() > 1 ? body[1] : -1) + ")");
          SendSubscribe(d);
          break;
        case kSuback:
          for (size_t i = 2; i < body.size(); ++i) {
            if (static_cast<uint8_t>(body[i]) == 0x80) Die("broker refused the subscription of " + d.key->device);
          }
          d.state = MqttDevice::State::kReady;
          Fill(d, now);
          break;
        case kPuback:
          // The broker took the reading; what counts is bffd's ack (or, for the ceiling, the subscriber's line).
          break;
        case kPublish: {
          if (body.size() < 2) break;
          size_t tlen = GetU16(body, 0);
          if (body.size() < 2 + tlen) break;
          std::string_view topic = body.substr(2, tlen);
          size_t pos = 2 + tlen;
          int qos = (first >> 1) & 0x3;
          if (qos > 0) {
            if (body.size() < pos + 2) break;
            std::string ack;
            PutU16(ack, GetU16(body, pos));
            PutPacket(d.out, kPuback << 4, ack);
            pos += 2;
          }
          std::string_view payload = body.substr(pos);
          if (topic.size() >= 4 && topic.substr(topic.size() - 4) == "/ack") {
            OnAck(d, payload, now);
          } else {
            OnError(d, payload);
          }
          Fill(d, now);
          break;
        }
        default:
          break;
      }
    }
    d.in.erase(0, consumed);
  }

  void Flush(MqttDevice& d) {
    size_t index = static_cast<size_t>(&d - devices_.data());
    while (!d.out.empty()) {
      ssize_t n = send(d.fd, d.out.data(), d.out.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        if (errno == EINTR) continue;
        Die("send to the broker failed for " + d.key->device + ": " + std::strerror(errno));
      }
      d.out.erase(0, static_cast<size_t>(n));
    }
    bool want_out = !d.out.empty();
    if (want_out != d.watching_out) Rewatch(d, index, want_out);
  }

  void OnEvent(size_t index, uint32_t events, TimePoint now) {
    MqttDevice& d = devices_[index];
    if (d.state == MqttDevice::State::kConnecting && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
      int err = 0;
      socklen_t len = sizeof(err);
      getsockopt(d.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) Die("connect to the broker failed: " + std::string(std::strerror(err)));
      SendConnect(d);
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
      char buf[kReadChunk];
      for (;;) {
        ssize_t n = recv(d.fd, buf, sizeof(buf), 0);
        if (n > 0) {
          d.in.append(buf, static_cast<size_t>(n));
          if (static_cast<size_t>(n) < sizeof(buf)) break;
          continue;
        }
        if (n == 0) Die("the broker closed the connection of " + d.key->device);
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        if (errno == EINTR) continue;
        Die("recv from the broker failed: " + std::string(std::strerror(errno)));
      }
      HandlePackets(d, now);
    }
    Flush(d);
  }

  void Poll(int timeout_ms) {
    epoll_event events[kMaxEpollEvents];
    int n = epoll_wait(epoll_, events, kMaxEpollEvents, timeout_ms);
    if (n < 0 && errno != EINTR) DieErrno("epoll_wait");
    TimePoint now = Clock::now();
    for (int i = 0; i < n; ++i) {
      auto index = static_cast<int64_t>(events[i].data.u64);
      if (index < 0) {
        ReadReceipts(now);
      } else {
        OnEvent(static_cast<size_t>(index), events[i].events, now);
      }
    }
    // Readings published because of a receipt go out once per wake, in as few writes as possible.
    std::sort(dirty_.begin(), dirty_.end());
    dirty_.erase(std::unique(dirty_.begin(), dirty_.end()), dirty_.end());
    for (size_t i : dirty_) Flush(devices_[i]);
    dirty_.clear();
  }

  void Disconnect(MqttDevice& d) {
    if (d.fd < 0) return;
    std::string bye;
    PutPacket(bye, kDisconnect << 4, "");
    [[maybe_unused]] ssize_t n = send(d.fd, bye.data(), bye.size(), MSG_NOSIGNAL);
    close(d.fd);
    d.fd = -1;
    d.state = MqttDevice::State::kClosed;
  }

  sockaddr_in broker_;
  std::vector<DeviceKey> keys_;
  int window_;
  std::vector<std::string> receipts_cmd_;
  std::string label_;
  Clock::duration resend_after_;
  int epoll_ = -1;
  std::vector<MqttDevice> devices_;
  std::unordered_map<std::string, size_t> by_name_;
  const Phases* phases_ = nullptr;
  MqttStats stats_;
  Latencies latencies_;
  size_t reading_bytes_ = 0;
  pid_t receipts_pid_ = 0;
  int receipts_fd_ = -1;
  std::string receipts_in_;
  bool subscriber_ready_ = false;
  std::vector<size_t> dirty_;
};

// The round-trip ceiling: a BFF that does nothing. Logged in as bffd, it answers every telemetry message
// at once with {"q": seq} on the device's ack topic, so the broker carries the whole exchange bffd's does.
int MqttEcho(const sockaddr_in& broker, const std::string& user, const std::string& password) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) DieErrno("socket");
  if (connect(fd, reinterpret_cast<const sockaddr*>(&broker), sizeof(broker)) != 0) DieErrno("connect to the broker");
  std::string out, in, body;
  PutMqttString(body, "MQTT");
  body.push_back(4);
  body.push_back(static_cast<char>(0xC2));
  PutU16(body, kMqttKeepAliveS);
  PutMqttString(body, "bench-echo");
  PutMqttString(body, user);
  PutMqttString(body, password);
  PutPacket(out, kConnect << 4, body);
  body.clear();
  PutU16(body, 1);
  PutMqttString(body, "iot/v1/+/telemetry");
  body.push_back(1);
  PutPacket(out, (kSubscribe << 4) | 0x2, body);
  SetNonBlocking(fd);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) DieErrno("epoll");
  uint16_t next_pid = 2;
  uint64_t answered = 0;
  bool subscribed = false, watching_out = false;
  char buf[kReadChunk];
  while (!g_stop.load()) {
    while (!out.empty()) {
      ssize_t n = send(fd, out.data(), out.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        if (errno == EINTR) continue;
        DieErrno("send to the broker");
      }
      out.erase(0, static_cast<size_t>(n));
    }
    if (out.empty() == watching_out) {
      watching_out = !out.empty();
      ev.events = EPOLLIN | (watching_out ? EPOLLOUT : 0u);
      epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
    }
    epoll_event got[1];
    if (epoll_wait(ep, got, 1, 100) <= 0) continue;
    for (;;) {
      ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n > 0) {
        in.append(buf, static_cast<size_t>(n));
        if (static_cast<size_t>(n) < sizeof(buf)) break;
        continue;
      }
      if (n == 0) Die("the broker closed the echo connection");
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno != EINTR) DieErrno("recv from the broker");
    }
    std::string_view view(in);
    size_t consumed = 0, at, len;
    uint8_t first;
    while (NextPacket(view.substr(consumed), &first, &at, &len)) {
      std::string_view p = view.substr(consumed + at, len);
      consumed += at + len;
      uint8_t type = first >> 4;
      if (type == kConnack && (p.size() < 2 || p[1] != 0)) Die("the broker refused the echo login");
      if (type == kSuback && !subscribed) {
        subscribed = true;
        std::printf("{\"mode\":\"mqtt-echo\",\"subscribed\":true}\n");
      }
      if (type != kPublish || p.size() < 2) continue;
      size_t tlen = GetU16(p, 0);
      if (p.size() < 2 + tlen + 2) continue;
      std::string_view topic = p.substr(2, tlen);
      std::string ack;
      PutU16(ack, GetU16(p, 2 + tlen));
      PutPacket(out, kPuback << 4, ack);
      std::string_view payload = p.substr(2 + tlen + 2);
      std::optional<uint64_t> seq;
      try {
        msgpack::object_handle oh = msgpack::unpack(payload.data(), payload.size());
        const msgpack::object& o = oh.get();
        for (uint32_t i = 0; o.type == msgpack::type::MAP && i < o.via.map.size; ++i) {
          const auto& kv = o.via.map.ptr[i];
          if (kv.key.type == msgpack::type::STR && std::string_view(kv.key.via.str.ptr, kv.key.via.str.size) == "q" &&
              kv.val.type == msgpack::type::POSITIVE_INTEGER) {
            seq = kv.val.via.u64;
          }
        }
      } catch (const std::exception&) {
      }
      constexpr std::string_view kSuffix = "/telemetry";
      if (!seq || topic.size() <= kSuffix.size()) continue;
      std::string reply;
      PutMqttString(reply, std::string(topic.substr(0, topic.size() - kSuffix.size())) + "/ack");
      PutU16(reply, next_pid++);
      if (next_pid == 0) next_pid = 1;
      reply += bff::EncodeAck(*seq, std::nullopt);
      PutPacket(out, (kPublish << 4) | 0x2, reply);
      ++answered;
    }
    in.erase(0, consumed);
  }
  close(fd);
  std::fprintf(stderr, "bench_iot_load: echo answered %lu readings\n", static_cast<unsigned long>(answered));
  return 0;
}

// ---------------------------------------------------------------------------------------------------------
// CoAP (RFC 7252) over UDP: CON requests with 8-byte tokens, piggybacked or separate responses.

void AppendOption(std::string& out, unsigned& last, unsigned number, std::string_view value) {
  auto nibble = [](size_t v, std::string& ext) -> uint8_t {
    if (v < 13) return static_cast<uint8_t>(v);
    if (v < 269) {
      ext.push_back(static_cast<char>(v - 13));
      return 13;
    }
    ext.push_back(static_cast<char>((v - 269) >> 8));
    ext.push_back(static_cast<char>((v - 269) & 0xff));
    return 14;
  };
  std::string delta_ext, len_ext;
  uint8_t d = nibble(number - last, delta_ext);
  uint8_t l = nibble(value.size(), len_ext);
  out.push_back(static_cast<char>((d << 4) | l));
  out += delta_ext;
  out += len_ext;
  out.append(value);
  last = number;
}

// Options and payload of GET/PUT /s/{shelf}[?d=..&k=..]; the header and token are put in front per send.
std::string ShelfRequestTail(const DeviceKey& k, bool with_query, bool observe, std::string_view payload = {}) {
  std::string out;
  unsigned last = 0;
  if (observe) AppendOption(out, last, kOptObserve, "");
  AppendOption(out, last, kOptUriPath, "s");
  AppendOption(out, last, kOptUriPath, k.shelf);
  if (with_query) {
    AppendOption(out, last, kOptUriQuery, "d=" + k.device);
    AppendOption(out, last, kOptUriQuery, "k=" + k.key);
  }
  if (!payload.empty()) {
    out.push_back(static_cast<char>(0xff));
    out.append(payload);
  }
  return out;
}

void PutCoapHeader(std::string& out, uint8_t type, uint8_t code, uint16_t mid, uint64_t token) {
  out.push_back(static_cast<char>(0x40 | (type << 4) | kCoapTokenBytes));
  out.push_back(static_cast<char>(code));
  PutU16(out, mid);
  for (size_t i = 0; i < kCoapTokenBytes; ++i) out.push_back(static_cast<char>(token >> (8 * (kCoapTokenBytes - 1 - i))));
}

struct CoapMessage {
  uint8_t type = 0, code = 0;
  uint16_t mid = 0;
  uint64_t token = 0;
  size_t token_len = 0;
  bool observe = false;
  std::string_view payload;
};

bool ParseCoap(std::string_view m, CoapMessage* out) {
  if (m.size() < 4 || (static_cast<uint8_t>(m[0]) >> 6) != 1) return false;
  out->type = (static_cast<uint8_t>(m[0]) >> 4) & 0x3;
  out->token_len = static_cast<uint8_t>(m[0]) & 0xf;
  out->code = static_cast<uint8_t>(m[1]);
  out->mid = GetU16(m, 2);
  if (out->token_len > 8 || m.size() < 4 + out->token_len) return false;
  out->token = 0;
  for (size_t i = 0; i < out->token_len; ++i) out->token = (out->token << 8) | static_cast<uint8_t>(m[4 + i]);
  size_t pos = 4 + out->token_len;
  unsigned number = 0;
  out->observe = false;
  out->payload = {};
  while (pos < m.size()) {
    auto b = static_cast<uint8_t>(m[pos++]);
    if (b == 0xff) {
      out->payload = m.substr(pos);
      break;
    }
    auto ext = [&](unsigned v) -> std::optional<unsigned> {
      if (v < 13) return v;
      if (v == 13 && pos < m.size()) return 13u + static_cast<uint8_t>(m[pos++]);
      if (v == 14 && pos + 1 < m.size()) {
        unsigned x = 269u + GetU16(m, pos);
        pos += 2;
        return x;
      }
      return std::nullopt;
    };
    auto delta = ext(b >> 4);
    auto len = ext(b & 0xf);
    if (!delta || !len || pos + *len > m.size()) return false;
    number += *delta;
    if (number == kOptObserve) out->observe = true;
    pos += *len;
  }
  return true;
}

std::string CoapCodeName(uint8_t code) { return std::to_string(code >> 5) + "." + (code % 32 < 10 ? "0" : "") + std::to_string(code % 32); }

int UdpSocket(const sockaddr_in& server) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) DieErrno("socket");
  if (connect(fd, reinterpret_cast<const sockaddr*>(&server), sizeof(server)) != 0) DieErrno("connect (udp)");
  return fd;
}

struct CoapRequest {
  int sock = 0;
  uint16_t mid = 0;
  size_t device = 0;
  TimePoint sent, last_tx;
  int retransmits = 0;
  std::string bytes;
};

// Sends and receives datagrams in batches: one recvmmsg/sendmmsg per wake and socket.
class CoapSockets {
 public:
  explicit CoapSockets(const sockaddr_in& server, int count) {
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_ < 0) DieErrno("epoll_create1");
    for (int i = 0; i < count; ++i) {
      int fd = UdpSocket(server);
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u32 = static_cast<uint32_t>(i);
      if (epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev) != 0) DieErrno("epoll_ctl");
      fds_.push_back(fd);
      next_mid_.push_back(static_cast<uint16_t>(std::rand()));
      queued_.emplace_back();
    }
  }
  ~CoapSockets() {
    for (int fd : fds_) close(fd);
    close(epoll_);
  }
  size_t size() const { return fds_.size(); }
  uint16_t NextMid(int sock) { return next_mid_[static_cast<size_t>(sock)]++; }
  void Queue(int sock, std::string bytes) { queued_[static_cast<size_t>(sock)].push_back(std::move(bytes)); }
  uint64_t datagrams_sent() const { return sent_; }

  void FlushAll() {
    for (size_t s = 0; s < fds_.size(); ++s) {
      auto& q = queued_[s];
      size_t at = 0;
      while (at < q.size()) {
        mmsghdr msgs[kCoapBatch];
        iovec iov[kCoapBatch];
        size_t n = std::min(kCoapBatch, q.size() - at);
        for (size_t i = 0; i < n; ++i) {
          iov[i] = {q[at + i].data(), q[at + i].size()};
          msgs[i] = {};
          msgs[i].msg_hdr.msg_iov = &iov[i];
          msgs[i].msg_hdr.msg_iovlen = 1;
        }
        int r = sendmmsg(fds_[s], msgs, static_cast<unsigned>(n), 0);
        if (r < 0) {
          if (errno == EINTR) continue;
          // ENOBUFS/EAGAIN: those datagrams are lost like on a real network; retransmission covers them.
          break;
        }
        at += static_cast<size_t>(r);
        sent_ += static_cast<uint64_t>(r);
      }
      q.clear();
    }
  }

  // Waits up to timeout_ms; calls on_datagram(sock, bytes) for everything received.
  template <typename F>
  void Poll(int timeout_ms, F&& on_datagram) {
    epoll_event events[kMaxEpollEvents];
    int n = epoll_wait(epoll_, events, kMaxEpollEvents, timeout_ms);
    if (n < 0 && errno != EINTR) DieErrno("epoll_wait");
    static char bufs[kCoapBatch][kMaxDatagram];
    for (int e = 0; e < n; ++e) {
      int s = static_cast<int>(events[e].data.u32);
      for (;;) {
        mmsghdr msgs[kCoapBatch];
        iovec iov[kCoapBatch];
        for (size_t i = 0; i < kCoapBatch; ++i) {
          iov[i] = {bufs[i], kMaxDatagram};
          msgs[i] = {};
          msgs[i].msg_hdr.msg_iov = &iov[i];
          msgs[i].msg_hdr.msg_iovlen = 1;
        }
        int r = recvmmsg(fds_[static_cast<size_t>(s)], msgs, kCoapBatch, MSG_DONTWAIT, nullptr);
        if (r <= 0) break;
        for (int i = 0; i < r; ++i) on_datagram(s, std::string_view(bufs[i], msgs[i].msg_len));
        if (static_cast<size_t>(r) < kCoapBatch) break;
      }
    }
  }

 private:
  int epoll_ = -1;
  std::vector<int> fds_;
  std::vector<uint16_t> next_mid_;
  std::vector<std::vector<std::string>> queued_;
  uint64_t sent_ = 0;
};

std::string EmptyAck(uint16_t mid) {
  std::string out;
  out.push_back(static_cast<char>(0x40 | (kCoapAck << 4)));
  out.push_back(0);
  PutU16(out, mid);
  return out;
}

int CoapLoad(const sockaddr_in& server, const std::vector<DeviceKey>& keys, size_t devices, size_t first_device,
             int outstanding, int sockets, double warmup_s, double duration_s) {
  CoapSockets socks(server, sockets);
  std::vector<std::string> tails;
  for (size_t i = 0; i < devices; ++i) tails.push_back(ShelfRequestTail(keys[first_device + i], true, false));
  std::unordered_map<uint64_t, CoapRequest> inflight;
  uint64_t next_token = (static_cast<uint64_t>(std::time(nullptr)) << 24);
  size_t next_device = 0;
  uint64_t completed = 0, measured = 0, retransmits = 0, failed = 0, empty_acks = 0, separate = 0, response_bytes = 0;
  std::map<std::string, uint64_t> codes;
  Latencies lat;
  Phases phases(warmup_s, duration_s);
  size_t request_bytes = 0;

  auto send_new = [&](TimePoint now) {
    uint64_t token = next_token++;
    CoapRequest r;
    r.sock = static_cast<int>(token % socks.size());
    r.mid = socks.NextMid(r.sock);
    r.device = next_device;
    next_device = (next_device + 1) % devices;
    r.sent = r.last_tx = now;
    PutCoapHeader(r.bytes, kCoapCon, kCoapGet, r.mid, token);
    r.bytes += tails[r.device];
    request_bytes = r.bytes.size();
    socks.Queue(r.sock, r.bytes);
    inflight.emplace(token, std::move(r));
  };
  auto finish = [&](std::unordered_map<uint64_t, CoapRequest>::iterator it, uint8_t code, size_t bytes, TimePoint now) {
    ++completed;
    ++codes[CoapCodeName(code)];
    response_bytes = bytes;
    if (phases.measuring(now)) {
      ++measured;
      lat.Add(now - it->second.sent);
    }
    inflight.erase(it);
    if (phases.loading(now)) send_new(now);
  };

  TimePoint start = Clock::now();
  for (int i = 0; i < outstanding; ++i) send_new(start);
  socks.FlushAll();
  TimePoint next_check = start + std::chrono::milliseconds(100);
  while (!g_stop.load() && (phases.loading(Clock::now()) || !inflight.empty())) {
    socks.Poll(10, [&](int sock, std::string_view bytes) {
      CoapMessage m;
      if (!ParseCoap(bytes, &m)) return;
      TimePoint now = Clock::now();
      if (m.type == kCoapAck && m.code == 0) {
        // Empty ACK: the answer follows as a separate response with the same token.
        ++empty_acks;
        return;
      }
      if (m.type == kCoapCon) socks.Queue(sock, EmptyAck(m.mid));
      auto it = inflight.find(m.token);
      if (it == inflight.end() || m.token_len != kCoapTokenBytes) return;
      if (m.type != kCoapAck) ++separate;
      if (m.type == kCoapRst) {
        ++failed;
        inflight.erase(it);
        return;
      }
      finish(it, m.code, bytes.size(), now);
    });
    TimePoint now = Clock::now();
    if (now >= next_check) {
      next_check = now + std::chrono::milliseconds(100);
      for (auto it = inflight.begin(); it != inflight.end();) {
        if (now - it->second.last_tx < kCoapAckTimeout * (1 << it->second.retransmits)) {
          ++it;
          continue;
        }
        if (it->second.retransmits >= kCoapMaxRetransmit) {
          ++failed;
          it = inflight.erase(it);
          if (phases.loading(now)) send_new(now);
          continue;
        }
        ++it->second.retransmits;
        ++retransmits;
        it->second.last_tx = now;
        socks.Queue(it->second.sock, it->second.bytes);
        ++it;
      }
    }
    socks.FlushAll();
  }
  std::string code_json;
  for (auto& [c, n] : codes) code_json += (code_json.empty() ? "" : ",") + ("\"" + c + "\":" + std::to_string(n));
  std::printf(
      "{\"mode\":\"coap\",\"devices\":%zu,\"outstanding\":%d,\"sockets\":%d,\"rate\":%.1f,\"completed\":%lu,"
      "\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"retransmits\":%lu,\"failed\":%lu,\"empty_acks\":%lu,\"separate\":%lu,"
      "\"codes\":{%s},\"request_bytes\":%zu,\"response_bytes\":%lu,\"client_cpu_s\":%.2f}\n",
      devices, outstanding, sockets, static_cast<double>(measured) / duration_s, static_cast<unsigned long>(completed),
      lat.PercentileMs(50), lat.PercentileMs(99), static_cast<unsigned long>(retransmits),
      static_cast<unsigned long>(failed), static_cast<unsigned long>(empty_acks), static_cast<unsigned long>(separate),
      code_json.c_str(), request_bytes, static_cast<unsigned long>(response_bytes), CpuSeconds());
  return 0;
}

// One CON request and its response, blocking (set-up only).
std::optional<CoapMessage> Exchange(int fd, const std::string& tail, uint8_t code, std::string* payload_out) {
  static uint64_t token = static_cast<uint64_t>(std::time(nullptr)) << 20;
  static uint16_t mid = static_cast<uint16_t>(std::rand());
  uint64_t t = ++token;
  std::string req;
  PutCoapHeader(req, kCoapCon, code, ++mid, t);
  req += tail;
  char buf[kMaxDatagram];
  for (int attempt = 0; attempt <= kCoapMaxRetransmit; ++attempt) {
    if (send(fd, req.data(), req.size(), 0) < 0) DieErrno("send");
    TimePoint deadline = Clock::now() + kCoapAckTimeout;
    while (Clock::now() < deadline) {
      ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
      if (n < 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        continue;
      }
      CoapMessage m;
      if (!ParseCoap(std::string_view(buf, static_cast<size_t>(n)), &m)) continue;
      if (m.type == kCoapCon) {
        std::string ack = EmptyAck(m.mid);
        [[maybe_unused]] ssize_t w = send(fd, ack.data(), ack.size(), 0);
      }
      if (m.code == 0 || m.token != t) continue;
      if (payload_out) payload_out->assign(m.payload);
      return m;
    }
  }
  return std::nullopt;
}

// The ceiling serves, for every shelf, the very bytes bffd answers for it.
int CoapMirror(const sockaddr_in& from, const sockaddr_in& to, const std::vector<DeviceKey>& keys, size_t devices) {
  int src = UdpSocket(from), dst = UdpSocket(to);
  std::map<std::string, std::string> shelves;
  size_t largest = 0;
  for (size_t i = 0; i < devices; ++i) {
    if (shelves.count(keys[i].shelf)) continue;
    std::string payload;
    auto got = Exchange(src, ShelfRequestTail(keys[i], true, false), kCoapGet, &payload);
    if (!got || got->code != ((2 << 5) | 5)) {
      Die("GET /s/" + keys[i].shelf + " from bffd: " + (got ? CoapCodeName(got->code) : std::string("no answer")));
    }
    auto put = Exchange(dst, ShelfRequestTail(keys[i], false, false, payload), kCoapPut, nullptr);
    if (!put || (put->code >> 5) != 2) {
      Die("PUT /s/" + keys[i].shelf + " to the ceiling: " + (put ? CoapCodeName(put->code) : std::string("no answer")));
    }
    largest = std::max(largest, payload.size());
    shelves[keys[i].shelf] = payload;
  }
  close(src);
  close(dst);
  std::printf("{\"mode\":\"coap-mirror\",\"shelves\":%zu,\"largest_payload\":%zu}\n", shelves.size(), largest);
  return 0;
}

// Observers: GET /s/{shelf} with Observe=0 from many sockets and tokens, kept registered (CON
// notifications are acknowledged) until SIGTERM.
int Observe(const sockaddr_in& server, const std::vector<DeviceKey>& keys, size_t observers, int sockets, size_t window) {
  CoapSockets socks(server, sockets);
  struct Pending {
    std::string bytes;
    int sock;
    TimePoint last_tx;
    int retransmits = 0;
  };
  std::unordered_map<uint64_t, Pending> pending;
  uint64_t token = static_cast<uint64_t>(std::time(nullptr)) << 28;
  uint64_t registered = 0, refused = 0, notifications = 0, retransmits = 0;
  TimePoint t0 = Clock::now();
  auto on_datagram = [&](int sock, std::string_view bytes) {
    CoapMessage m;
    if (!ParseCoap(bytes, &m)) return;
    if (m.type == kCoapCon) socks.Queue(sock, EmptyAck(m.mid));
    if (m.code == 0) return;
    auto it = pending.find(m.token);
    if (it == pending.end()) {
      ++notifications;
      return;
    }
    if (m.code == ((2 << 5) | 5) && m.observe) {
      ++registered;
    } else {
      ++refused;
      std::fprintf(stderr, "bench_iot_load: observe refused: %s\n", CoapCodeName(m.code).c_str());
    }
    pending.erase(it);
  };
  // Registrations go out `window` at a time: a set-up step paced like the throughput runs, not a burst.
  size_t next = 0;
  while ((next < observers || !pending.empty()) && !g_stop.load()) {
    while (pending.size() < window && next < observers) {
      Pending p;
      p.sock = static_cast<int>(next % socks.size());
      PutCoapHeader(p.bytes, kCoapCon, kCoapGet, socks.NextMid(p.sock), ++token);
      p.bytes += ShelfRequestTail(keys[next % keys.size()], true, true);
      p.last_tx = Clock::now();
      socks.Queue(p.sock, p.bytes);
      pending.emplace(token, std::move(p));
      ++next;
    }
    socks.FlushAll();
    socks.Poll(10, on_datagram);
    TimePoint now = Clock::now();
    for (auto it = pending.begin(); it != pending.end();) {
      if (now - it->second.last_tx < kCoapAckTimeout) {
        ++it;
        continue;
      }
      if (it->second.retransmits++ >= kCoapMaxRetransmit) {
        ++refused;
        it = pending.erase(it);
        continue;
      }
      ++retransmits;
      it->second.last_tx = now;
      socks.Queue(it->second.sock, it->second.bytes);
      ++it;
    }
  }
  socks.FlushAll();
  std::printf("{\"mode\":\"observe\",\"registered\":%lu,\"refused\":%lu,\"retransmits\":%lu,\"sockets\":%d,"
              "\"window\":%zu,\"seconds\":%.2f}\n",
              static_cast<unsigned long>(registered), static_cast<unsigned long>(refused),
              static_cast<unsigned long>(retransmits), sockets, window, Seconds(Clock::now() - t0));
  std::fflush(stdout);
  while (!g_stop.load()) {
    socks.Poll(100, on_datagram);
    socks.FlushAll();
  }
  std::fprintf(stderr, "bench_iot_load: %lu notifications while observing\n", static_cast<unsigned long>(notifications));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_iot_load: load client of bench/iot.sh"};
  app.require_subcommand(1);

  bool udp = false, pair = false;
  auto* free_port = app.add_subcommand("free-port", "print a port the kernel just picked");
  free_port->add_flag("--udp", udp, "a UDP port (default TCP)");
  free_port->add_flag("--pair", pair, "the port and the next one free for UDP and TCP (coap-server)");

  std::string data_dir, out_path, keys_path, broker, server, from, to, label = "bffd", user = "bffd", password;
  int devices = 1000, window = 4, outstanding = 32, sockets = kCoapSockets, observers = 1000, first_device = 0;
  double rate = 1e6, burst = 1e6, warmup_s = 2, duration_s = 10, drain_s = 30, resend_after_s = 5;
  std::vector<std::string> receipts;

  auto* provision = app.add_subcommand("provision", "create device keys in bulk, written as 'device shelf key' lines");
  provision->add_option("--data", data_dir)->required();
  provision->add_option("--devices", devices);
  provision->add_option("--rate", rate);
  provision->add_option("--burst", burst);
  provision->add_option("--out", out_path)->required();

  auto* mqtt = app.add_subcommand("mqtt", "telemetry at QoS 1 from many devices, a bounded window each");
  mqtt->add_option("--broker", broker)->required();
  mqtt->add_option("--keys", keys_path)->required();
  mqtt->add_option("--devices", devices);
  mqtt->add_option("--window", window, "readings outstanding per device");
  mqtt->add_option("--warmup", warmup_s);
  mqtt->add_option("--duration", duration_s);
  mqtt->add_option("--drain-timeout", drain_s, "after the run, how long to wait for the last acknowledgements");
  mqtt->add_option("--label", label, "what the results are called (the target)");
  mqtt->add_option("--resend-after", resend_after_s, "seconds without an ack before a reading is sent again (0: never)");
  mqtt->add_option("receipts", receipts,
                   "after --: a subscriber command printing one topic per message; its lines replace bffd's acks");

  auto* echo = app.add_subcommand("mqtt-echo", "answer every reading at once with an ack, logged in as bffd");
  echo->add_option("--broker", broker)->required();
  echo->add_option("--user", user);
  echo->add_option("--password", password)->required();

  auto* coap = app.add_subcommand("coap", "CON GET /s/{shelf}?d=&k= with a fixed number outstanding");
  coap->add_option("--server", server)->required();
  coap->add_option("--keys", keys_path)->required();
  coap->add_option("--devices", devices);
  coap->add_option("--first-device", first_device);
  coap->add_option("--outstanding", outstanding);
  coap->add_option("--sockets", sockets);
  coap->add_option("--warmup", warmup_s);
  coap->add_option("--duration", duration_s);

  auto* mirror = app.add_subcommand("coap-mirror", "PUT each shelf's answer from bffd to the ceiling server");
  mirror->add_option("--from", from)->required();
  mirror->add_option("--to", to)->required();
  mirror->add_option("--keys", keys_path)->required();
  mirror->add_option("--devices", devices);

  auto* observe = app.add_subcommand("observe", "register CoAP observers and hold them until SIGTERM");
  observe->add_option("--server", server)->required();
  observe->add_option("--keys", keys_path)->required();
  observe->add_option("--observers", observers);
  observe->add_option("--sockets", sockets);
  observe->add_option("--window", outstanding, "registrations outstanding at once");

  CLI11_PARSE(app, argc, argv);
  RaiseFileLimit();
  signal(SIGPIPE, SIG_IGN);
  signal(SIGTERM, OnSignal);
  signal(SIGINT, OnSignal);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::srand(static_cast<unsigned>(std::time(nullptr)) ^ static_cast<unsigned>(getpid()));

  if (*free_port) return FreePort(udp, pair);
  if (*provision) return Provision(data_dir, devices, rate, burst, out_path);
  if (devices <= 0 || window <= 0 || outstanding <= 0 || sockets <= 0) Die("counts must be positive");
  if (*mqtt) {
    auto keys = LoadKeys(keys_path, static_cast<size_t>(devices) + (receipts.empty() ? 0 : 1));
    MqttLoad load(ParseAddress(broker), std::move(keys), devices, window, receipts, receipts.empty() ? label : "ceiling",
                  resend_after_s);
    return load.Run(warmup_s, duration_s, drain_s);
  }
  if (*echo) return MqttEcho(ParseAddress(broker), user, password);
  if (*coap) {
    auto keys = LoadKeys(keys_path, static_cast<size_t>(first_device + devices));
    return CoapLoad(ParseAddress(server), keys, static_cast<size_t>(devices), static_cast<size_t>(first_device),
                    outstanding, sockets, warmup_s, duration_s);
  }
  if (*mirror) {
    auto keys = LoadKeys(keys_path, static_cast<size_t>(devices));
    return CoapMirror(ParseAddress(from), ParseAddress(to), keys, static_cast<size_t>(devices));
  }
  if (*observe) {
    auto keys = LoadKeys(keys_path, 1);
    return Observe(ParseAddress(server), keys, static_cast<size_t>(observers), sockets, static_cast<size_t>(outstanding));
  }
  return 1;
}
