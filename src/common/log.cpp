// JSON line logger: formats each event into one line and writes it with a single call under a lock.
#include "common/log.h"

#include <atomic>
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

void Write(Level level, std::string_view msg, const nlohmann::json& fields, std::string_view trace_id) {
  nlohmann::ordered_json line;
  line["ts"] = NowRfc3339();
  line["level"] = LevelName(level);
  line["msg"] = msg;
  if (!trace_id.empty()) line["trace_id"] = trace_id;
  if (fields.is_object()) {
    for (auto it = fields.begin(); it != fields.end(); ++it) line[it.key()] = it.value();
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
