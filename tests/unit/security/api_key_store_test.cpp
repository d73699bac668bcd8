// Tests for the device API key store: issuing, hashing at rest, verification, revocation and persistence.
#include "security/api_key_store.h"

#include <openssl/evp.h>
#include <sys/stat.h>

#include <cctype>
#include <filesystem>
#include <regex>

#include <gtest/gtest.h>

#include "common/crypto.h"
#include "support/test_support.h"

namespace bff {
namespace {

std::unique_ptr<ApiKeyStore> OpenStore(const std::string& dir) {
  auto store = ApiKeyStore::Open(dir);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? std::move(store).value() : nullptr;
}

// Every byte the store left on disk: the database, its WAL and shared-memory files, the pepper.
std::string AllFileBytes(const std::string& dir) {
  std::string all;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.is_regular_file()) all += testing::ReadFile(entry.path().string());
  }
  return all;
}

std::string StdBase64Decode(const std::string& in) {
  std::string out(in.size(), '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  if (n < 0) return {};
  size_t pad = in.size() >= 2 && in[in.size() - 1] == '=' ? (in[in.size() - 2] == '=' ? 2 : 1) : 0;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

class ApiKeyStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = OpenStore(dir_.path());
    ASSERT_NE(store_, nullptr);
  }
  testing::TempDir dir_;
  std::unique_ptr<ApiKeyStore> store_;
};

TEST_F(ApiKeyStoreTest, KeyIs128BitLowercaseHex) {
  auto key = store_->Add("shelf-sensor-1", {"S1"});
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_TRUE(std::regex_match(*key, std::regex("[0-9a-f]{32}"))) << *key;
  auto other = store_->Add("shelf-sensor-2", {"S1"});
  ASSERT_TRUE(other.ok());
  EXPECT_NE(*other, *key);
}

TEST_F(ApiKeyStoreTest, PlaintextIsNowhereOnDisk) {
  auto key = store_->Add("dev-1", {"S1", "S2"});
  ASSERT_TRUE(key.ok());
  std::string raw;
  ASSERT_TRUE(HexDecode(*key, &raw));
  std::string upper = *key;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));

  std::string bytes = AllFileBytes(dir_.path());
  ASSERT_NE(bytes.find("dev-1"), std::string::npos);  // the control: the record did reach the disk
  EXPECT_EQ(bytes.find(*key), std::string::npos);
  EXPECT_EQ(bytes.find(upper), std::string::npos);
  EXPECT_EQ(bytes.find(raw), std::string::npos);
  store_.reset();  // checkpoints the WAL into keys.db
  bytes = AllFileBytes(dir_.path());
  EXPECT_EQ(bytes.find(*key), std::string::npos);
  EXPECT_EQ(bytes.find(raw), std::string::npos);
}

TEST_F(ApiKeyStoreTest, VerifyAcceptsTheKeyAndReturnsTheRecord) {
  auto key = store_->Add("dev-1", {"S1", "S2"}, 2.5, 10);
  ASSERT_TRUE(key.ok());
  auto record = store_->Verify("dev-1", *key);
  ASSERT_TRUE(record.ok()) << record.status().ToString();
  EXPECT_EQ(record->device_id, "dev-1");
  EXPECT_EQ(record->shelves, (std::vector<std::string>{"S1", "S2"}));
  EXPECT_DOUBLE_EQ(record->rate_per_s, 2.5);
  EXPECT_DOUBLE_EQ(record->burst, 10);
  EXPECT_TRUE(record->active());
  EXPECT_GT(record->created_at, 1600000000);
}

TEST_F(ApiKeyStoreTest, DefaultsApplyToRateAndBurst) {
  auto key = store_->Add("dev-1", {"S1"});
  ASSERT_TRUE(key.ok());
  auto record = store_->Verify("dev-1", *key);
  ASSERT_TRUE(record.ok());
  EXPECT_DOUBLE_EQ(record->rate_per_s, kDefaultKeyRatePerSecond);
  EXPECT_DOUBLE_EQ(record->burst, kDefaultKeyBurst);
}

TEST_F(ApiKeyStoreTest, WrongKeyUnknownDeviceAndMalformedInputAreUnauthenticated) {
  auto key = store_->Add("dev-1", {"S1"});
  auto other = store_->Add("dev-2", {"S1"});
  ASSERT_TRUE(key.ok() && other.ok());
  std::string wrong = *key;
  wrong[0] = wrong[0] == 'a' ? 'b' : 'a';

  for (const auto& [device, k] : std::vector<std::pair<std::string, std::string>>{
           {"dev-1", wrong},
           {"dev-1", *other},  // someone else's valid key
           {"dev-3", *key},    // unknown device
           {"dev-1", ""},
           {"dev-1", *key + "0"},
           {"dev-1", key->substr(0, 31)},
           {"", *key},
           {"dev/1", *key},
           {std::string(65, 'd'), *key},
       }) {
    auto result = store_->Verify(device, k);
    ASSERT_FALSE(result.ok()) << device << " " << k;
    EXPECT_EQ(result.status().code(), StatusCode::kUnauthenticated);
  }
  EXPECT_TRUE(store_->Verify("dev-1", *key).ok());
}

