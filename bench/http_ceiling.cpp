// Ceiling for bench/http.sh: bare cpp-httplib serving fixed bytes and headers, tuned like bffd's HTTP front.
//
// It does what bffd's front does minus the BFF: TCP_NODELAY, one pool thread per connection, a raised listen
// backlog, long keep-alive; every GET answers the captured body with the captured headers.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <httplib.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include <CLI/CLI.hpp>

namespace {

constexpr size_t kKeepAliveMaxRequests = 100000;  // as bffd: connections are not recycled mid-run
constexpr int kKeepAliveTimeoutS = 5;

// Exposes the listening socket, kept in a protected member with no getter in httplib 0.11.
class CeilingServer final : public httplib::Server {
 public:
  int listening_socket() const { return svr_sock_; }
};

bool IsFramingHeader(std::string name) {
  for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name == "content-length" || name == "connection" || name == "keep-alive" || name == "transfer-encoding";
}

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::ostringstream ss;
  ss << f.rdbuf();
  *out = ss.str();
  return true;
}

// Parses a header block as `curl -D` writes it: an optional status line, then "Name: value" lines.
bool ParseHeaders(const std::string& text, httplib::Headers* headers, std::string* content_type) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line.rfind("HTTP/", 0) == 0) continue;
    auto colon = line.find(':');
    if (colon == std::string::npos || colon == 0) return false;
    std::string name = line.substr(0, colon);
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    if (name == "Content-Type" || name == "content-type") {
      *content_type = value;
    } else if (!IsFramingHeader(name)) {
      headers->emplace(name, value);
    }
  }
  return true;
}

// Binds port 0, prints the port the kernel chose and releases it, for servers that cannot report theirs.
int PrintFreePort(const std::string& host) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) return 2;
  socklen_t len = sizeof(addr);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::perror("bench_http_ceiling: free port");
    return 1;
  }
  std::printf("%d\n", ntohs(addr.sin_port));
  ::close(fd);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_http_ceiling: fixed-response cpp-httplib server, the ceiling for bffd's HTTP front"};
  std::string host = "127.0.0.1", headers_path, body_path;
  int port = 0;
  size_t threads = 64;
  int backlog = 1024;
  size_t keep_alive_max = kKeepAliveMaxRequests;
  bool free_port = false;
  app.add_option("--host", host, "address to listen on");
  app.add_option("--port", port, "port; 0 picks a free one (printed on stdout)")->check(CLI::Range(0, 65535));
  app.add_option("--threads", threads, "worker pool: one per keep-alive connection")->check(CLI::Range(1, 4096));
  app.add_option("--backlog", backlog, "listen backlog")->check(CLI::Range(1, 65535));
  app.add_option("--keep-alive-max", keep_alive_max, "requests per connection before it is closed (httplib's default: 5)")
      ->check(CLI::Range(size_t{1}, size_t{1} << 30));
  app.add_option("--headers", headers_path, "header block to answer with (curl -D output)");
  app.add_option("--body", body_path, "body to answer with");
  app.add_flag("--free-port", free_port, "print a free port on --host and exit");
  CLI11_PARSE(app, argc, argv);
  if (free_port) return PrintFreePort(host);

  std::string header_text, body, content_type;
  httplib::Headers headers;
  if (headers_path.empty() || body_path.empty()) {
    std::fprintf(stderr, "bench_http_ceiling: --headers and --body are required\n");
    return 2;
  }
  if (!ReadFile(headers_path, &header_text) || !ReadFile(body_path, &body) ||
      !ParseHeaders(header_text, &headers, &content_type)) {
    std::fprintf(stderr, "bench_http_ceiling: cannot read %s or %s\n", headers_path.c_str(), body_path.c_str());
    return 2;
  }
  if (content_type.empty()) content_type = "application/octet-stream";

  CeilingServer server;
  server.set_tcp_nodelay(true);
  server.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server.set_keep_alive_max_count(keep_alive_max);
  server.set_keep_alive_timeout(kKeepAliveTimeoutS);
  server.Get(".*", [&](const httplib::Request&, httplib::Response& res) {
    res.headers = headers;
    res.set_content(body, content_type);
  });

  int bound = port == 0 ? server.bind_to_any_port(host) : (server.bind_to_port(host, port) ? port : -1);
  if (bound <= 0) {
    std::fprintf(stderr, "bench_http_ceiling: cannot listen on %s:%d\n", host.c_str(), port);
    return 1;
  }
  // Same reason as in bffd: the library listens with a backlog of 5.
  if (::listen(server.listening_socket(), backlog) != 0) {
    std::perror("bench_http_ceiling: listen");
    return 1;
  }
  std::cout << R"({"msg":"bench_http_ceiling listening","port":)" << bound << "}" << std::endl;
  return server.listen_after_bind() ? 0 : 1;
}
