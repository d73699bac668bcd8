// TOML configuration loading: every key is known, typed and range-checked; errors name the key.
#include "common/config.h"

#include <cctype>
#include <set>
#include <sstream>

#include <toml++/toml.h>

#include "common/ip_network.h"

namespace bff {
namespace {

const std::set<std::string> kServiceNames = {"catalog",    "inventory", "reviews",   "recommendations",
                                             "promotions", "cart",      "analytics", "identity"};

class Reader {
 public:
  explicit Reader(std::string origin) : origin_(std::move(origin)) {}

  Status Fail(const std::string& key, const std::string& what) {
    if (status_.ok()) status_ = InvalidArgument(origin_ + ": " + key + ": " + what);
    return status_;
  }

  void Str(const toml::table& t, const std::string& section, const char* name, std::string* out) {
    Mark(section, name);
    const toml::node* n = t.get(name);
    if (!n) return;
    if (auto v = n->value<std::string>(); v && n->is_string()) {
      *out = *v;
    } else {
      Fail(Key(section, name), "expected a string");
    }
  }
  void Int(const toml::table& t, const std::string& section, const char* name, int* out) {
    Mark(section, name);
    const toml::node* n = t.get(name);
    if (!n) return;
    if (!n->is_integer()) {
      Fail(Key(section, name), "expected an integer");
      return;
    }
    int64_t v = n->as_integer()->get();
    if (v < INT32_MIN || v > INT32_MAX) {
      Fail(Key(section, name), "out of range");
      return;
    }
    *out = static_cast<int>(v);
  }
  void Bool(const toml::table& t, const std::string& section, const char* name, bool* out) {
    Mark(section, name);
    const toml::node* n = t.get(name);
    if (!n) return;
    if (!n->is_boolean()) {
      Fail(Key(section, name), "expected true or false");
      return;
    }
    *out = n->as_boolean()->get();
  }
  void Strings(const toml::table& t, const std::string& section, const char* name, std::vector<std::string>* out) {
    Mark(section, name);
    const toml::node* n = t.get(name);
    if (!n) return;
    const toml::array* a = n->as_array();
    if (!a) {
      Fail(Key(section, name), "expected a list of strings");
      return;
    }
    std::vector<std::string> values;
    for (const toml::node& v : *a) {
      if (!v.is_string()) {
        Fail(Key(section, name), "expected a list of strings");
        return;
      }
      values.push_back(v.as_string()->get());
    }
    *out = std::move(values);
  }
  const toml::table* Table(const toml::table& t, const std::string& section, const char* name) {
    Mark(section, name);
    const toml::node* n = t.get(name);
    if (!n) return nullptr;
    if (!n->is_table()) {
      Fail(Key(section, name), "expected a table");
      return nullptr;
    }
    return n->as_table();
  }
  // Reports the first key of `t` that was never read.
  void RejectUnknown(const toml::table& t, const std::string& section) {
    for (auto&& [k, v] : t) {
      std::string name(k.str());
      if (!known_.count(Key(section, name))) {
        Fail(Key(section, name), "unknown setting");
        return;
      }
    }
  }
  void Mark(const std::string& section, const std::string& name) { known_.insert(Key(section, name)); }
  const Status& status() const { return status_; }

  static std::string Key(const std::string& section, const std::string& name) {
    return section.empty() ? name : section + "." + name;
  }

