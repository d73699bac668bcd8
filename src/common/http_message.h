// Plain HTTP request/response value types shared by listeners, transports and the domain services.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bff {

// Ordered header list with case-insensitive lookup; names keep the case they were given.
class Headers {
 public:
  using Entry = std::pair<std::string, std::string>;

  // Returns the first value for `name`, or an empty view when absent.
  std::string_view Get(std::string_view name) const;
  bool Has(std::string_view name) const;
  // Replaces every existing value for `name`.
  void Set(std::string name, std::string value);
  void Add(std::string name, std::string value);
  void Remove(std::string_view name);

  const std::vector<Entry>& entries() const { return entries_; }
  bool empty() const { return entries_.empty(); }
  auto begin() const { return entries_.begin(); }
  auto end() const { return entries_.end(); }

 private:
  std::vector<Entry> entries_;
};

bool EqualsIgnoreCase(std::string_view a, std::string_view b);

struct HttpRequest {
  std::string method = "GET";
  std::string path;    // decoded path without query, e.g. "/catalog/v1/products/SKU-1"
  std::string query;   // raw query string without '?', e.g. "limit=10&cursor=abc"
  Headers headers;
  std::string body;
  // The address of the connection's other end, without port ("127.0.0.1", "::1"); empty when unknown.
  // What a rate limit keys on when no trusted proxy names the client.
  std::string peer;

  // Value of a query parameter (percent-decoded), or empty when absent.
  std::string QueryParam(std::string_view name) const;
  bool HasQueryParam(std::string_view name) const;
  std::string Target() const { return query.empty() ? path : path + "?" + query; }
};

struct HttpResponse {
  int status = 200;
  Headers headers;
  std::string body;

  static HttpResponse Json(int status, std::string body);
};

std::string PercentDecode(std::string_view s, bool plus_as_space = true);
std::string PercentEncode(std::string_view s);
// Parses "a=1&b=2" (application/x-www-form-urlencoded); later duplicates are ignored.
std::vector<std::pair<std::string, std::string>> ParseForm(std::string_view body);
std::string_view HttpReason(int status);

}  // namespace bff
