// Fuzz target: whole CoAP datagrams through libcoap into the CoAP server and IotBff (embedded domain),
// over loopback UDP. After each input a valid GET from another client must still be answered: the
// server neither died nor wedged. kKeyPlaceholder in the input stands for the device's key.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_iot_fixture.h"
#include "protocols/coap/coap_server.h"

namespace {

constexpr uint8_t kCoapVersion1Non = 0x50;  // version 1, type NON; low nibble: token length
constexpr uint8_t kCoapTypeMask = 0x30;
constexpr uint8_t kCoapTypeCon = 0x00;
constexpr uint8_t kCoapTypeAck = 0x20;
constexpr uint8_t kCoapGet = 0x01;
constexpr uint16_t kOptionUriPath = 11;
constexpr uint16_t kOptionUriQuery = 15;
constexpr size_t kProbeTokenBytes = 8;
constexpr size_t kMaxDatagram = 65536;
constexpr int kPollSliceMs = 100;

// One CoAP option after `*last` (RFC 7252 section 3.1), lengths below 269.
void AppendOption(std::string& out, uint16_t* last, uint16_t number, const std::string& value) {
  auto nibble = [](size_t v) { return v < 13 ? v : 13; };
  size_t delta = number - *last;
  *last = number;
  out.push_back(static_cast<char>(nibble(delta) << 4 | nibble(value.size())));
  if (delta >= 13) out.push_back(static_cast<char>(delta - 13));
  if (value.size() >= 13) out.push_back(static_cast<char>(value.size() - 13));
  out += value;
}

int UdpSocket() {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) bff::fuzz::SetupFailed("socket");
  sockaddr_in any{};
  any.sin_family = AF_INET;
  any.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&any), sizeof any) != 0) bff::fuzz::SetupFailed("bind");
  return fd;
}

struct CoapFixture {
  CoapFixture() {
    bff::CoapServerOptions opts;
    opts.coap_address = "127.0.0.1:0";
    opts.coaps_address = "";
    auto started = bff::CoapServer::Start(opts, *iot.iot, [](const std::string&) { return std::string(); });
    if (!started.ok()) bff::fuzz::SetupFailed("coap server: " + started.status().ToString());
    server = std::move(started).value();
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    to.sin_port = htons(server->coap_port());
    fuzz_fd = UdpSocket();
    probe_fd = UdpSocket();
  }

  void Send(int fd, const std::string& datagram) {
    // A full socket buffer or an oversized datagram is the kernel's business, not the server's.
    (void)sendto(fd, datagram.data(), datagram.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof to);
  }

  // Reads what has arrived on `fd` within `wait_ms`; empty when nothing did.
  static std::string Receive(int fd, int wait_ms) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, wait_ms) <= 0) return {};
    std::string buf(kMaxDatagram, '\0');
    ssize_t n = recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
    buf.resize(n > 0 ? static_cast<size_t>(n) : 0);
    return buf;
  }

  // Acknowledges a confirmable message (a separate response), so libcoap stops retransmitting it.
  void AckIfConfirmable(int fd, const std::string& msg) {
    if (msg.size() < 4 || (static_cast<uint8_t>(msg[0]) & kCoapTypeMask) != kCoapTypeCon) return;
    Send(fd, std::string{static_cast<char>(0x40 | kCoapTypeAck), '\0', msg[2], msg[3]});
  }

  // NON GET /s/{shelf}?d=..&k=.. with a fresh token and message id; true once its answer arrived.
  bool ProbeAnswered() {
    ++probes;
    std::string token(kProbeTokenBytes, '\0');
    for (size_t i = 0; i < kProbeTokenBytes; ++i) token[i] = static_cast<char>(probes >> (8 * i));
    std::string msg;
    msg.push_back(static_cast<char>(kCoapVersion1Non | kProbeTokenBytes));
    msg.push_back(static_cast<char>(kCoapGet));
    msg.push_back(static_cast<char>(probes >> 8));
    msg.push_back(static_cast<char>(probes));
    msg += token;
    uint16_t last = 0;
    AppendOption(msg, &last, kOptionUriPath, "s");
    AppendOption(msg, &last, kOptionUriPath, bff::fuzz::kFuzzShelves[0]);
    AppendOption(msg, &last, kOptionUriQuery, std::string("d=") + bff::fuzz::kFuzzDevice);
    AppendOption(msg, &last, kOptionUriQuery, "k=" + iot.key);
    Send(probe_fd, msg);
    auto deadline = std::chrono::steady_clock::now() + bff::fuzz::kAnswerDeadline;
    while (std::chrono::steady_clock::now() < deadline) {
      std::string reply = Receive(probe_fd, kPollSliceMs);
      AckIfConfirmable(probe_fd, reply);
      if (reply.size() >= 4 + kProbeTokenBytes && (static_cast<uint8_t>(reply[0]) & 0x0f) == kProbeTokenBytes &&
          reply.compare(4, kProbeTokenBytes, token) == 0) {
        return true;
      }
    }
    return false;
  }

  // Takes whatever the fuzz input's answers were, acknowledging separate responses.
  void DrainFuzzSocket() {
    for (std::string m = Receive(fuzz_fd, 0); !m.empty(); m = Receive(fuzz_fd, 0)) AckIfConfirmable(fuzz_fd, m);
  }

  bff::fuzz::IotFixture iot;
  std::unique_ptr<bff::CoapServer> server;
  sockaddr_in to{};
  int fuzz_fd = -1;
  int probe_fd = -1;
  uint64_t probes = 0;
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  bff::fuzz::Fixture<CoapFixture>();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  CoapFixture& f = bff::fuzz::Fixture<CoapFixture>();
  f.Send(f.fuzz_fd, bff::fuzz::WithKey(std::string(reinterpret_cast<const char*>(data), size), f.iot.key));
  // Datagrams reach the server's one socket in the order sent, so the probe's answer comes after the
  // input was taken in.
  if (!f.ProbeAnswered()) bff::fuzz::Finding("the CoAP server stopped answering a valid GET");
  f.DrainFuzzSocket();
  return 0;
}
