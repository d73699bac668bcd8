// Checks that exported password lines are accepted by a real mosquitto broker (skipped when not installed).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>

#include <gtest/gtest.h>

#include "security/api_key_store.h"
#include "support/test_support.h"

namespace bff {
namespace {

constexpr char kBroker[] = "/usr/sbin/mosquitto";
constexpr char kPublisher[] = "/usr/bin/mosquitto_pub";
constexpr auto kDeadline = std::chrono::seconds(20);

int FreeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = -1;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

bool Accepting(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

// Publishes one QoS 1 message as `user`; returns mosquitto_pub's exit status (0 = accepted).
int Publish(int port, const std::string& user, const std::string& password, const std::string& log_dir) {
  testing::ChildProcess pub(kPublisher,
                            {"-h", "127.0.0.1", "-p", std::to_string(port), "-u", user, "-P", password, "-t",
                             "iot/v1/" + user + "/telemetry", "-m", "x", "-q", "1", "-V", "mqttv311"},
                            log_dir);
  return pub.Wait(kDeadline);
}

TEST(MosquittoPasswordFileTest, BrokerAcceptsExportedKeysAndRefusesOthers) {
  if (access(kBroker, X_OK) != 0 || access(kPublisher, X_OK) != 0) GTEST_SKIP() << "mosquitto is not installed";

  testing::TempDir dir;
  auto store = ApiKeyStore::Open(dir.path() + "/data");
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  auto key = (*store)->Add("sensor-1", {"S1"});
  auto revoked_key = (*store)->Add("sensor-2", {"S1"});
  ASSERT_TRUE(key.ok() && revoked_key.ok());
  ASSERT_TRUE((*store)->Revoke("sensor-2").ok());

  std::string lines;
  for (const auto& line : (*store)->MosquittoPasswordLines()) lines += line + "\n";
  std::string password_file = dir.path() + "/passwd";
  ASSERT_TRUE(WriteSecretFile(password_file, lines).ok());

  int port = FreeLoopbackPort();
  ASSERT_GT(port, 0);
  // Run as ourselves: as root, mosquitto would otherwise switch to a user who cannot read the temp dir.
  const passwd* pw = getpwuid(getuid());
  std::string conf = dir.path() + "/mosquitto.conf";
  {
    std::ofstream out(conf);
    out << "listener " << port << " 127.0.0.1\n"
        << "allow_anonymous false\n"
        << "password_file " << password_file << "\n"
        << "persistence false\n"
        << "log_dest stderr\n"
        << "log_type error\nlog_type warning\nlog_type notice\n";
    if (pw != nullptr) out << "user " << pw->pw_name << "\n";
  }
  testing::ChildProcess broker(kBroker, {"-c", conf}, dir.path());
  ASSERT_TRUE(testing::WaitFor([&] { return Accepting(port) || !broker.running(); }, kDeadline));
  ASSERT_TRUE(broker.running()) << broker.Stderr();

  EXPECT_EQ(Publish(port, "sensor-1", *key, dir.path()), 0) << broker.Stderr();
  std::string wrong = *key;
  wrong[0] = wrong[0] == 'a' ? 'b' : 'a';
  // Refusals must be an error exit, not a timeout (-1).
  EXPECT_GT(Publish(port, "sensor-1", wrong, dir.path()), 0);
  EXPECT_GT(Publish(port, "sensor-2", *revoked_key, dir.path()), 0);
  EXPECT_GT(Publish(port, "sensor-3", *key, dir.path()), 0);
}

}  // namespace
}  // namespace bff
