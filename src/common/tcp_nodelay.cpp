// Finds this process's sockets through /proc/self/fd and sets options a library gave no way to ask for.
#include "common/tcp_nodelay.h"

#include <dirent.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cstdlib>
#include <cstring>
#include <vector>

namespace bff {
namespace {

bool SameEndpoint(const sockaddr_storage& a, const sockaddr* b) {
  if (a.ss_family != b->sa_family) return false;
  if (a.ss_family == AF_INET) {
    auto* x = reinterpret_cast<const sockaddr_in*>(&a);
    auto* y = reinterpret_cast<const sockaddr_in*>(b);
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  if (a.ss_family == AF_INET6) {
    auto* x = reinterpret_cast<const sockaddr_in6*>(&a);
    auto* y = reinterpret_cast<const sockaddr_in6*>(b);
    return x->sin6_port == y->sin6_port && std::memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(in6_addr)) == 0;
  }
  return false;
}

}  // namespace

int SetTcpNoDelayOnSocketsTo(const std::string& uri) {
  std::string rest = uri;
  std::string default_port = "1883";
  size_t scheme = rest.find("://");
  if (scheme != std::string::npos) {
    if (rest.compare(0, scheme, "ssl") == 0 || rest.compare(0, scheme, "mqtts") == 0) default_port = "8883";
    rest = rest.substr(scheme + 3);
  }
  rest = rest.substr(0, rest.find('/'));
  std::string host = rest, port = default_port;
  size_t colon = rest.rfind(':');
  if (colon != std::string::npos && rest.find(']', colon) == std::string::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);

  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0 || res == nullptr) return 0;
  std::vector<sockaddr_storage> peers;
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    sockaddr_storage s{};
    std::memcpy(&s, ai->ai_addr, std::min<size_t>(ai->ai_addrlen, sizeof(s)));
    peers.push_back(s);
  }
  freeaddrinfo(res);

  int set = 0;
  ForEachOwnSocket(SOCK_STREAM, [&](int fd) {
    sockaddr_storage peer{};
    socklen_t plen = sizeof(peer);
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &plen) != 0) return;
    for (const sockaddr_storage& want : peers) {
      if (!SameEndpoint(peer, reinterpret_cast<const sockaddr*>(&want))) continue;
      int one = 1;
      if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0) ++set;
      break;
    }
  });
  return set;
}

void ForEachOwnSocket(int type, const std::function<void(int fd)>& fn) {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return;
  std::vector<int> fds;
  while (dirent* e = readdir(dir)) {
    char* end = nullptr;
    long fd = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || fd == dirfd(dir)) continue;
    struct stat st{};
    if (fstat(static_cast<int>(fd), &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    int t = 0;
    socklen_t len = sizeof(t);
    if (getsockopt(static_cast<int>(fd), SOL_SOCKET, SO_TYPE, &t, &len) != 0 || t != type) continue;
    fds.push_back(static_cast<int>(fd));
  }
  closedir(dir);
  for (int fd : fds) fn(fd);
}

int SetUdpReceiveBuffer(uint16_t port, int bytes) {
  int got = 0;
  ForEachOwnSocket(SOCK_DGRAM, [&](int fd) {
    sockaddr_storage local{};
    socklen_t len = sizeof(local);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) != 0) return;
    uint16_t p = 0;
    if (local.ss_family == AF_INET) p = ntohs(reinterpret_cast<const sockaddr_in*>(&local)->sin_port);
    if (local.ss_family == AF_INET6) p = ntohs(reinterpret_cast<const sockaddr_in6*>(&local)->sin6_port);
    if (p != port) return;
    // SO_RCVBUFFORCE goes past net.core.rmem_max (with CAP_NET_ADMIN); otherwise the capped request.
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof(bytes)) != 0) {
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes));
    }
    int actual = 0;
    socklen_t alen = sizeof(actual);
    if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &actual, &alen) == 0) got = actual;
  });
  return got;
}

}  // namespace bff
