// Method + path routing for the reference domain services.
#include "domain/router.h"

#include "domain/http_util.h"

namespace bff::domain {

std::vector<std::string_view> SplitPath(std::string_view path) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (pos < path.size()) {
    if (path[pos] == '/') {
      ++pos;
      continue;
    }
    size_t end = path.find('/', pos);
    if (end == std::string_view::npos) end = path.size();
    out.push_back(path.substr(pos, end - pos));
    pos = end;
  }
  // A trailing or doubled slash is a different path: keep it distinguishable.
  if (!path.empty() && path.back() == '/' && path.size() > 1) out.emplace_back();
  return out;
}

void Router::Add(std::string method, std::string_view pattern, Handler handler) {
  Route r;
  r.method = std::move(method);
  r.pattern = std::string(pattern);
  for (std::string_view seg : SplitPath(pattern)) {
    Segment s;
    if (seg.size() >= 2 && seg.front() == '{' && seg.back() == '}') {
      s.param = true;
      s.text = std::string(seg.substr(1, seg.size() - 2));
    } else {
      s.text = std::string(seg);
    }
    r.segments.push_back(std::move(s));
  }
  r.handler = std::move(handler);
  routes_.push_back(std::move(r));
}

Router::Match Router::Find(std::string_view method, std::string_view path) const {
  Match m;
  if (path.find("//") != std::string_view::npos) return m;
  std::vector<std::string_view> parts = SplitPath(path);
  for (const Route& r : routes_) {
    if (r.segments.size() != parts.size()) continue;
    bool ok = true;
    std::vector<std::string> params;
    std::string invalid;
    for (size_t i = 0; i < parts.size() && ok; ++i) {
      const Segment& s = r.segments[i];
      if (!s.param) {
        ok = s.text == parts[i];
      } else {
        // Reported after the whole route matched, so an odd id never masks a 404 or 405.
        if (!IsValidId(parts[i]) && invalid.empty()) invalid = s.text;
        params.emplace_back(parts[i]);
      }
    }
    if (!ok) continue;
    if (r.method != method) {
      if (!m.allow.empty()) m.allow += ", ";
      m.allow += r.method;
      continue;
    }
    m.handler = &r.handler;
    m.pattern = &r.pattern;
    m.params = std::move(params);
    m.invalid_param = std::move(invalid);
    m.allow.clear();
    return m;
  }
  return m;
}

}  // namespace bff::domain
