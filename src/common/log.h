// Structured JSON logging: one line per event with time, level, message, trace id and fields.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace bff::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

bool ParseLevel(std::string_view name, Level* out);
std::string_view LevelName(Level level);
// The level can change at any time (the admin listener's /admin/v1/log-level) and takes effect at once.
void SetLevel(Level level);
Level GetLevel();
bool Enabled(Level level);

// Replaces the output (stderr by default); tests capture lines with it. Pass nullptr to restore stderr.
void SetSink(std::function<void(std::string_view line)> sink);

// Which request a line belongs to: its trace id and the client kind ("mobile", "web", "iot").
struct Scope {
  std::string_view trace_id;
  std::string_view client;
  Scope() = default;
  Scope(std::string_view trace) : trace_id(trace) {}          // NOLINT: a bare trace id is a scope
  Scope(const std::string& trace) : trace_id(trace) {}        // NOLINT
  Scope(const char* trace) : trace_id(trace) {}               // NOLINT
  Scope(std::string_view trace, std::string_view client_kind) : trace_id(trace), client(client_kind) {}
};

// Fields whose name says they hold a secret (key, k, password, token, authorization, cookie, secret, psk,
// credential, csrf...; case-insensitive, at any depth) are written as "[redacted]" whatever the caller
// passed, so a slip cannot put a secret into a log. Callers still log ids and counts, not credentials.
bool IsSecretFieldName(std::string_view name);

// Writes one JSON line: ts, level, msg, trace_id and client (when the scope has them), then fields.
void Write(Level level, std::string_view msg, const nlohmann::json& fields = nullptr, Scope scope = {});

inline void Debug(std::string_view m, const nlohmann::json& f = nullptr, Scope s = {}) { if (Enabled(Level::kDebug)) Write(Level::kDebug, m, f, s); }
inline void Info(std::string_view m, const nlohmann::json& f = nullptr, Scope s = {}) { if (Enabled(Level::kInfo)) Write(Level::kInfo, m, f, s); }
inline void Warn(std::string_view m, const nlohmann::json& f = nullptr, Scope s = {}) { if (Enabled(Level::kWarn)) Write(Level::kWarn, m, f, s); }
inline void Error(std::string_view m, const nlohmann::json& f = nullptr, Scope s = {}) { Write(Level::kError, m, f, s); }

}  // namespace bff::log