TEST_F(ApiKeyStoreTest, RevokedKeyIsRefusedAndListedAsRevoked) {
  auto key = store_->Add("dev-1", {"S1"});
  ASSERT_TRUE(key.ok());
  ASSERT_TRUE(store_->Revoke("dev-1").ok());
  auto result = store_->Verify("dev-1", *key);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kUnauthenticated);

  EXPECT_TRUE(store_->Revoke("dev-1").ok());  // twice is fine
  EXPECT_EQ(store_->Revoke("nobody").code(), StatusCode::kNotFound);

  auto list = store_->List();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_FALSE(list[0].active());
  EXPECT_GT(list[0].revoked_at, 0);
}

TEST_F(ApiKeyStoreTest, AddReplacesAnExistingDevicesKey) {
  auto old_key = store_->Add("dev-1", {"S1"});
  ASSERT_TRUE(old_key.ok());
  ASSERT_TRUE(store_->Revoke("dev-1").ok());
  auto new_key = store_->Add("dev-1", {"S2"}, 5, 20);
  ASSERT_TRUE(new_key.ok());

  EXPECT_FALSE(store_->Verify("dev-1", *old_key).ok());
  auto record = store_->Verify("dev-1", *new_key);
  ASSERT_TRUE(record.ok()) << record.status().ToString();
  EXPECT_EQ(record->shelves, (std::vector<std::string>{"S2"}));
  EXPECT_DOUBLE_EQ(record->rate_per_s, 5);
  EXPECT_EQ(store_->Count(), 1u);
}

TEST_F(ApiKeyStoreTest, ReopeningTheStoreKeepsKeys) {
  auto key = store_->Add("dev-1", {"S1"});
  ASSERT_TRUE(key.ok());
  store_.reset();
  auto reopened = OpenStore(dir_.path());
  ASSERT_NE(reopened, nullptr);
  EXPECT_TRUE(reopened->Verify("dev-1", *key).ok());
  EXPECT_EQ(reopened->Count(), 1u);
}

TEST_F(ApiKeyStoreTest, SecondHandleSeesChangesWithoutReopening) {
  // The daemon keeps a store open while `bffd keys add/revoke` uses its own.
  auto daemon = OpenStore(dir_.path());
  ASSERT_NE(daemon, nullptr);
  auto key = store_->Add("dev-1", {"S1"});
  ASSERT_TRUE(key.ok());
  EXPECT_TRUE(daemon->Verify("dev-1", *key).ok());
  ASSERT_TRUE(store_->Revoke("dev-1").ok());
  EXPECT_FALSE(daemon->Verify("dev-1", *key).ok());
}

TEST_F(ApiKeyStoreTest, MayReadOnlyTheBoundShelves) {
  auto key = store_->Add("dev-1", {"S1", "S2", "S1"});
  ASSERT_TRUE(key.ok());
  auto record = store_->Verify("dev-1", *key);
  ASSERT_TRUE(record.ok());
  EXPECT_TRUE(record->MayRead("S1"));
  EXPECT_TRUE(record->MayRead("S2"));
  EXPECT_FALSE(record->MayRead("S3"));
  EXPECT_FALSE(record->MayRead(""));
  EXPECT_FALSE(record->MayRead("s1"));
  EXPECT_EQ(record->shelves.size(), 2u);  // duplicates collapse
}

