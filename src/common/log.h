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

// Writes one JSON line. Fields must never hold secrets: callers log ids and counts, not credentials.
void Write(Level level, std::string_view msg, const nlohmann::json& fields = nullptr, std::string_view trace_id = {});

inline void Debug(std::string_view m, const nlohmann::json& f = nullptr, std::string_view t = {}) { if (Enabled(Level::kDebug)) Write(Level::kDebug, m, f, t); }
inline void Info(std::string_view m, const nlohmann::json& f = nullptr, std::string_view t = {}) { if (Enabled(Level::kInfo)) Write(Level::kInfo, m, f, t); }
inline void Warn(std::string_view m, const nlohmann::json& f = nullptr, std::string_view t = {}) { if (Enabled(Level::kWarn)) Write(Level::kWarn, m, f, t); }
inline void Error(std::string_view m, const nlohmann::json& f = nullptr, std::string_view t = {}) { Write(Level::kError, m, f, t); }

}  // namespace bff::log
