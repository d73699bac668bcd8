// bffd: the Backend-for-Frontend daemon. Flags are read here only; everything else lives in libraries.
#include <cstdio>
#include <iostream>

#include <CLI/CLI.hpp>

#include "common/config.h"
#include "common/log.h"
#include "server/daemon.h"
#include "server/keys_command.h"

int main(int argc, char** argv) {
  CLI::App app{"bffd: Backend-for-Frontend daemon for shelf sensors (MQTT/CoAP), mobile and web apps"};
  std::string config_path, http, coap, coaps, admin, mqtt, domain, data, log_level, trace_collector;
  bool check_config = false, version = false;
  app.add_option("--config", config_path, "TOML configuration file (defaults apply when omitted)");
  app.add_option("--http", http, "mobile and web BFF listener, ADDR:PORT (server.http)");
  app.add_option("--coap", coap, "CoAP listener, ADDR:PORT (server.coap)");
  app.add_option("--coaps", coaps, "CoAP over DTLS-PSK listener, ADDR:PORT (server.coaps)");
  app.add_option("--admin", admin, "admin listener: health, faults; loopback by default (server.admin)");
  app.add_option("--mqtt", mqtt, "MQTT broker URI (mqtt.uri)");
  app.add_option("--domain", domain, "'embedded' or a base URL for every domain service (domain.mode)");
  app.add_option("--data", data, "data directory (data_dir)");
  app.add_option("--log-level", log_level, "debug, info, warn or error (log_level)");
  app.add_option("--trace-collector", trace_collector,
                 "OTLP/HTTP base URL to export spans to, e.g. http://127.0.0.1:4318 (tracing.collector_url)");
  app.add_flag("--check-config", check_config, "validate the configuration and exit");
  app.add_flag("--version", version, "print the version and exit");

  // bffd keys ...: options such as --config and --data may follow the subcommand.
  bff::KeysCommand keys_cmd;
  CLI::App* keys = app.add_subcommand("keys", "manage device API keys (stored only as hashes)");
  keys->fallthrough();
  keys->require_subcommand(1);
  CLI::App* keys_add = keys->add_subcommand("add", "create (or replace) a device's key and print it, once");
  keys_add->fallthrough();
  keys_add->add_option("device", keys_cmd.device, "device id")->required();
  keys_add->add_option("--shelf", keys_cmd.shelves, "a shelf the device may read (repeat for more)")->required();
  keys_add->add_option("--rate", keys_cmd.rate_per_s, "messages per second (token bucket rate)");
  keys_add->add_option("--burst", keys_cmd.burst, "burst allowance for catch-up after an outage");
  CLI::App* keys_revoke = keys->add_subcommand("revoke", "revoke a device's key (a running daemon notices)");
  keys_revoke->fallthrough();
  keys_revoke->add_option("device", keys_cmd.device, "device id")->required();
  CLI::App* keys_list = keys->add_subcommand("list", "list devices (never keys)");
  keys_list->fallthrough();
  CLI::App* keys_export = keys->add_subcommand("export-mosquitto", "write the broker's passwd and acl files into DIR");
  keys_export->fallthrough();
  keys_export->add_option("dir", keys_cmd.dir, "output directory")->required();
  CLI11_PARSE(app, argc, argv);

  if (version) {
    std::printf("bffd %s\n", bff::VersionString().c_str());
    return 0;
  }

  bff::Config config;
  if (!config_path.empty()) {
    auto loaded = bff::LoadConfigFile(config_path);
    if (!loaded.ok()) {
      std::fprintf(stderr, "bffd: bad configuration: %s\n", loaded.status().message().c_str());
      return 2;
    }
    config = std::move(loaded).value();
  }
  // Command-line overrides, each naming its setting if it turns out invalid.
  if (!http.empty()) config.server.http = http;
  if (!coap.empty()) config.server.coap = coap;
  if (!coaps.empty()) config.server.coaps = coaps;
  if (!admin.empty()) config.server.admin = admin;
  if (!mqtt.empty()) config.mqtt.uri = mqtt;
  if (!domain.empty()) config.domain.mode = domain;
  if (!data.empty()) config.data_dir = data;
  if (!log_level.empty()) config.log_level = log_level;
  if (!trace_collector.empty()) config.tracing.collector_url = trace_collector;
  bff::Status valid = bff::ValidateConfig(config);
  if (!valid.ok()) {
    std::fprintf(stderr, "bffd: bad configuration: %s\n", valid.message().c_str());
    return 2;
  }
  if (keys->parsed()) {
    if (keys_add->parsed()) keys_cmd.action = "add";
    if (keys_revoke->parsed()) keys_cmd.action = "revoke";
    if (keys_list->parsed()) keys_cmd.action = "list";
    if (keys_export->parsed()) keys_cmd.action = "export-mosquitto";
    return bff::RunKeysCommand(config, keys_cmd);
  }
  if (check_config) {
    std::printf("configuration OK\n");
    return 0;
  }
  bff::log::Level level;
  bff::log::ParseLevel(config.log_level, &level);
  bff::log::SetLevel(level);

  auto daemon = bff::Daemon::Create(config);
  if (!daemon.ok()) {
    bff::log::Error("start-up failed", {{"reason", daemon.status().message()}});
    std::fprintf(stderr, "bffd: cannot start: %s\n", daemon.status().message().c_str());
    return 1;
  }
  int code = (*daemon)->Run();
  daemon.value().reset();
  bff::log::Info("stopped", {{"exit_code", code}});
  return code;
}
