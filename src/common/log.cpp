// JSON line logger: formats each event into one line and writes it with a single call under a lock.
#include "common/log.h"

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace bff::log {
namespace {

std::atomic<int> g_level{static_cast<int>(Level::kInfo)};
std::mutex g_mu;
std::function<void(std::string_view)> g_sink;

std::string NowRfc3339() {
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[96];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

}  // namespace

bool ParseLevel(std::string_view name, Level* out) {
  if (name == "debug") { *out = Level::kDebug; return true; }
  if (name == "info") { *out = Level::kInfo; return true; }
  if (name == "warn" || name == "warning") { *out = Level::kWarn; return true; }
  if (name == "error") { *out = Level::kError; return true; }
  return false;
}

std::string_view LevelName(Level level) {
  switch (level) {
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarn: return "warn";
    case Level::kError: return "error";
  }
  return "info";
}

void SetLevel(Level level) { g_level.store(static_cast<int>(level)); }
Level GetLevel() { return static_cast<Level>(g_level.load()); }
bool Enabled(Level level) { return static_cast<int>(level) >= g_level.load(std::memory_order_relaxed); }

void SetSink(std::function<void(std::string_view)> sink) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_sink = std::move(sink);
}

bool IsSecretFieldName(std::string_view name) {
  std::string n;
  n.reserve(name.size());
  for (char c : name) n.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  if (n == "k" || n == "key" || n == "psk") return true;
  for (std::string_view word : {"api_key", "apikey", "password", "passwd", "secret", "token", "authorization",
                                "cookie", "credential", "csrf", "private_key", "bearer"}) {
    if (n.find(word) != std::string::npos) return true;
  }
  return false;
}

namespace {

nlohmann::json Redacted(const nlohmann::json& v) {
  if (v.is_object()) {
    nlohmann::json out = nlohmann::json::object();
    for (auto it = v.begin(); it != v.end(); ++it) {
      out[it.key()] = IsSecretFieldName(it.key()) ? nlohmann::json("[redacted]") : Redacted(it.value());
    }
    return out;
  }
  if (v.is_array()) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& e : v) out.push_back(Redacted(e));
    return out;
  }
  return v;
}

}  // namespace

void Write(Level level, std::string_view msg, const nlohmann::json& fields, Scope scope) {
  nlohmann::ordered_json line;
  line["ts"] = NowRfc3339();
  line["level"] = LevelName(level);
  line["msg"] = msg;
  if (!scope.trace_id.empty()) line["trace_id"] = scope.trace_id;
  if (!scope.client.empty()) line["client"] = scope.client;
  if (fields.is_object()) {
    for (auto it = fields.begin(); it != fields.end(); ++it) {
      line[it.key()] = IsSecretFieldName(it.key()) ? nlohmann::json("[redacted]") : Redacted(it.value());
    }
  }
  std::string out = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  out.push_back('\n');
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_sink) {
    g_sink(std::string_view(out.data(), out.size() - 1));
  } else {
    std::fwrite(out.data(), 1, out.size(), stderr);
    std::fflush(stderr);
  }
}

}  // namespace bff::log