 private:
  std::string origin_;
  Status status_;
  std::set<std::string> known_;
};

nlohmann::json TomlToJson(const toml::node& n) {
  if (n.is_table()) {
    nlohmann::json j = nlohmann::json::object();
    for (auto&& [k, v] : *n.as_table()) j[std::string(k.str())] = TomlToJson(v);
    return j;
  }
  if (n.is_array()) {
    nlohmann::json j = nlohmann::json::array();
    for (auto&& v : *n.as_array()) j.push_back(TomlToJson(v));
    return j;
  }
  if (n.is_integer()) return n.as_integer()->get();
  if (n.is_floating_point()) return n.as_floating_point()->get();
  if (n.is_boolean()) return n.as_boolean()->get();
  if (n.is_string()) return n.as_string()->get();
  return nullptr;
}

StatusOr<Config> FromTable(const toml::table& root, const std::string& origin) {
  Config c;
  Reader r(origin);
  r.Str(root, "", "data_dir", &c.data_dir);
  r.Str(root, "", "log_level", &c.log_level);
  if (auto* t = r.Table(root, "", "server")) {
    r.Str(*t, "server", "http", &c.server.http);
    r.Str(*t, "server", "admin", &c.server.admin);
    r.Str(*t, "server", "coap", &c.server.coap);
    r.Str(*t, "server", "coaps", &c.server.coaps);
    r.Int(*t, "server", "threads", &c.server.threads);
    r.Int(*t, "server", "drain_timeout_ms", &c.server.drain_timeout_ms);
    r.Bool(*t, "server", "metrics", &c.server.metrics);
    r.Int(*t, "server", "http_threads", &c.server.http_threads);
    r.Int(*t, "server", "http_max_connections", &c.server.http_max_connections);
    r.Int(*t, "server", "http_max_header_bytes", &c.server.http_max_header_bytes);
    r.Int(*t, "server", "http_header_timeout_ms", &c.server.http_header_timeout_ms);
    r.Int(*t, "server", "http_body_timeout_ms", &c.server.http_body_timeout_ms);
    r.Int(*t, "server", "http_idle_timeout_ms", &c.server.http_idle_timeout_ms);
    r.Int(*t, "server", "http_write_timeout_ms", &c.server.http_write_timeout_ms);
    r.Int(*t, "server", "http_max_requests_per_connection", &c.server.http_max_requests_per_connection);
    r.Int(*t, "server", "request_timeout_ms", &c.server.request_timeout_ms);
    r.Int(*t, "server", "max_body_bytes", &c.server.max_body_bytes);
    r.RejectUnknown(*t, "server");
  }
  if (auto* t = r.Table(root, "", "mqtt")) {
    r.Bool(*t, "mqtt", "enabled", &c.mqtt.enabled);
    r.Str(*t, "mqtt", "uri", &c.mqtt.uri);
    r.Str(*t, "mqtt", "client_id", &c.mqtt.client_id);
    r.Bool(*t, "mqtt", "shared_subscription", &c.mqtt.shared_subscription);
    r.Int(*t, "mqtt", "max_in_flight", &c.mqtt.max_in_flight);
    r.RejectUnknown(*t, "mqtt");
  }
  if (auto* t = r.Table(root, "", "domain")) {
    r.Str(*t, "domain", "mode", &c.domain.mode);
    r.Int(*t, "domain", "timeout_ms", &c.domain.timeout_ms);
    r.Int(*t, "domain", "max_connections_per_service", &c.domain.max_connections_per_service);
    r.Int(*t, "domain", "connect_timeout_ms", &c.domain.connect_timeout_ms);
    r.Bool(*t, "domain", "coalesce_reads", &c.domain.coalesce_reads);
    r.Int(*t, "domain", "password_iterations", &c.domain.password_iterations);
    if (auto* s = r.Table(*t, "domain", "services")) {
      for (auto&& [k, v] : *s) {
        std::string name(k.str());
        r.Mark("domain.services", name);
        if (!kServiceNames.count(name)) {
          r.Fail("domain.services." + name, "unknown service");
        } else if (!v.is_string()) {
          r.Fail("domain.services." + name, "expected a base URL string");
        } else {
          c.domain.services[name] = v.as_string()->get();
        }
      }
    }
    if (auto* f = r.Table(*t, "domain", "faults")) {
      c.domain.faults = TomlToJson(*f);
      for (auto&& [k, v] : *f) {
        std::string name(k.str());
        if (!kServiceNames.count(name)) r.Fail("domain.faults." + name, "unknown service");
      }
    }
    r.RejectUnknown(*t, "domain");
  }
  if (auto* t = r.Table(root, "", "mobile")) {
    r.Int(*t, "mobile", "max_age_s", &c.mobile.max_age_s);
    r.Int(*t, "mobile", "stale_while_revalidate_s", &c.mobile.stale_while_revalidate_s);
    r.Int(*t, "mobile", "stale_if_error_s", &c.mobile.stale_if_error_s);
    r.Int(*t, "mobile", "cache_max_entries", &c.mobile.cache_max_entries);
    r.Int(*t, "mobile", "cache_max_bytes", &c.mobile.cache_max_bytes);
    r.Int(*t, "mobile", "catalog_timeout_ms", &c.mobile.catalog_timeout_ms);
    r.Int(*t, "mobile", "cart_timeout_ms", &c.mobile.cart_timeout_ms);
    r.Int(*t, "mobile", "retry_after_s", &c.mobile.retry_after_s);
    r.Str(*t, "mobile", "token_issuer", &c.mobile.token_issuer);
    r.Str(*t, "mobile", "token_audience", &c.mobile.token_audience);
    r.RejectUnknown(*t, "mobile");
  }
  if (auto* t = r.Table(root, "", "web")) {
    r.Int(*t, "web", "catalog_timeout_ms", &c.web.catalog_timeout_ms);
    r.Int(*t, "web", "inventory_timeout_ms", &c.web.inventory_timeout_ms);
    r.Int(*t, "web", "reviews_timeout_ms", &c.web.reviews_timeout_ms);
    r.Int(*t, "web", "recommendations_timeout_ms", &c.web.recommendations_timeout_ms);
    r.Int(*t, "web", "promotions_timeout_ms", &c.web.promotions_timeout_ms);
    r.Int(*t, "web", "cart_timeout_ms", &c.web.cart_timeout_ms);
    r.Int(*t, "web", "session_idle_s", &c.web.session_idle_s);
    r.Int(*t, "web", "session_absolute_s", &c.web.session_absolute_s);
    r.Bool(*t, "web", "cookie_secure", &c.web.cookie_secure);
    r.Str(*t, "web", "cookie_name", &c.web.cookie_name);
    r.Int(*t, "web", "retry_after_s", &c.web.retry_after_s);
    r.RejectUnknown(*t, "web");
  }
  if (auto* t = r.Table(root, "", "security")) {
    r.Int(*t, "security", "credential_ttl_s", &c.security.credential_ttl_s);
    r.RejectUnknown(*t, "security");
  }
  if (auto* t = r.Table(root, "", "iot")) {
    r.Int(*t, "iot", "demo_fleet", &c.iot.demo_fleet);
    r.Int(*t, "iot", "stock_freshness_s", &c.iot.stock_freshness_s);
    r.Int(*t, "iot", "max_payload_bytes", &c.iot.max_payload_bytes);
    r.Int(*t, "iot", "inventory_timeout_ms", &c.iot.inventory_timeout_ms);
    r.Int(*t, "iot", "coap_session_idle_s", &c.iot.coap_session_idle_s);
    r.Int(*t, "iot", "coap_receive_buffer_bytes", &c.iot.coap_receive_buffer_bytes);
    r.RejectUnknown(*t, "iot");
  }
  if (auto* t = r.Table(root, "", "rate_limit")) {
    r.Int(*t, "rate_limit", "client_rps", &c.rate_limit.client_rps);
    r.Int(*t, "rate_limit", "client_burst", &c.rate_limit.client_burst);
    r.Int(*t, "rate_limit", "user_rps", &c.rate_limit.user_rps);
    r.Int(*t, "rate_limit", "user_burst", &c.rate_limit.user_burst);
    r.Int(*t, "rate_limit", "logins_per_minute", &c.rate_limit.logins_per_minute);
    r.Int(*t, "rate_limit", "login_burst", &c.rate_limit.login_burst);
    r.Strings(*t, "rate_limit", "trusted_proxies", &c.rate_limit.trusted_proxies);
    r.Int(*t, "rate_limit", "max_tracked", &c.rate_limit.max_tracked);
    r.RejectUnknown(*t, "rate_limit");
  }
  if (auto* t = r.Table(root, "", "tracing")) {
    r.Str(*t, "tracing", "collector_url", &c.tracing.collector_url);
    r.Bool(*t, "tracing", "log_spans", &c.tracing.log_spans);
    r.Int(*t, "tracing", "max_queue", &c.tracing.max_queue);
    r.Int(*t, "tracing", "max_batch", &c.tracing.max_batch);
    r.Int(*t, "tracing", "max_delay_ms", &c.tracing.max_delay_ms);
    r.Int(*t, "tracing", "timeout_ms", &c.tracing.timeout_ms);
    r.Str(*t, "tracing", "service_name", &c.tracing.service_name);
    r.Int(*t, "tracing", "sample_percent", &c.tracing.sample_percent);
    r.RejectUnknown(*t, "tracing");
  }
  r.RejectUnknown(root, "");
  if (!r.status().ok()) return r.status();
  return c;
}

Status CheckHostPort(const std::string& key, const std::string& v) {
  size_t colon = v.rfind(':');
  if (colon == std::string::npos) return InvalidArgument(key + ": expected HOST:PORT, got '" + v + "'");
  std::string port = v.substr(colon + 1);
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(port) > 65535) {
    return InvalidArgument(key + ": bad port in '" + v + "'");
  }
  std::string host = v.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') return Status::Ok();
  if (host.find_first_of(" /[]") != std::string::npos) return InvalidArgument(key + ": bad host in '" + v + "'");
  return Status::Ok();
}

Status CheckUrl(const std::string& key, const std::string& v) {
  if (v.rfind("http://", 0) != 0 || v.size() <= 7) {
    return InvalidArgument(key + ": expected an http:// base URL, got '" + v + "'");
  }
  return Status::Ok();
}

Status CheckRange(const std::string& key, int v, int lo, int hi) {
  if (v < lo || v > hi) {
    return InvalidArgument(key + ": " + std::to_string(v) + " is outside " + std::to_string(lo) + ".." +
                           std::to_string(hi));
  }
  return Status::Ok();
}

bool IsCookieName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char ch : name) {
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-' || ch == '.')) return false;
  }
  return true;
}

}  // namespace

