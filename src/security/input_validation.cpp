// Ids, JSON request bodies and typed field access checked at the edge, with messages that name the field.
#include "security/input_validation.h"

#include <cstdint>
#include <limits>

namespace bff {
namespace {

bool IsIdChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
         c == '-';
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// application/json with optional parameters; a charset, when given, must be UTF-8 (RFC 8259 8.1).
bool IsJsonContentType(std::string_view value) {
  size_t semi = value.find(';');
  if (!EqualsIgnoreCase(Trim(value.substr(0, semi)), "application/json")) return false;
  while (semi != std::string_view::npos) {
    value.remove_prefix(semi + 1);
    semi = value.find(';');
    std::string_view param = Trim(value.substr(0, semi));
    if (param.empty()) continue;
    size_t eq = param.find('=');
    if (eq == std::string_view::npos) return false;
    std::string_view name = Trim(param.substr(0, eq));
    std::string_view arg = Trim(param.substr(eq + 1));
    if (arg.size() >= 2 && arg.front() == '"' && arg.back() == '"') arg = arg.substr(1, arg.size() - 2);
    if (name.empty()) return false;
    if (EqualsIgnoreCase(name, "charset") && !EqualsIgnoreCase(arg, "utf-8")) return false;
  }
  return true;
}

std::string Field(std::string_view field) { return std::string(field); }

const nlohmann::json* FindField(const nlohmann::json& obj, std::string_view field) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(field);
  return it == obj.end() ? nullptr : &*it;
}

}  // namespace

bool IsValidId(std::string_view id) {
  if (id.empty() || id.size() > kMaxIdLength) return false;
  for (char c : id) {
    if (!IsIdChar(c)) return false;
  }
  // "." and ".." are path segments to every URL normaliser between here and a service.
  return id.find_first_not_of('.') != std::string_view::npos;
}

Status CheckId(std::string_view id, std::string_view what) {
  if (IsValidId(id)) return Status::Ok();
  // The rejected value is not echoed: it is untrusted and may be large or binary.
  return InvalidArgument(Field(what) + " must be 1 to " + std::to_string(kMaxIdLength) +
                         " characters from A-Z a-z 0-9 . _ -");
}

StatusOr<nlohmann::json> ParseJsonObjectBody(const HttpRequest& req, size_t max_bytes) {
  if (req.body.size() > max_bytes) {
    return Status(StatusCode::kPayloadTooLarge, "request body exceeds " + std::to_string(max_bytes) + " bytes");
  }
  if (!IsJsonContentType(req.headers.Get("Content-Type"))) {
    return Status(StatusCode::kUnsupportedMediaType, "Content-Type must be application/json");
  }
  // The parser itself is iterative; the callback keeps deeply nested parts out of the document and
  // flags them, so a hostile body cannot build a deep tree for later recursive code to walk.
  bool too_deep = false;
  auto limit_depth = [&too_deep](int depth, nlohmann::json::parse_event_t event, nlohmann::json&) {
    if (event == nlohmann::json::parse_event_t::object_start || event == nlohmann::json::parse_event_t::array_start) {
      // `depth` counts the containers around this one, so this container is at depth + 1.
      if (static_cast<size_t>(depth) + 1 > kMaxJsonDepth) {
        too_deep = true;
        return false;
      }
    }
    return true;
  };
  nlohmann::json doc = nlohmann::json::parse(req.body, limit_depth, /*allow_exceptions=*/false);
  if (too_deep) {
    return InvalidArgument("JSON body nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  }
  if (doc.is_discarded()) return InvalidArgument("request body is not valid JSON");
  if (!doc.is_object()) return InvalidArgument("request body must be a JSON object");
  return doc;
}

StatusOr<std::string> RequireString(const nlohmann::json& obj, std::string_view field, size_t max_len) {
  const nlohmann::json* value = FindField(obj, field);
  if (value == nullptr) return InvalidArgument(Field(field) + " is required");
  if (!value->is_string()) return InvalidArgument(Field(field) + " must be a string");
  const auto& s = value->get_ref<const std::string&>();
  if (s.size() > max_len) {
    return InvalidArgument(Field(field) + " must be at most " + std::to_string(max_len) + " bytes");
  }
  return s;
}

StatusOr<std::string> RequireId(const nlohmann::json& obj, std::string_view field) {
  StatusOr<std::string> s = RequireString(obj, field, std::numeric_limits<size_t>::max());
  if (!s.ok()) return s.status();
  Status valid = CheckId(*s, field);
  if (!valid.ok()) return valid;
  return s;
}

StatusOr<int64_t> RequireInt(const nlohmann::json& obj, std::string_view field, int64_t lo, int64_t hi) {
  const nlohmann::json* value = FindField(obj, field);
  auto out_of_range = [&] {
    return InvalidArgument(Field(field) + " must be an integer between " + std::to_string(lo) + " and " +
                           std::to_string(hi));
  };
  if (value == nullptr) return InvalidArgument(Field(field) + " is required");
  // Floats, numeric strings and booleans are refused: "1.5", "2" and true are not quantities.
  if (!value->is_number_integer()) return out_of_range();
  int64_t n = 0;
  if (value->is_number_unsigned()) {
    const auto u = value->get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return out_of_range();
    n = static_cast<int64_t>(u);
  } else {
    n = value->get<int64_t>();
  }
  if (n < lo || n > hi) return out_of_range();
  return n;
}

}  // namespace bff
