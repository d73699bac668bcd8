// Process fixtures for integration tests.
#include "support/processes.h"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <future>
#include <sstream>
#include <sys/wait.h>

#include <nlohmann/json.hpp>

namespace bff::testing {

std::string LogField(const std::string& log_text, const std::string& msg, const std::string& field) {
  std::istringstream in(log_text);
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_object() || j.value("msg", "") != msg || !j.contains(field)) continue;
    if (j[field].is_string()) return j[field].get<std::string>();
    return j[field].dump();
  }
  return "";
}

DomainProcess::DomainProcess(const std::string& data_dir, const std::vector<std::string>& extra_args) {
  std::vector<std::string> args = {"--data", data_dir, "--password-iterations", "1000"};
  // A free port unless the test names one (to restart a killed domain where bffd expects it).
  if (std::find(extra_args.begin(), extra_args.end(), "--listen") == extra_args.end()) {
    args.insert(args.end(), {"--listen", "127.0.0.1:0"});
  }
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  proc_ = std::make_unique<ChildProcess>(BinPath("bff-domain"), args, data_dir);
  WaitFor(
      [&] {
        std::string p = LogField(proc_->Stderr(), "bff-domain listening", "port");
        if (!p.empty()) port_ = static_cast<uint16_t>(std::stoi(p));
        return port_ != 0 || !proc_->running();
      },
      std::chrono::seconds(60));
}

BffdProcess::BffdProcess(const std::string& data_dir, const std::vector<std::string>& extra_args) {
  std::vector<std::string> args = {"--data", data_dir};
  auto has = [&](const char* flag) { return std::find(extra_args.begin(), extra_args.end(), flag) != extra_args.end(); };
  // Every listener on a free loopback port unless the test names one: tests run in parallel.
  for (const char* flag : {"--admin", "--http", "--coap", "--coaps"}) {
    if (!has(flag)) args.insert(args.end(), {flag, "127.0.0.1:0"});
  }
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  proc_ = std::make_unique<ChildProcess>(BinPath("bffd"), args, data_dir);
  WaitFor(
      [&] {
        std::string log = proc_->Stderr();
        std::string admin = LogField(log, "bffd ready", "admin");
        std::string http = LogField(log, "bffd ready", "http");
        if (!admin.empty()) admin_port_ = static_cast<uint16_t>(std::stoi(admin.substr(admin.rfind(':') + 1)));
        if (!http.empty()) http_port_ = static_cast<uint16_t>(std::stoi(http.substr(http.rfind(':') + 1)));
        std::string coap = LogField(log, "bffd ready", "coap");
        std::string coaps = LogField(log, "bffd ready", "coaps");
        if (!coap.empty()) coap_port_ = static_cast<uint16_t>(std::stoi(coap.substr(coap.rfind(':') + 1)));
        if (!coaps.empty()) coaps_port_ = static_cast<uint16_t>(std::stoi(coaps.substr(coaps.rfind(':') + 1)));
        return admin_port_ != 0 || !proc_->running();
      },
      std::chrono::seconds(60));
}

TestHttpClient::TestHttpClient() : work_(boost::asio::make_work_guard(io_)) {
  for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { io_.run(); });
}

TestHttpClient::~TestHttpClient() {
  for (auto& [k, t] : transports_) t->Shutdown();
  work_.reset();
  io_.stop();
  for (auto& t : threads_) t.join();
}

StatusOr<HttpResponse> TestHttpClient::Send(const std::string& base_url, HttpRequest req, std::chrono::milliseconds timeout) {
  std::shared_ptr<HttpTransport> transport;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto& t = transports_[base_url];
    if (!t) {
      std::map<Service, std::string> urls;
      for (Service s : kAllServices) urls[s] = base_url;
      auto created = HttpTransport::Create(io_, urls);
      if (!created.ok()) return created.status();
      t = *created;
    }
    transport = t;
  }
  auto p = std::make_shared<std::promise<StatusOr<HttpResponse>>>();
  auto f = p->get_future();
  // The service only picks a connection pool; every path goes to the same base URL here.
  transport->Send(Service::kCatalog, std::move(req), std::chrono::steady_clock::now() + timeout,
                  [p](StatusOr<HttpResponse> r) { p->set_value(std::move(r)); });
  if (f.wait_for(timeout + std::chrono::seconds(5)) != std::future_status::ready) return DeadlineExceeded("test client");
  return f.get();
}

StatusOr<HttpResponse> TestHttpClient::Get(const std::string& base_url, const std::string& target,
                                           std::chrono::milliseconds timeout) {
  HttpRequest r;
  r.method = "GET";
  size_t q = target.find('?');
  r.path = target.substr(0, q);
  if (q != std::string::npos) r.query = target.substr(q + 1);
  return Send(base_url, std::move(r), timeout);
}

int RunCommand(const std::string& cmd, std::string* out) {
  FILE* f = popen(cmd.c_str(), "r");
  if (!f) return -1;
  char buf[4096];
  size_t n;
  if (out) out->clear();
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
    if (out) out->append(buf, n);
  }
  int st = pclose(f);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

}  // namespace bff::testing

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>

namespace bff::testing {

uint16_t FreeTcpPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  uint16_t port = ntohs(a.sin_port);
  close(fd);
  return port;
}

bool TcpPortOpen(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  close(fd);
  return ok;
}

MosquittoProcess::MosquittoProcess(const std::string& data_dir, const std::string& broker_dir)
    : data_dir_(data_dir), dir_(broker_dir) {
  std::string out;
  if (RunCommand(BinPath("bffd") + " keys export-mosquitto " + dir_ + " --data " + data_dir_ + " 2>&1", &out) != 0) return;
  port_ = FreeTcpPort();
  std::string conf = ReadFile(std::string(BFF_SOURCE_DIR) + "/config/mosquitto.conf");
  for (auto [from, to] : {std::pair<std::string, std::string>{"@PORT@", std::to_string(port_)}, {"@DIR@", dir_}}) {
    for (size_t p = conf.find(from); p != std::string::npos; p = conf.find(from)) conf.replace(p, from.size(), to);
  }
  // Tests run as root: mosquitto would switch to the "mosquitto" user, which cannot read the temp dir.
  conf += "\nuser root\n";
  std::ofstream(dir_ + "/mosquitto.conf") << conf;
  if (!Launch()) port_ = 0;
}

bool MosquittoProcess::Launch() {
  proc_ = std::make_unique<ChildProcess>("/usr/sbin/mosquitto", std::vector<std::string>{"-c", dir_ + "/mosquitto.conf"}, dir_);
  return WaitFor([&] { return TcpPortOpen(port_) || !proc_->running(); }, std::chrono::seconds(20)) && proc_->running();
}

bool MosquittoProcess::Restart() {
  if (proc_) {
    proc_->Signal(SIGKILL);
    proc_->Wait(std::chrono::seconds(10));
  }
  return Launch();
}

}  // namespace bff::testing
