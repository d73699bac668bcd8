// Real processes for integration tests: bff-domain and bffd on free ports, plus a blocking HTTP client.
#pragma once

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "common/http_message.h"
#include "common/status.h"
#include "downstream/http_transport.h"
#include "support/test_support.h"

namespace bff::testing {

// Finds the first JSON log line whose "msg" equals `msg` in `log_text`; returns its field or "".
std::string LogField(const std::string& log_text, const std::string& msg, const std::string& field);

// bff-domain on 127.0.0.1 with a free port, data in `data_dir`.
class DomainProcess {
 public:
  DomainProcess(const std::string& data_dir, const std::vector<std::string>& extra_args = {});
  bool ready() const { return port_ != 0; }
  uint16_t port() const { return port_; }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  ChildProcess& process() { return *proc_; }

 private:
  std::unique_ptr<ChildProcess> proc_;
  uint16_t port_ = 0;
};

// bffd with the given arguments (an admin port of 0 unless given), waiting for "bffd ready".
class BffdProcess {
 public:
  BffdProcess(const std::string& data_dir, const std::vector<std::string>& extra_args = {});
  bool ready() const { return admin_port_ != 0; }
  uint16_t admin_port() const { return admin_port_; }
  uint16_t http_port() const { return http_port_; }
  uint16_t coap_port() const { return coap_port_; }    // 0 when off
  uint16_t coaps_port() const { return coaps_port_; }  // 0 when off
  std::string admin_url() const { return "http://127.0.0.1:" + std::to_string(admin_port_); }
  std::string http_url() const { return "http://127.0.0.1:" + std::to_string(http_port_); }
  ChildProcess& process() { return *proc_; }

 private:
  std::unique_ptr<ChildProcess> proc_;
  uint16_t admin_port_ = 0;
  uint16_t http_port_ = 0;
  uint16_t coap_port_ = 0;
  uint16_t coaps_port_ = 0;
};

// A blocking HTTP/1.1 client over our HttpTransport, for tests only.
class TestHttpClient {
 public:
  TestHttpClient();
  ~TestHttpClient();
  StatusOr<HttpResponse> Send(const std::string& base_url, HttpRequest req,
                              std::chrono::milliseconds timeout = std::chrono::seconds(10));
  StatusOr<HttpResponse> Get(const std::string& base_url, const std::string& target,
                             std::chrono::milliseconds timeout = std::chrono::seconds(10));
  boost::asio::io_context& io() { return io_; }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::vector<std::thread> threads_;
  std::map<std::string, std::shared_ptr<HttpTransport>> transports_;
  std::mutex mu_;
};

// Runs a shell command; returns its exit status and fills `out` with stdout.
int RunCommand(const std::string& cmd, std::string* out);

}  // namespace bff::testing

namespace bff::testing {

// A real mosquitto on a free loopback port with config/mosquitto.conf, its passwd and acl exported from
// the key store in `data_dir` by `bffd keys export-mosquitto`.
class MosquittoProcess {
 public:
  MosquittoProcess(const std::string& data_dir, const std::string& broker_dir);
  bool ready() const { return port_ != 0; }
  uint16_t port() const { return port_; }
  std::string uri() const { return "tcp://127.0.0.1:" + std::to_string(port_); }
  ChildProcess& process() { return *proc_; }
  // Restarts on the same port and directory (persistence kept).
  bool Restart();

 private:
  bool Launch();
  std::string data_dir_, dir_;
  uint16_t port_ = 0;
  std::unique_ptr<ChildProcess> proc_;
};

uint16_t FreeTcpPort();
bool TcpPortOpen(uint16_t port);

}  // namespace bff::testing
