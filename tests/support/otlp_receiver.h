// A small OTLP/HTTP JSON collector on loopback for tests: records POSTed traces, can fail or hang.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace bff::testing {

// One request as it arrived.
struct OtlpRequest {
  std::string method;
  std::string target;
  std::string content_type;
  std::string body;
  nlohmann::json json;  // the body parsed; discarded (is_discarded()) when it was not JSON
};

// One span out of a request, with the resource and scope it was sent under.
struct ReceivedSpan {
  nlohmann::json span;
  nlohmann::json resource;
  nlohmann::json scope;
};

class OtlpReceiver {
 public:
  enum class Mode {
    kAccept,  // 200 with the configured body (default "{}")
    kFail,    // 500
    kHang,    // read the request, never answer (the connection stays open until destruction)
  };

  // Listens on 127.0.0.1 port 0 (a free port) and serves on its own thread.
  OtlpReceiver();
  ~OtlpReceiver();
  OtlpReceiver(const OtlpReceiver&) = delete;
  OtlpReceiver& operator=(const OtlpReceiver&) = delete;

  uint16_t port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // Applies to requests received from now on.
  void set_mode(Mode mode);
  void set_response_body(std::string body);

  size_t request_count() const;
  size_t connection_count() const;  // connections accepted so far
  std::vector<OtlpRequest> requests() const;
  std::vector<ReceivedSpan> spans() const;

  // Waits (condition variable, no polling) until at least `n` requests have been read in full.
  bool WaitForRequests(size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Waits until at least `count` spans with `trace_id` arrived; returns those seen by then, which is
  // fewer than `count` only on timeout.
  std::vector<ReceivedSpan> WaitForSpans(std::string_view trace_id, size_t count,
                                         std::chrono::milliseconds timeout = std::chrono::seconds(10));

 private:
  class Server;
  friend class Server;
  void OnRequest(OtlpRequest req);
  std::vector<ReceivedSpan> SpansOfLocked(std::string_view trace_id) const;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<OtlpRequest> requests_;
  std::vector<ReceivedSpan> spans_;
  size_t connections_ = 0;
  Mode mode_ = Mode::kAccept;
  std::string response_body_ = "{}";

  uint16_t port_ = 0;
  std::unique_ptr<Server> server_;
  std::thread thread_;
};

}  // namespace bff::testing
