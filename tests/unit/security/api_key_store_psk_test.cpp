// Tests for the sealed DTLS copies of device keys: they open to the key, only for active devices, only
// under the key-encryption key they were sealed with, and never put the plaintext on disk.
#include <sqlite3.h>
#include <sys/stat.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "common/crypto.h"
#include "security/api_key_store.h"
#include "support/test_support.h"

namespace bff {
namespace {

std::unique_ptr<ApiKeyStore> OpenStore(const std::string& dir) {
  auto store = ApiKeyStore::Open(dir);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? std::move(store).value() : nullptr;
}

std::string DbBytes(const std::string& dir) {
  std::string all;
  for (const char* name : {"keys.db", "keys.db-wal"}) {
    std::string path = dir + "/" + name;
    if (std::filesystem::exists(path)) all += testing::ReadFile(path);
  }
  return all;
}

class ApiKeyStorePskTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = OpenStore(dir_.path());
    ASSERT_NE(store_, nullptr);
  }
  testing::TempDir dir_;
  std::unique_ptr<ApiKeyStore> store_;
};

TEST_F(ApiKeyStorePskTest, SealedCopyOpensToTheKey) {
  auto key = store_->Add("dev-1", {"shelf-01-01"});
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  auto psk = store_->DtlsPsk("dev-1");
  ASSERT_TRUE(psk.ok()) << psk.status().ToString();
  EXPECT_EQ(*psk, *key);

  store_.reset();
  store_ = OpenStore(dir_.path());
  ASSERT_NE(store_, nullptr);
  psk = store_->DtlsPsk("dev-1");
  ASSERT_TRUE(psk.ok()) << psk.status().ToString();
  EXPECT_EQ(*psk, *key) << "the sealed copy is persisted";
}

TEST_F(ApiKeyStorePskTest, ReplacingAKeyReplacesItsSealedCopy) {
  auto first = store_->Add("dev-1", {"S1"});
  auto second = store_->Add("dev-1", {"S1"});
  ASSERT_TRUE(first.ok() && second.ok());
  auto psk = store_->DtlsPsk("dev-1");
  ASSERT_TRUE(psk.ok());
  EXPECT_EQ(*psk, *second);
}

TEST_F(ApiKeyStorePskTest, PlaintextStillAppearsNowhereInTheDatabase) {
  auto key = store_->Add("dev-1", {"S1"});
  ASSERT_TRUE(key.ok());
  ASSERT_TRUE(store_->DtlsPsk("dev-1").ok());
  std::string raw;
  ASSERT_TRUE(HexDecode(*key, &raw));
  std::string bytes = DbBytes(dir_.path());
  ASSERT_NE(bytes.find("dev-1"), std::string::npos);  // the control: the record reached the disk
  EXPECT_EQ(bytes.find(*key), std::string::npos);
  EXPECT_EQ(bytes.find(raw), std::string::npos);
  store_.reset();  // checkpoints the WAL into keys.db
  bytes = DbBytes(dir_.path());
  EXPECT_EQ(bytes.find(*key), std::string::npos);
  EXPECT_EQ(bytes.find(raw), std::string::npos);
}

TEST_F(ApiKeyStorePskTest, RevokedAndUnknownDevicesGetNoKey) {
  ASSERT_TRUE(store_->Add("dev-1", {"S1"}).ok());
  ASSERT_TRUE(store_->Revoke("dev-1").ok());
  auto revoked = store_->DtlsPsk("dev-1");
  ASSERT_FALSE(revoked.ok());
  EXPECT_EQ(revoked.status().code(), StatusCode::kUnauthenticated);

  auto unknown = store_->DtlsPsk("dev-2");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), StatusCode::kUnauthenticated);
  EXPECT_FALSE(store_->DtlsPsk("../etc").ok());
  EXPECT_FALSE(store_->DtlsPsk("").ok());
}

TEST_F(ApiKeyStorePskTest, WrongKeyEncryptionKeyOpensNothing) {
  auto key = store_->Add("dev-1", {"S1"});
  ASSERT_TRUE(key.ok());
  store_.reset();
  ASSERT_TRUE(WriteSecretFile(dir_.path() + "/keys.kek", RandomHex(32) + "\n").ok());
  store_ = OpenStore(dir_.path());
  ASSERT_NE(store_, nullptr);
  auto psk = store_->DtlsPsk("dev-1");
  ASSERT_FALSE(psk.ok());
  EXPECT_EQ(psk.status().code(), StatusCode::kInternal);
  EXPECT_TRUE(store_->Verify("dev-1", *key).ok()) << "the hashes do not depend on keys.kek";
}

TEST_F(ApiKeyStorePskTest, KekIsASecretFileAndItsLossIsDetected) {
  std::string path = dir_.path() + "/keys.kek";
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::string text = testing::ReadFile(path);
  EXPECT_EQ(text.size(), 65u);

  ASSERT_TRUE(store_->Add("dev-1", {"S1"}).ok());
  store_.reset();
  std::filesystem::remove(path);
  auto reopened = ApiKeyStore::Open(dir_.path());
  ASSERT_FALSE(reopened.ok());
  EXPECT_EQ(reopened.status().code(), StatusCode::kFailedPrecondition);
}

// A keys.db written before sealed copies existed: the column is added and old keys keep verifying.
TEST(ApiKeyStorePskMigrationTest, OlderDatabaseGainsTheColumn) {
  testing::TempDir dir;
  std::string old_key;
  {
    auto store = OpenStore(dir.path());
    ASSERT_NE(store, nullptr);
    auto key = store->Add("dev-old", {"S1"});
    ASSERT_TRUE(key.ok());
    old_key = *key;
  }
  // Rebuild the table in the older layout, keeping the row.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir.path() + "/keys.db").c_str(), &db), SQLITE_OK);
  const char* downgrade =
      "BEGIN;"
      "CREATE TABLE old_keys AS SELECT device_id, salt, key_hash, mosquitto_hash, shelves, rate_per_s, burst,"
      " created_at, revoked_at FROM api_keys;"
      "DROP TABLE api_keys;"
      "ALTER TABLE old_keys RENAME TO api_keys;"
      "COMMIT;";
  char* err = nullptr;
  ASSERT_EQ(sqlite3_exec(db, downgrade, nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
  sqlite3_close(db);
  std::filesystem::remove(dir.path() + "/keys.kek");

  auto store = OpenStore(dir.path());
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->Verify("dev-old", old_key).ok());
  auto old_psk = store->DtlsPsk("dev-old");
  ASSERT_FALSE(old_psk.ok());
  EXPECT_EQ(old_psk.status().code(), StatusCode::kFailedPrecondition);

  auto key = store->Add("dev-new", {"S1"});
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  auto psk = store->DtlsPsk("dev-new");
  ASSERT_TRUE(psk.ok()) << psk.status().ToString();
  EXPECT_EQ(*psk, *key);
}

}  // namespace
}  // namespace bff