std::string Config::BaseUrlFor(const std::string& service) const {
  auto it = domain.services.find(service);
  if (it != domain.services.end()) return it->second;
  return domain.mode;
}

StatusOr<Config> ParseConfig(const std::string& text, const std::string& origin) {
  toml::table root;
  try {
    root = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    std::ostringstream msg;
    msg << origin << ":" << e.source().begin.line << ":" << e.source().begin.column << ": " << e.description();
    return InvalidArgument(msg.str());
  }
  auto c = FromTable(root, origin);
  if (!c.ok()) return c.status();
  Status s = ValidateConfig(*c);
  if (!s.ok()) return Status(s.code(), origin + ": " + s.message());
  return c;
}

StatusOr<Config> LoadConfigFile(const std::string& path) {
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    std::ostringstream msg;
    msg << path << ":" << e.source().begin.line << ":" << e.source().begin.column << ": " << e.description();
    return InvalidArgument(msg.str());
  }
  auto c = FromTable(root, path);
  if (!c.ok()) return c.status();
  Status s = ValidateConfig(*c);
  if (!s.ok()) return Status(s.code(), path + ": " + s.message());
  return c;
}

Status ValidateConfig(const Config& c) {
  Status s;
  auto check = [&](Status st) {
    if (s.ok() && !st.ok()) s = std::move(st);
  };
  check(CheckHostPort("server.http", c.server.http));
  check(CheckHostPort("server.admin", c.server.admin));
  // An empty address turns that CoAP listener off.
  if (!c.server.coap.empty()) check(CheckHostPort("server.coap", c.server.coap));
  if (!c.server.coaps.empty()) check(CheckHostPort("server.coaps", c.server.coaps));
  check(CheckRange("server.threads", c.server.threads, 1, 256));
  check(CheckRange("server.drain_timeout_ms", c.server.drain_timeout_ms, 0, 600000));
  check(CheckRange("server.http_threads", c.server.http_threads, 1, 256));
  check(CheckRange("server.http_max_connections", c.server.http_max_connections, 1, 10000000));
  check(CheckRange("server.http_max_header_bytes", c.server.http_max_header_bytes, 1024, 1 << 20));
  check(CheckRange("server.http_header_timeout_ms", c.server.http_header_timeout_ms, 100, 600000));
  check(CheckRange("server.http_body_timeout_ms", c.server.http_body_timeout_ms, 100, 600000));
  check(CheckRange("server.http_idle_timeout_ms", c.server.http_idle_timeout_ms, 100, 3600000));
  check(CheckRange("server.http_write_timeout_ms", c.server.http_write_timeout_ms, 100, 600000));
  check(CheckRange("server.http_max_requests_per_connection", c.server.http_max_requests_per_connection, 1, INT32_MAX));
  check(CheckRange("server.request_timeout_ms", c.server.request_timeout_ms, 10, 600000));
  check(CheckRange("server.max_body_bytes", c.server.max_body_bytes, 256, 64 << 20));
  check(CheckRange("mobile.max_age_s", c.mobile.max_age_s, 0, 31536000));
  check(CheckRange("mobile.stale_while_revalidate_s", c.mobile.stale_while_revalidate_s, 0, 31536000));
  check(CheckRange("mobile.stale_if_error_s", c.mobile.stale_if_error_s, 0, 31536000));
  check(CheckRange("mobile.cache_max_entries", c.mobile.cache_max_entries, 1, 100000000));
  check(CheckRange("mobile.cache_max_bytes", c.mobile.cache_max_bytes, 1024, INT32_MAX));
  check(CheckRange("mobile.catalog_timeout_ms", c.mobile.catalog_timeout_ms, 1, 600000));
  check(CheckRange("mobile.cart_timeout_ms", c.mobile.cart_timeout_ms, 1, 600000));
  check(CheckRange("mobile.retry_after_s", c.mobile.retry_after_s, 1, 86400));
  if (c.mobile.token_issuer.empty()) check(InvalidArgument("mobile.token_issuer: must not be empty"));
  if (c.mobile.token_audience.empty()) check(InvalidArgument("mobile.token_audience: must not be empty"));
  check(CheckRange("web.catalog_timeout_ms", c.web.catalog_timeout_ms, 1, 600000));
  check(CheckRange("web.inventory_timeout_ms", c.web.inventory_timeout_ms, 1, 600000));
  check(CheckRange("web.reviews_timeout_ms", c.web.reviews_timeout_ms, 1, 600000));
  check(CheckRange("web.recommendations_timeout_ms", c.web.recommendations_timeout_ms, 1, 600000));
  check(CheckRange("web.promotions_timeout_ms", c.web.promotions_timeout_ms, 1, 600000));
  check(CheckRange("web.cart_timeout_ms", c.web.cart_timeout_ms, 1, 600000));
  check(CheckRange("web.session_idle_s", c.web.session_idle_s, 10, 31536000));
  check(CheckRange("web.session_absolute_s", c.web.session_absolute_s, 10, 31536000));
  check(CheckRange("web.retry_after_s", c.web.retry_after_s, 1, 86400));
  if (!IsCookieName(c.web.cookie_name)) check(InvalidArgument("web.cookie_name: not a valid cookie name: '" + c.web.cookie_name + "'"));
  if (c.mqtt.uri.rfind("tcp://", 0) != 0 && c.mqtt.uri.rfind("mqtt://", 0) != 0 && c.mqtt.uri.rfind("ssl://", 0) != 0) {
    check(InvalidArgument("mqtt.uri: expected tcp://HOST:PORT (or mqtt://, ssl://), got '" + c.mqtt.uri + "'"));
  }
  if (c.mqtt.client_id.empty() || c.mqtt.client_id.size() > 64) check(InvalidArgument("mqtt.client_id: 1..64 characters"));
  check(CheckRange("mqtt.max_in_flight", c.mqtt.max_in_flight, 1, 1000000));
  if (c.domain.mode != "embedded") check(CheckUrl("domain.mode", c.domain.mode));
  for (auto& [name, url] : c.domain.services) {
    if (!kServiceNames.count(name)) check(InvalidArgument("domain.services." + name + ": unknown service"));
    check(CheckUrl("domain.services." + name, url));
  }
  check(CheckRange("domain.timeout_ms", c.domain.timeout_ms, 1, 600000));
  check(CheckRange("domain.max_connections_per_service", c.domain.max_connections_per_service, 1, 100000));
  check(CheckRange("domain.connect_timeout_ms", c.domain.connect_timeout_ms, 1, 600000));
  check(CheckRange("domain.password_iterations", c.domain.password_iterations, 1000, 10000000));
  if (!c.domain.faults.is_object()) check(InvalidArgument("domain.faults: expected a table"));
  check(CheckRange("security.credential_ttl_s", c.security.credential_ttl_s, 5, 3600));
  check(CheckRange("iot.demo_fleet", c.iot.demo_fleet, 0, 100000));
  check(CheckRange("iot.stock_freshness_s", c.iot.stock_freshness_s, 0, 86400));
  check(CheckRange("iot.max_payload_bytes", c.iot.max_payload_bytes, 64, 65536));
  check(CheckRange("iot.inventory_timeout_ms", c.iot.inventory_timeout_ms, 1, 600000));
  check(CheckRange("iot.coap_session_idle_s", c.iot.coap_session_idle_s, 1, 86400));
  check(CheckRange("iot.coap_receive_buffer_bytes", c.iot.coap_receive_buffer_bytes, 65536, 1 << 30));
  check(CheckRange("rate_limit.client_rps", c.rate_limit.client_rps, 0, 10000000));
  check(CheckRange("rate_limit.client_burst", c.rate_limit.client_burst, 1, 10000000));
  check(CheckRange("rate_limit.user_rps", c.rate_limit.user_rps, 0, 10000000));
  check(CheckRange("rate_limit.user_burst", c.rate_limit.user_burst, 1, 10000000));
  check(CheckRange("rate_limit.logins_per_minute", c.rate_limit.logins_per_minute, 0, 1000000));
  check(CheckRange("rate_limit.login_burst", c.rate_limit.login_burst, 1, 1000000));
  check(CheckRange("rate_limit.max_tracked", c.rate_limit.max_tracked, 100, 100000000));
  for (const std::string& proxy : c.rate_limit.trusted_proxies) {
    if (auto n = IpNetwork::Parse(proxy); !n.ok()) check(InvalidArgument("rate_limit.trusted_proxies: " + n.status().message()));
  }
  if (!c.tracing.collector_url.empty()) check(CheckUrl("tracing.collector_url", c.tracing.collector_url));
  check(CheckRange("tracing.max_queue", c.tracing.max_queue, 1, 131072));
  if (c.tracing.max_batch < 1 || c.tracing.max_batch > c.tracing.max_queue) {
    check(InvalidArgument("tracing.max_batch: must be 1..max_queue, got " + std::to_string(c.tracing.max_batch)));
  }
  check(CheckRange("tracing.max_delay_ms", c.tracing.max_delay_ms, 1, 60000));
  check(CheckRange("tracing.sample_percent", c.tracing.sample_percent, 0, 100));
  check(CheckRange("tracing.timeout_ms", c.tracing.timeout_ms, 1, 300000));
  if (c.tracing.service_name.empty() || c.tracing.service_name.size() > 128) {
    check(InvalidArgument("tracing.service_name: 1..128 characters"));
  }
  if (c.data_dir.empty()) check(InvalidArgument("data_dir: must not be empty"));
  static const std::set<std::string> kLevels = {"debug", "info", "warn", "error"};
  if (!kLevels.count(c.log_level)) check(InvalidArgument("log_level: expected debug, info, warn or error, got '" + c.log_level + "'"));
  return s;
}

std::string VersionString() { return BFF_VERSION; }

}  // namespace bff
