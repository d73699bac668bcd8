// The embedded reference domain behind the BFFs, built once per fuzzing process (never per input) and
// kept until exit: scheduler threads, domain services, typed clients, a device key store.
#pragma once

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "common/log.h"
#include "common/scheduler.h"
#include "fuzz_check.h"
#include "domain/domain_services.h"
#include "domain/seed.h"
#include "downstream/clients.h"
#include "downstream/in_process_transport.h"
#include "security/api_key_store.h"
#include "security/internal_credential.h"

namespace bff::fuzz {

// Scheduler threads of the fixture: as many as bffd's smallest configuration.
inline constexpr int kFixtureThreads = 2;
// Seeded passwords are hashed at start and on every login; the production cost would make each
// login input take a tenth of a second.
inline constexpr int kFixturePasswordIterations = 1000;
// An answer that takes longer than this is a hang (the handlers' own timeouts are far shorter).
inline constexpr std::chrono::seconds kAnswerDeadline{10};

// Directories made by MakeTempDir, removed when the process exits normally (after a crash they stay,
// next to the reproducer's state).
inline std::vector<std::string>& TempDirs() {
  static std::vector<std::string>* dirs = new std::vector<std::string>;
  return *dirs;
}

// A fresh directory under TMPDIR, else /dev/shm (the domain's SQLite syncs on every write, which on a
// disk would make writing inputs the slowest), else /tmp.
inline std::string MakeTempDir() {
  const char* env = std::getenv("TMPDIR");
  std::string base = env && *env ? env : (access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
  std::string pattern = base + "/bff-fuzz-XXXXXX";
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) SetupFailed("mkdtemp " + pattern);
  if (TempDirs().empty()) {
    std::atexit([] {
      std::error_code ignored;
      for (const std::string& d : TempDirs()) std::filesystem::remove_all(d, ignored);
    });
  }
  TempDirs().push_back(buf.data());
  return buf.data();
}

struct DomainFixture {
  DomainFixture() : work(boost::asio::make_work_guard(io)), data_dir(MakeTempDir()) {
    // Every log line is still formatted (that code runs on client input too) but not printed: millions of
    // refusals would drown libFuzzer's own report.
    log::SetSink([](std::string_view) {});
    for (int i = 0; i < kFixtureThreads; ++i) threads.emplace_back([this] { io.run(); });
    DomainOptions d;
    d.data_dir = data_dir;
    d.password_iterations = kFixturePasswordIterations;
    auto created = DomainServices::Create(d, sched);
    if (!created.ok()) SetupFailed("domain: " + created.status().ToString());
    domain = std::move(created).value();
    transport = std::make_unique<InProcessTransport>(*domain, sched);
    auto secret = LoadOrCreateInternalSecret(data_dir);
    if (!secret.ok()) SetupFailed("internal secret: " + secret.status().ToString());
    minter = std::make_unique<CredentialMinter>(*secret);
    clients = std::make_unique<DownstreamClients>(*transport, *minter, sched, domain.get());
    auto store = ApiKeyStore::Open(data_dir);
    if (!store.ok()) SetupFailed("key store: " + store.status().ToString());
    keys = std::move(store).value();
  }

  boost::asio::io_context io;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work;
  std::vector<std::thread> threads;
  AsioScheduler sched{io};
  std::string data_dir;
  std::unique_ptr<DomainServices> domain;
  std::unique_ptr<Transport> transport;
  std::unique_ptr<CredentialMinter> minter;
  std::unique_ptr<DownstreamClients> clients;
  std::unique_ptr<ApiKeyStore> keys;
};

// Calls `start(done)` and waits for `done`; a second call of `done`, or none within kAnswerDeadline,
// is a finding. The callback may outlive the wait (a late second call must still be caught).
template <typename Reply, typename Start>
Reply AnswerOnce(const char* what, Start&& start) {
  struct Once {
    std::atomic<int> calls{0};
    std::promise<Reply> promise;
  };
  auto once = std::make_shared<Once>();
  std::future<Reply> answered = once->promise.get_future();
  start([once, what](Reply r) {
    if (once->calls.fetch_add(1) != 0) Finding(std::string(what) + " answered twice");
    once->promise.set_value(std::move(r));
  });
  if (answered.wait_for(kAnswerDeadline) != std::future_status::ready) Finding(std::string(what) + " never answered");
  return answered.get();
}

}  // namespace bff::fuzz
