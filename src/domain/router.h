// Method + path routing for the reference domain services, with {name} segments for ids.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/http_message.h"
#include "observability/span.h"
#include "domain/domain_services.h"

namespace bff::domain {

// One request as a handler sees it.
struct Call {
  HttpRequest req;
  std::vector<std::string> params;  // values of the pattern's {name} segments, in order
  std::string subject;              // end user or device from the internal credential; empty if none
  std::string trace_id;
  ActiveSpan span;  // this request's server span (inert when tracing is off)
  Responder done;  // taken by handlers that answer later
};

// A handler answers at once with a response, or returns nullopt after taking call.done to answer later.
using Reply = std::optional<HttpResponse>;
using Handler = std::function<Reply(Call&)>;

class Router {
 public:
  // `pattern` like "/catalog/v1/products/{sku}"; every {name} segment must be a valid id.
  void Add(std::string method, std::string_view pattern, Handler handler);

  struct Match {
    const Handler* handler = nullptr;  // set when method and path matched
    const std::string* pattern = nullptr;  // the matched route's pattern, for span names
    std::vector<std::string> params;
    std::string allow;          // "GET, POST" when the path matched but the method did not
    std::string invalid_param;  // name of a {name} segment that is not a valid id
  };
  Match Find(std::string_view method, std::string_view path) const;

 private:
  struct Segment {
    std::string text;
    bool param = false;
  };
  struct Route {
    std::string method;
    std::string pattern;
    std::vector<Segment> segments;
    Handler handler;
  };
  std::vector<Route> routes_;
};

std::vector<std::string_view> SplitPath(std::string_view path);

}  // namespace bff::domain
