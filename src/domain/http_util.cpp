// Request parsing, validation and response helpers shared by the reference domain services.
#include "domain/http_util.h"

#include <cctype>
#include <cmath>
#include <cstdio>

#include "common/crypto.h"
#include "observability/trace_context.h"
#include "security/input_validation.h"

namespace bff::domain {
namespace {

// Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's days_from_civil).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

void CivilFromDays(int64_t z, int64_t* y, unsigned* m, unsigned* d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = static_cast<int64_t>(yoe) + era * 400 + (*m <= 2);
}

bool Digits(std::string_view s, size_t pos, size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

bool IsLeap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int DaysInMonth(int y, int m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m - 1];
}

// Rejects nesting deeper than kMaxJsonDepth without recursing, so hostile input cannot exhaust the stack.
bool NestingWithinLimit(std::string_view body) {
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : body) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth) return false;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return true;
}

}  // namespace

bool IsValidId(std::string_view id) { return bff::IsValidId(id); }

std::string Dump(const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

HttpResponse JsonResponse(int status, const nlohmann::json& body) { return HttpResponse::Json(status, Dump(body)); }

HttpResponse RawJsonResponse(int status, std::string body) { return HttpResponse::Json(status, std::move(body)); }

HttpResponse ErrorResponse(int status, std::string_view code, std::string_view message) {
  nlohmann::json body;
  body["error"] = {{"code", std::string(code)}, {"message", std::string(message)}};
  return JsonResponse(status, body);
}

HttpResponse ErrorResponse(const Status& status) {
  return ErrorResponse(HttpStatusFor(status.code()), ErrorCodeString(status.code()), status.message());
}

std::string MediaType(std::string_view content_type) {
  size_t semi = content_type.find(';');
  std::string_view t = content_type.substr(0, semi);
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.front()))) t.remove_prefix(1);
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.remove_suffix(1);
  std::string out(t);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

StatusOr<nlohmann::json> ParseJsonObject(std::string_view body) {
  if (body.size() > kMaxBodyBytes) {
    return Status(StatusCode::kPayloadTooLarge, "request body exceeds " + std::to_string(kMaxBodyBytes) + " bytes");
  }
  if (!NestingWithinLimit(body)) return InvalidArgument("JSON nested too deeply");
  nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidArgument("body is not valid JSON");
  if (!j.is_object()) return InvalidArgument("body must be a JSON object");
  return j;
}

StatusOr<nlohmann::json> ParseJsonObjectBody(const HttpRequest& req) {
  if (MediaType(req.headers.Get("Content-Type")) != "application/json") {
    return Status(StatusCode::kUnsupportedMediaType, "Content-Type must be application/json");
  }
  return ParseJsonObject(req.body);
}

std::optional<int64_t> JsonInt(const nlohmann::json& v, int64_t min, int64_t max) {
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
    int64_t i = static_cast<int64_t>(u);
    if (i < min || i > max) return std::nullopt;
    return i;
  }
  if (v.is_number_integer()) {
    int64_t i = v.get<int64_t>();
    if (i < min || i > max) return std::nullopt;
    return i;
  }
  return std::nullopt;
}

std::optional<double> JsonNumber(const nlohmann::json& v, double min, double max) {
  if (!v.is_number()) return std::nullopt;
  double d = v.get<double>();
  if (!std::isfinite(d) || d < min || d > max) return std::nullopt;
  return d;
}

StatusOr<int> ParseLimit(const HttpRequest& req, int def, int max) {
  if (!req.HasQueryParam("limit")) return def;
  std::string s = req.QueryParam("limit");
  if (s.empty() || s.size() > 6) return InvalidArgument("limit must be an integer from 1 to " + std::to_string(max));
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return InvalidArgument("limit must be an integer from 1 to " + std::to_string(max));
    v = v * 10 + (c - '0');
  }
  if (v < 1 || v > max) return InvalidArgument("limit must be an integer from 1 to " + std::to_string(max));
  return v;
}

std::string EncodeCursor(std::string_view last_id) { return Base64UrlEncode(last_id); }

StatusOr<std::string> DecodeCursor(std::string_view cursor) {
  if (cursor.empty()) return std::string();
  std::string id;
  if (cursor.size() > 2 * kMaxIdLength || !Base64UrlDecode(cursor, &id) || !IsValidId(id)) {
    return InvalidArgument("cursor is not valid");
  }
  return id;
}

std::string FormatCents(int64_t cents) {
  bool negative = cents < 0;
  uint64_t abs = negative ? static_cast<uint64_t>(-(cents + 1)) + 1 : static_cast<uint64_t>(cents);
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%s%llu.%02llu", negative ? "-" : "", static_cast<unsigned long long>(abs / 100),
                static_cast<unsigned long long>(abs % 100));
  return buf;
}

std::string FormatRfc3339(int64_t unix_s) {
  int64_t days = unix_s >= 0 ? unix_s / 86400 : -((-unix_s + 86399) / 86400);
  int64_t secs = unix_s - days * 86400;
  int64_t y = 0;
  unsigned m = 0, d = 0;
  CivilFromDays(days, &y, &m, &d);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04lld-%02u-%02uT%02d:%02d:%02dZ", static_cast<long long>(y), m, d,
                static_cast<int>(secs / 3600), static_cast<int>(secs / 60 % 60), static_cast<int>(secs % 60));
  return buf;
}

bool ParseRfc3339(std::string_view s, int64_t* unix_s) {
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!Digits(s, 0, 4, &year) || s.size() < 20 || s[4] != '-' || !Digits(s, 5, 2, &month) || s[7] != '-' ||
      !Digits(s, 8, 2, &day) || (s[10] != 'T' && s[10] != 't') || !Digits(s, 11, 2, &hour) || s[13] != ':' ||
      !Digits(s, 14, 2, &minute) || s[16] != ':' || !Digits(s, 17, 2, &second)) {
    return false;
  }
  if (month < 1 || month > 12 || day < 1 || day > DaysInMonth(year, month) || hour > 23 || minute > 59 || second > 60) {
    return false;
  }
  size_t pos = 19;
  if (pos < s.size() && s[pos] == '.') {
    size_t start = ++pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
    if (pos == start || pos - start > 9) return false;
  }
  int offset_s = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int oh = 0, om = 0;
    if (!Digits(s, pos + 1, 2, &oh) || pos + 3 >= s.size() || s[pos + 3] != ':' || !Digits(s, pos + 4, 2, &om) ||
        oh > 23 || om > 59) {
      return false;
    }
    offset_s = (oh * 3600 + om * 60) * (s[pos] == '-' ? -1 : 1);
    pos += 6;
  } else {
    return false;
  }
  if (pos != s.size()) return false;
  int64_t days = DaysFromCivil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  *unix_s = days * 86400 + hour * 3600 + minute * 60 + second - offset_s;
  return true;
}

std::string TraceIdOf(const HttpRequest& req) {
  std::string_view header = req.headers.Get("traceparent");
  if (header.empty()) return {};
  auto tc = TraceContext::Parse(header);
  return tc ? tc->trace_id : std::string();
}

}  // namespace bff::domain
