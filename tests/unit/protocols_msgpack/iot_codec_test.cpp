// IoT msgpack formats: byte sizes from the contract, strict decoding, hostile input refused.
#include "protocols/msgpack/iot_codec.h"

#include <gtest/gtest.h>

namespace bff {
namespace {

Telemetry Sample() {
  Telemetry t;
  t.device_id = "sensor-01-01";
  t.shelf_id = "shelf-01-01";
  t.seq = 42;
  t.ts = 1790000000;
  t.readings = {{0, 5}, {1, 0}, {23, 17}};
  t.battery_pct = 87;
  t.temp_decicelsius = -15;
  t.version = 7;
  t.api_key = "0123456789abcdef0123456789abcdef";
  return t;
}

TEST(IotCodecTest, TelemetryRoundTrip) {
  Telemetry t = Sample();
  auto d = DecodeTelemetry(EncodeTelemetry(t, true));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->device_id, t.device_id);
  EXPECT_EQ(d->shelf_id, t.shelf_id);
  EXPECT_EQ(d->seq, 42u);
  EXPECT_EQ(d->ts, 1790000000u);
  EXPECT_EQ(d->readings, t.readings);
  EXPECT_EQ(d->battery_pct, 87);
  EXPECT_EQ(d->temp_decicelsius, -15);
  EXPECT_EQ(d->version, 7u);
  EXPECT_EQ(d->api_key, t.api_key);
  auto no_key = DecodeTelemetry(EncodeTelemetry(t, false));
  ASSERT_TRUE(no_key.ok());
  EXPECT_TRUE(no_key->api_key.empty());
}

TEST(IotCodecTest, TwentyFourSlotShelfFlagsFitInTwelveBytes) {
  std::vector<bool> slots(24, false);
  slots[0] = true;
  slots[9] = true;
  slots[23] = true;
  for (uint64_t version : {1ull, 200ull, 70000ull, 4000000000ull}) {
    std::string enc = EncodeShelfFlags(version, slots);
    EXPECT_LE(enc.size(), 12u) << "version " << version;
    auto dec = DecodeShelfFlags(enc);
    ASSERT_TRUE(dec.ok());
    EXPECT_EQ(dec->first, version);
    EXPECT_EQ(dec->second, slots);
  }
  // Byte level: [1, 24, bin8(3) 0x01 0x02 0x80]
  EXPECT_EQ(EncodeShelfFlags(1, slots), std::string("\x93\x01\x18\xc4\x03\x01\x02\x80", 8));
}

TEST(IotCodecTest, SkuAnswerIsOneByte) {
  EXPECT_EQ(EncodeBool(true), std::string("\xc3", 1));
  EXPECT_EQ(EncodeBool(false), std::string("\xc2", 1));
}

TEST(IotCodecTest, AckAndErrorMaps) {
  std::string flags = EncodeShelfFlags(3, {true, false});
  EXPECT_EQ(EncodeAck(9, std::nullopt), std::string("\x81\xa1q\x09", 4));
  EXPECT_EQ(EncodeAck(9, flags), std::string("\x82\xa1q\x09\xa1" "f", 6) + flags);
  std::string err = EncodeError(429, "rate limited", 12);
  EXPECT_EQ(err.substr(0, 1), "\x83");
  EXPECT_NE(err.find("rate limited"), std::string::npos);
  // Byte for byte, so that a header counting more entries than follow cannot pass.
  EXPECT_EQ(EncodeError(403, "no", 0, 7), std::string("\x83\xa1" "e\xcd\x01\x93\xa1m\xa2no\xa1q\x07", 14));
  EXPECT_EQ(EncodeError(429, "x", 5, 300), std::string("\x84\xa1" "e\xcd\x01\xad\xa1m\xa1x\xa1r\x05\xa1q\xcd\x01\x2c", 18));
  EXPECT_EQ(EncodeError(400, "y"), std::string("\x82\xa1" "e\xcd\x01\x90\xa1m\xa1y", 10));
}

TEST(IotCodecTest, StockQueries) {
  auto shelf = DecodeStockQuery(EncodeStockQuery({"k1", "shelf-01-01", ""}));
  ASSERT_TRUE(shelf.ok());
  EXPECT_EQ(shelf->shelf_id, "shelf-01-01");
  auto sku = DecodeStockQuery(EncodeStockQuery({"k1", "", "SKU-10001"}));
  ASSERT_TRUE(sku.ok());
  EXPECT_EQ(sku->sku, "SKU-10001");
  // Neither or both: refused.
  EXPECT_FALSE(DecodeStockQuery(std::string("\x81\xa1k\xa2k1", 6)).ok());
}

TEST(IotCodecTest, HostileAndMalformedInputIsRefusedNeverCrashes) {
  Telemetry good = Sample();
  std::string ok = EncodeTelemetry(good, true);
  struct Case {
    std::string bytes;
    StatusCode code;
    const char* what;
  };
  std::vector<Case> cases = {
      {"", StatusCode::kInvalidArgument, "empty"},
      {"\xc1", StatusCode::kInvalidArgument, "reserved byte"},
      {"\x93\x01\x02\x03", StatusCode::kInvalidArgument, "array at top level"},
      {ok.substr(0, ok.size() - 3), StatusCode::kInvalidArgument, "truncated"},
      {ok + std::string(1, '\0'), StatusCode::kInvalidArgument, "trailing bytes"},
      {std::string(2000, '\x90'), StatusCode::kPayloadTooLarge, "over 1 KiB"},
      {std::string(40, '\x91') + "\x01", StatusCode::kInvalidArgument, "depth bomb"},
      {std::string("\xdf\xff\xff\xff\xff", 5), StatusCode::kInvalidArgument, "huge map header"},
      {std::string("\xdd\x7f\xff\xff\xff", 5), StatusCode::kInvalidArgument, "huge array header"},
  };
  for (auto& c : cases) {
    auto r = DecodeTelemetry(c.bytes);
    ASSERT_FALSE(r.ok()) << c.what;
    EXPECT_EQ(r.status().code(), c.code) << c.what << ": " << r.status().ToString();
  }
}

TEST(IotCodecTest, WrongTypesAreRejectedUnknownKeysIgnored) {
  // Telemetry with one key's value given as raw msgpack (replacing the valid one, or added when new).
  auto with = [](const std::string& key, const std::string& value_bytes) {
    std::vector<std::pair<std::string, std::string>> fields = {
        {"d", "\xac" "sensor-01-01"}, {"sh", "\xab" "shelf-01-01"}, {"q", "\x2a"},
        {"t", std::string("\xce\x6a\xb1\x3b\x80", 5)}, {"r", std::string("\x91\x92\x00\x05", 4)}, {"b", "\x57"}};
    bool replaced = false;
    for (auto& [k, v] : fields) {
      if (k == key) v = value_bytes, replaced = true;
    }
    if (!replaced) fields.emplace_back(key, value_bytes);
    std::string out(1, static_cast<char>(0x80 | fields.size()));
    for (auto& [k, v] : fields) out += std::string(1, static_cast<char>(0xa0 | k.size())) + k + v;
    return out;
  };
  ASSERT_TRUE(DecodeTelemetry(with("b", "\x57")).ok()) << "the base message is valid";
  EXPECT_TRUE(DecodeTelemetry(with("future_field", "\xa3xyz")).ok()) << "unknown keys are ignored";
  auto neg_seq = DecodeTelemetry(with("q", "\xff"));  // -1: wrong sign
  EXPECT_FALSE(neg_seq.ok());
  EXPECT_NE(neg_seq.status().message().find("\"q\""), std::string::npos);
  EXPECT_FALSE(DecodeTelemetry(with("b", "\xcc\xc8")).ok()) << "battery 200 out of range";
  EXPECT_FALSE(DecodeTelemetry(with("sh", "\xa4" "a/bc")).ok()) << "bad shelf id";
  EXPECT_FALSE(DecodeTelemetry(with("r", "\x91\x91\x01")).ok()) << "reading not a pair";
  EXPECT_FALSE(DecodeTelemetry(with("r", "\xa1x")).ok()) << "readings not an array";
  EXPECT_FALSE(DecodeTelemetry(with("t", "\xcb\x40\x00\x00\x00\x00\x00\x00\x00")).ok()) << "float time";
  Telemetry missing = Sample();
  missing.readings.clear();
  EXPECT_FALSE(DecodeTelemetry(EncodeTelemetry(missing, true)).ok()) << "no readings";
}

// A repeated key would let one message carry several "r" arrays, past kMaxReadingsPerMessage.
TEST(IotCodecTest, RepeatedKeysAreRefused) {
  std::string readings = "\xa1r\xdc" + std::string("\x00\x28", 2);  // "r": array16 of 40 pairs
  for (int i = 0; i < 40; ++i) readings += std::string("\x92\x00\x01", 3);
  std::string twice = "\x86\xa1" "d\xa1" "a\xa2" "sh\xa1" "b\xa1q\x01\xa1t\x01" + readings + readings;
  auto r = DecodeTelemetry(twice);
  ASSERT_FALSE(r.ok()) << "80 readings in one message";
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("\"r\""), std::string::npos) << r.status().ToString();
  // Empty keys have no bytes at all (a null pointer in msgpack-cxx): compared without touching them.
  auto empty = DecodeTelemetry(std::string("\x82\xa0\x01\xa0\x02", 5));
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("appears more than once"), std::string::npos) << empty.status().ToString();
  auto q = DecodeStockQuery("\x83\xa1k\xa2kk\xa2sh\xa1x\xa2sh\xa1y");
  ASSERT_FALSE(q.ok());
  EXPECT_NE(q.status().message().find("\"sh\""), std::string::npos) << q.status().ToString();
}

TEST(IotCodecTest, ShelfFlagsDecodingIsBounded) {
  // Slot count 2^64-1: (n + 7) / 8 wraps to 0, which once matched an empty bin and read past it.
  EXPECT_FALSE(DecodeShelfFlags(std::string("\x93\x01\xcf\xff\xff\xff\xff\xff\xff\xff\xff\xc4\x00", 13)).ok());
  // Container headers declaring billions of elements are refused before anything is reserved.
  EXPECT_FALSE(DecodeShelfFlags(std::string("\xdd\xff\xff\xff\xff", 5)).ok());
  EXPECT_FALSE(DecodeShelfFlags(std::string("\xdf\xff\xff\xff\xff", 5)).ok());
  EXPECT_FALSE(DecodeShelfFlags(EncodeShelfFlags(1, std::vector<bool>(4097, true))).ok()) << "more slots than slot numbers";
  EXPECT_TRUE(DecodeShelfFlags(EncodeShelfFlags(1, std::vector<bool>(4096, true))).ok());
}

}  // namespace
}  // namespace bff
