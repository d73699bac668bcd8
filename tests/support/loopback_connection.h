// A blocking raw TCP client on loopback for HTTP tests that must send what no HTTP library would.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace bff::testing {

// One HTTP/1.1 answer as it came off the wire.
struct RawReply {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names; repeated fields joined with ", "
  std::string body;

  bool Has(const std::string& name) const { return headers.count(name) > 0; }
  std::string Header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

inline std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// Every read has a deadline, so a server bug fails a test instead of hanging it.
class LoopbackConnection {
 public:
  static constexpr std::chrono::milliseconds kDefaultTimeout{10000};

  // `source` picks the local address among 127.0.0.0/8, so one test can play several clients.
  explicit LoopbackConnection(uint16_t port, const char* source = nullptr) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ >= 0 && source != nullptr) {
      sockaddr_in local{};
      local.sin_family = AF_INET;
      if (::inet_pton(AF_INET, source, &local.sin_addr) != 1 ||
          ::bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0) {
        ::close(fd_);
        fd_ = -1;
      }
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = fd_ >= 0 && ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~LoopbackConnection() {
    if (fd_ >= 0) ::close(fd_);
  }
  LoopbackConnection(const LoopbackConnection&) = delete;
  LoopbackConnection& operator=(const LoopbackConnection&) = delete;

  bool connected() const { return connected_; }

  bool Send(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Reads one answer framed by Content-Length (or without a body: HEAD, 204, 304); nullopt on timeout,
  // error, or a connection closed before a complete answer.
  std::optional<RawReply> Read(bool head_request = false, std::chrono::milliseconds timeout = kDefaultTimeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    size_t header_end;
    while ((header_end = pending_.find("\r\n\r\n")) == std::string::npos) {
      if (!Receive(deadline)) return std::nullopt;
    }
    RawReply reply;
    std::string head = pending_.substr(0, header_end);
    pending_.erase(0, header_end + 4);
    size_t line_end = head.find("\r\n");
    std::string status_line = head.substr(0, line_end);
    if (status_line.rfind("HTTP/1.1 ", 0) != 0 || status_line.size() < 12) return std::nullopt;
    reply.status = std::stoi(status_line.substr(9, 3));
    while (line_end != std::string::npos) {
      size_t next = head.find("\r\n", line_end + 2);
      std::string line = head.substr(line_end + 2, next == std::string::npos ? std::string::npos : next - line_end - 2);
      line_end = next;
      size_t colon = line.find(':');
      if (colon == std::string::npos) return std::nullopt;
      std::string name = Lower(line.substr(0, colon));
      size_t value_start = line.find_first_not_of(' ', colon + 1);
      std::string value = value_start == std::string::npos ? std::string() : line.substr(value_start);
      auto [it, inserted] = reply.headers.emplace(name, value);
      if (!inserted) it->second += ", " + value;
    }
    const bool no_body = head_request || reply.status == 204 || reply.status == 304;
    if (!no_body) {
      if (!reply.Has("content-length")) return std::nullopt;
      const size_t length = std::stoul(reply.Header("content-length"));
      while (pending_.size() < length) {
        if (!Receive(deadline)) return std::nullopt;
      }
      reply.body = pending_.substr(0, length);
      pending_.erase(0, length);
    }
    return reply;
  }

  // True once the server has closed its side (EOF or reset) within the deadline; bytes before it are skipped.
  bool WaitClosed(std::chrono::milliseconds timeout = kDefaultTimeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (Receive(deadline)) pending_.clear();
    return closed_;
  }

 private:
  bool Receive(std::chrono::steady_clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    pollfd p{fd_, POLLIN, 0};
    if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) <= 0) return false;
    char buf[16384];
    ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    if (n <= 0) {
      closed_ = true;
      return false;
    }
    pending_.append(buf, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  bool closed_ = false;
  std::string pending_;
};

}  // namespace bff::testing
