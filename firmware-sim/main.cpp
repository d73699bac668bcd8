// firmware-sim: simulated shelf sensors, one or ten thousand, over MQTT, CoAP or CoAP over DTLS-PSK.
// Flags are read here only; device logic, links and the fleet live in the library.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include <CLI/CLI.hpp>

#include "common/log.h"
#include "firmware-sim/fleet.h"
#include "firmware-sim/keys_file.h"

namespace {

// How long the fleet waits for every device's connection before its first wake.
constexpr int kConnectPatienceS = 60;

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string part; std::getline(in, part, sep);) {
    if (!part.empty()) out.push_back(part);
  }
  return out;
}

int Fail(const std::string& message) {
  std::fprintf(stderr, "firmware-sim: %s\n", message.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace bff::sim;
  CLI::App app{
      "firmware-sim: simulated shelf sensors for bffd's IoT BFF. Each device wakes, reports every slot of its "
      "shelf (msgpack telemetry), takes the acknowledgement with its stock flags (LEDs), and sleeps; unacknowledged "
      "readings stay in its buffer and are resent in order with the same seq."};
  std::string protocol = "mqtt", keys_path, rate_text, report_path, scenario = "steady", log_level = "warn";
  std::string data_dir, prefix = "sim";
  LinkOptions link;
  FleetOptions fleet;
  size_t devices = 0, provision = 0, revoke = 0, buffer = fleet.device.buffer_capacity, window = fleet.device.window;
  double duration_s = 0, interval_s = 10, timeout_s = 5, drain_s = 15, provision_rate = 1, provision_burst = 60;
  double backoff_max_s = 60;
  uint64_t seed = 1;
  bool quiet = false;

  app.add_option("--protocol", protocol, "mqtt, coap or coaps; a comma list splits the devices between them")
      ->capture_default_str();
  app.add_option("--keys", keys_path, "keys file: one device a line, \"device_id shelf_id key\"")->required();
  app.add_option("--devices", devices, "devices to run, the first N of the keys file (default: all)");
  app.add_option("--rate", rate_text,
                 "aggregate readings per second across the fleet, or \"max\": as fast as acknowledged, --window "
                 "outstanding per device (default: duty cycle of --interval)");
  app.add_option("--duration", duration_s, "seconds of taking readings, then up to --drain to deliver the rest (0: until Ctrl-C)")
      ->capture_default_str();
  app.add_option("--interval", interval_s, "duty cycle: seconds a device sleeps between wakes (with --jitter)")
      ->capture_default_str();
  app.add_option("--jitter", fleet.jitter, "± share of each sleep, so a fleet does not wake in step")->capture_default_str();
  app.add_option("--window", window, "readings a device may have outstanding at once")->capture_default_str();
  app.add_option("--buffer", buffer, "unacknowledged readings a device keeps; past it the oldest is dropped (counted)")
      ->capture_default_str();
  app.add_option("--timeout", timeout_s, "seconds a device waits for one acknowledgement")->capture_default_str();
  app.add_option("--backoff-max", backoff_max_s, "longest back-off of a device, seconds (from 1 s, doubling)")
      ->capture_default_str();
  app.add_option("--drain", drain_s, "seconds after --duration to deliver buffered readings")->capture_default_str();
  app.add_option("--seed", seed, "seed of every random choice (shoppers, jitter, faults): same seed, same run")
      ->capture_default_str();
  app.add_option("--scenario", scenario,
                 "steady: slots sell slowly; demo: a few slots of every shelf run empty within a minute")
      ->capture_default_str();
  app.add_option("--slots", fleet.slot_count, "slots per shelf (default: learnt from the first stock flags)");
  app.add_option("--state", fleet.state_file,
                 "state file of the fleet: unacknowledged readings and seqs survive a restart (a simulated reboot)");
  app.add_option("--report", report_path, "write the JSON summary here at the end");
  app.add_option("--mqtt", link.mqtt_uri, "MQTT broker URI")->capture_default_str();
  app.add_option("--coap", link.coap_address, "bffd's CoAP ADDR:PORT")->capture_default_str();
  app.add_option("--coaps", link.coaps_address, "bffd's CoAP over DTLS-PSK ADDR:PORT")->capture_default_str();
  // Faults on purpose.
  app.add_option("--loss", fleet.loss, "share of exchanges lost on the link (0..1): half the requests, half the answers")
      ->capture_default_str();
  app.add_option("--clock-skew", fleet.clock_skew_s, "each device's clock is off by up to ± this many seconds")
      ->capture_default_str();
  app.add_option("--flood", fleet.flood_devices, "the first N devices send every 10 ms and ignore back-off (a refused reading goes again 10 ms later)")
      ->capture_default_str();
  app.add_option("--malformed", fleet.malformed, "share of readings sent as broken msgpack (0..1)")->capture_default_str();
  // Provisioning.
  app.add_option("--provision", provision,
                 "create N devices in bffd's key store (--data), write their keys to --keys, and exit");
  app.add_option("--data", data_dir, "bffd's data directory, for --provision");
  app.add_option("--prefix", prefix, "--provision: device ids <prefix>-00001..")->capture_default_str();
  app.add_option("--provision-rate", provision_rate, "--provision: each key's rate (readings per second)")->capture_default_str();
  app.add_option("--provision-burst", provision_burst, "--provision: each key's burst allowance")->capture_default_str();
  app.add_option("--revoke", revoke, "--provision: then revoke the last N keys (devices with a revoked key)");
  app.add_option("--log-level", log_level, "debug, info, warn or error (JSON lines on stderr)")->capture_default_str();
  app.add_flag("--quiet", quiet, "no progress line");
  CLI11_PARSE(app, argc, argv);

  bff::log::Level level;
  if (!bff::log::ParseLevel(log_level, &level)) return Fail("--log-level: unknown level " + log_level);
  bff::log::SetLevel(level);

  if (provision > 0) {
    if (data_dir.empty()) return Fail("--provision needs --data (bffd's data directory)");
    ProvisionOptions p;
    p.data_dir = data_dir;
    p.devices = provision;
    p.prefix = prefix;
    p.rate_per_s = provision_rate;
    p.burst = provision_burst;
    p.revoke_last = revoke;
    auto made = Provision(p, keys_path);
    if (!made.ok()) return Fail(made.status().message());
    std::fprintf(stderr, "firmware-sim: provisioned %zu devices (%zu revoked); keys in %s\n", made->size(), revoke,
                 keys_path.c_str());
    return 0;
  }

  auto identities = ReadKeysFile(keys_path);
  if (!identities.ok()) return Fail(identities.status().message());
  if (devices > 0 && devices < identities->size()) identities->resize(devices);
  if (identities->empty()) return Fail("no devices in " + keys_path);
  if (!rate_text.empty()) {
    if (rate_text == "max") {
      fleet.rate_max = true;
    } else {
      try {
        fleet.rate = std::stod(rate_text);
      } catch (const std::exception&) {
        return Fail("--rate: a number or \"max\", got " + rate_text);
      }
      if (fleet.rate <= 0) return Fail("--rate: must be above 0");
    }
  }
  if (scenario != "steady" && scenario != "demo") return Fail("--scenario: steady or demo, got " + scenario);
  if (fleet.loss < 0 || fleet.loss > 1 || fleet.malformed < 0 || fleet.malformed > 1) {
    return Fail("--loss and --malformed are shares between 0 and 1");
  }
  fleet.shop.demo = scenario == "demo";
  fleet.shop.seed = seed;
  fleet.seed = seed;
  fleet.duration = std::chrono::milliseconds(static_cast<int64_t>(duration_s * 1000));
  fleet.interval = std::chrono::milliseconds(static_cast<int64_t>(interval_s * 1000));
  fleet.timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  fleet.drain = std::chrono::milliseconds(static_cast<int64_t>(drain_s * 1000));
  fleet.device.buffer_capacity = buffer;
  fleet.device.backoff_max = std::chrono::milliseconds(static_cast<int64_t>(backoff_max_s * 1000));
  fleet.device.backoff_min = std::min(fleet.device.backoff_min, fleet.device.backoff_max);
  fleet.device.window = window;
  fleet.progress_tty = isatty(STDERR_FILENO) != 0;
  fleet.progress_every = std::chrono::milliseconds(fleet.progress_tty ? 1000 : 5000);
  if (!quiet) fleet.progress = &std::cerr;

  // Ctrl-C / SIGTERM: stop taking readings, deliver what is in flight for a moment, save the state.
  // Blocked before any link starts a thread, so that only the waiter below ever takes them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::vector<std::unique_ptr<Link>> links;
  for (const std::string& p : Split(protocol, ',')) {
    bff::StatusOr<std::unique_ptr<Link>> l = bff::InvalidArgument("--protocol: mqtt, coap or coaps, got " + p);
    if (p == "mqtt") l = MakeMqttLink(link);
    if (p == "coap") l = MakeCoapLink(link, false);
    if (p == "coaps") l = MakeCoapLink(link, true);
    if (!l.ok()) return Fail(l.status().message());
    links.push_back(std::move(l).value());
  }
  if (links.empty()) return Fail("--protocol: none given");
  std::vector<Link*> raw;
  for (size_t k = 0; k < links.size(); ++k) {
    bff::Status s = links[k]->Start(DevicesForLink(*identities, k, links.size()));
    if (!s.ok()) return Fail(std::string(links[k]->protocol()) + ": " + s.message());
    raw.push_back(links[k].get());
  }
  // Readings sent before a device's connection is up fail at once and wait out a back-off: let the
  // fleet connect first (devices that cannot, keep trying while the run goes on).
  auto all_connected = [&] {
    size_t up = 0;
    for (auto& l : links) up += l->connected();
    return up >= identities->size();
  };
  auto connect_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(kConnectPatienceS);
  while (!all_connected() && std::chrono::steady_clock::now() < connect_deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (!all_connected()) std::fprintf(stderr, "firmware-sim: not every device is connected yet; starting anyway\n");

  Fleet f(fleet, *identities, raw);
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    if (sig != 0) f.Stop();
  });
  nlohmann::json summary = f.Run();
  for (auto& l : links) l->Stop();
  pthread_kill(waiter.native_handle(), SIGTERM);
  waiter.join();

  summary["protocol"] = protocol;
  summary["rate_target"] = fleet.rate_max ? nlohmann::json("max") : fleet.rate > 0 ? nlohmann::json(fleet.rate) : nlohmann::json(nullptr);
  summary["seed"] = seed;
  if (!report_path.empty()) {
    std::ofstream out(report_path, std::ios::trunc);
    out << summary.dump(2) << "\n";
    if (!out) return Fail("cannot write the report to " + report_path);
  }
  std::cout << summary.dump() << std::endl;
  return 0;
}