TEST_F(ApiKeyStoreTest, InvalidRecordsAreRefused) {
  EXPECT_EQ(store_->Add("", {"S1"}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Add("dev:1", {"S1"}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Add("dev 1", {"S1"}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Add(std::string(65, 'a'), {"S1"}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Add("dev-1", {"bad shelf"}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Add("dev-1", {"S1"}, 0).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Add("dev-1", {"S1"}, -1).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Add("dev-1", {"S1"}, 1, 0.5).status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(store_->Add(std::string(64, 'a'), {"S1"}).ok());
  EXPECT_EQ(store_->Count(), 1u);
}

TEST_F(ApiKeyStoreTest, AddManyIssuesAllKeysOrNone) {
  std::vector<ApiKeyRecord> records;
  for (int i = 0; i < 20; ++i) {
    ApiKeyRecord r;
    r.device_id = "dev-" + std::to_string(i);
    r.shelves = {"S" + std::to_string(i % 3)};
    records.push_back(r);
  }
  auto keys = store_->AddMany(records);
  ASSERT_TRUE(keys.ok()) << keys.status().ToString();
  ASSERT_EQ(keys->size(), records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    auto record = store_->Verify(records[i].device_id, (*keys)[i]);
    ASSERT_TRUE(record.ok()) << records[i].device_id;
    EXPECT_EQ(record->shelves, records[i].shelves);
  }
  EXPECT_EQ(store_->Count(), 20u);

  std::vector<ApiKeyRecord> broken = {records[0], records[1]};
  broken[0].device_id = "fresh-1";
  broken[1].device_id = "bad id";
  EXPECT_FALSE(store_->AddMany(broken).ok());
  std::vector<ApiKeyRecord> duplicated = {records[0], records[0]};
  duplicated[0].device_id = duplicated[1].device_id = "fresh-2";
  EXPECT_EQ(store_->AddMany(duplicated).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Count(), 20u);
  // The first batch's keys were not replaced by the refused batches.
  EXPECT_TRUE(store_->Verify("dev-0", (*keys)[0]).ok());
}

TEST_F(ApiKeyStoreTest, ListIsOrderedAndCountsEveryKey) {
  ASSERT_TRUE(store_->Add("b-dev", {"S1"}).ok());
  ASSERT_TRUE(store_->Add("a-dev", {"S2"}, 3, 4).ok());
  ASSERT_TRUE(store_->Revoke("b-dev").ok());
  auto list = store_->List();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].device_id, "a-dev");
  EXPECT_EQ(list[0].shelves, (std::vector<std::string>{"S2"}));
  EXPECT_DOUBLE_EQ(list[0].burst, 4);
  EXPECT_TRUE(list[0].active());
  EXPECT_EQ(list[1].device_id, "b-dev");
  EXPECT_FALSE(list[1].active());
  EXPECT_EQ(store_->Count(), 2u);
}

TEST_F(ApiKeyStoreTest, PepperIsASecretFileAndItsLossIsDetected) {
  std::string pepper = dir_.path() + "/keys.pepper";
  struct stat st {};
  ASSERT_EQ(stat(pepper.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat((dir_.path() + "/keys.db").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_TRUE(store_->Add("dev-1", {"S1"}).ok());
  store_.reset();

  std::filesystem::remove(pepper);
  auto reopened = ApiKeyStore::Open(dir_.path());
  ASSERT_FALSE(reopened.ok());
  EXPECT_EQ(reopened.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_FALSE(std::filesystem::exists(pepper));  // not silently replaced
}

TEST_F(ApiKeyStoreTest, MosquittoLinesCarryAPbkdf2Sha512HashOfTheKey) {
  auto key = store_->Add("dev-1", {"S1"});
  ASSERT_TRUE(key.ok());
  ASSERT_TRUE(store_->Add("dev-2", {"S1"}).ok());
  ASSERT_TRUE(store_->Revoke("dev-2").ok());

  auto lines = store_->MosquittoPasswordLines();
  ASSERT_EQ(lines.size(), 1u);  // revoked devices are not exported
  std::smatch m;
  ASSERT_TRUE(
      std::regex_match(lines[0], m, std::regex(R"(dev-1:\$7\$101\$([A-Za-z0-9+/]{16})\$([A-Za-z0-9+/]{86}==))")))
      << lines[0];
  std::string salt = StdBase64Decode(m[1].str());
  std::string hash = StdBase64Decode(m[2].str());
  ASSERT_EQ(salt.size(), 12u);
  ASSERT_EQ(hash.size(), 64u);

  unsigned char expected[64];
  ASSERT_EQ(
      PKCS5_PBKDF2_HMAC(key->data(), static_cast<int>(key->size()), reinterpret_cast<const unsigned char*>(salt.data()),
                        static_cast<int>(salt.size()), 101, EVP_sha512(), sizeof(expected), expected),
      1);
  EXPECT_EQ(hash, std::string(reinterpret_cast<const char*>(expected), sizeof(expected)));
}

TEST(WriteSecretFileTest, WritesMode0600AndReplacesAtomically) {
  testing::TempDir dir;
  std::string path = dir.path() + "/sub/secret";
  ASSERT_TRUE(WriteSecretFile(path, "one").ok());
  EXPECT_EQ(testing::ReadFile(path), "one");
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_TRUE(WriteSecretFile(path, "two").ok());
  EXPECT_EQ(testing::ReadFile(path), "two");
  // No temp files left behind.
  size_t files = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path() + "/sub")) ++files;
  EXPECT_EQ(files, 1u);
}

}  // namespace
}  // namespace bff
