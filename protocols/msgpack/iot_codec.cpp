// msgpack codec for the IoT wire formats, on msgpack-cxx with explicit size and depth limits.
#include "protocols/msgpack/iot_codec.h"

#include <cstring>

#include <msgpack.hpp>

#include "security/input_validation.h"

namespace bff {
namespace {

constexpr size_t kMaxMapEntries = 32;
constexpr size_t kMaxStringBytes = 256;
constexpr size_t kMaxBinBytes = 512;
// Slots are numbered 0..4095 (telemetry "r.slot"), so no shelf has more flags than this.
constexpr uint64_t kMaxFlagSlots = 4096;
constexpr size_t kShelfFlagsFields = 3;  // [version, slot_count, bin]

std::string_view KeyOf(const msgpack::object& k) {
  if (k.type != msgpack::type::STR) return {};
  return std::string_view(k.via.str.ptr, k.via.str.size);
}

// A key given twice would let a message carry more than the limits allow (each "r" up to
// kMaxReadingsPerMessage readings) and leave which value counts to the decoder's whim.
Status NoRepeatedKeys(const msgpack::object& map) {
  for (uint32_t i = 0; i < map.via.map.size; ++i) {
    const msgpack::object& a = map.via.map.ptr[i].key;
    if (a.type != msgpack::type::STR) continue;
    for (uint32_t j = i + 1; j < map.via.map.size; ++j) {
      // KeyOf: an empty string key has a null pointer, which memcmp must not see.
      if (map.via.map.ptr[j].key.type == msgpack::type::STR && KeyOf(map.via.map.ptr[j].key) == KeyOf(a)) {
        return InvalidArgument("key \"" + std::string(KeyOf(a)) + "\" appears more than once");
      }
    }
  }
  return Status::Ok();
}

StatusOr<msgpack::object_handle> Unpack(std::string_view bytes, size_t max_bytes) {
  if (bytes.size() > max_bytes) {
    return Status(StatusCode::kPayloadTooLarge, "payload of " + std::to_string(bytes.size()) + " bytes is over the limit of " +
                                                    std::to_string(max_bytes));
  }
  if (bytes.empty()) return InvalidArgument("empty payload");
  try {
    size_t off = 0;
    msgpack::unpack_limit limit(kMaxReadingsPerMessage, kMaxMapEntries, kMaxStringBytes, kMaxBinBytes, 0, kMaxMsgpackDepth);
    msgpack::object_handle oh = msgpack::unpack(bytes.data(), bytes.size(), off, nullptr, nullptr, limit);
    if (off != bytes.size()) return InvalidArgument("trailing bytes after the msgpack value");
    if (oh.get().type != msgpack::type::MAP) return InvalidArgument("payload must be a msgpack map");
    Status unique = NoRepeatedKeys(oh.get());
    if (!unique.ok()) return unique;
    return oh;
  } catch (const msgpack::depth_size_overflow&) {
    return InvalidArgument("msgpack nesting too deep");
  } catch (const msgpack::size_overflow&) {
    return InvalidArgument("msgpack structure too large");
  } catch (const std::exception&) {
    return InvalidArgument("malformed msgpack");
  }
}

Status WantUint(const msgpack::object& v, const char* key, uint64_t max, uint64_t* out) {
  if (v.type != msgpack::type::POSITIVE_INTEGER) return InvalidArgument(std::string("\"") + key + "\" must be an unsigned integer");
  if (v.via.u64 > max) return InvalidArgument(std::string("\"") + key + "\" is out of range");
  *out = v.via.u64;
  return Status::Ok();
}

Status WantInt(const msgpack::object& v, const char* key, int64_t lo, int64_t hi, int64_t* out) {
  int64_t x;
  if (v.type == msgpack::type::POSITIVE_INTEGER) {
    if (v.via.u64 > static_cast<uint64_t>(INT64_MAX)) return InvalidArgument(std::string("\"") + key + "\" is out of range");
    x = static_cast<int64_t>(v.via.u64);
  } else if (v.type == msgpack::type::NEGATIVE_INTEGER) {
    x = v.via.i64;
  } else {
    return InvalidArgument(std::string("\"") + key + "\" must be an integer");
  }
  if (x < lo || x > hi) return InvalidArgument(std::string("\"") + key + "\" is out of range");
  *out = x;
  return Status::Ok();
}

Status WantId(const msgpack::object& v, const char* key, std::string* out) {
  if (v.type != msgpack::type::STR) return InvalidArgument(std::string("\"") + key + "\" must be a string");
  std::string s(v.via.str.ptr, v.via.str.size);
  if (!IsValidId(s)) return InvalidArgument(std::string("\"") + key + "\" is not a valid id");
  *out = std::move(s);
  return Status::Ok();
}

Status WantKey(const msgpack::object& v, std::string* out) {
  if (v.type != msgpack::type::STR) return InvalidArgument("\"k\" must be a string");
  if (v.via.str.size == 0 || v.via.str.size > 128) return InvalidArgument("\"k\" has a bad length");
  out->assign(v.via.str.ptr, v.via.str.size);
  return Status::Ok();
}

// msgpack packing into a std::string.
struct StringBuffer {
  std::string data;
  void write(const char* buf, size_t len) { data.append(buf, len); }
};

}  // namespace

StatusOr<Telemetry> DecodeTelemetry(std::string_view bytes, size_t max_bytes) {
  auto oh = Unpack(bytes, max_bytes);
  if (!oh.ok()) return oh.status();
  const msgpack::object& root = oh->get();
  Telemetry t;
  bool has_d = false, has_sh = false, has_q = false, has_t = false, has_r = false;
  for (uint32_t i = 0; i < root.via.map.size; ++i) {
    const msgpack::object_kv& kv = root.via.map.ptr[i];
    std::string_view k = KeyOf(kv.key);
    Status s;
    if (k == "d") {
      s = WantId(kv.val, "d", &t.device_id);
      has_d = true;
    } else if (k == "sh") {
      s = WantId(kv.val, "sh", &t.shelf_id);
      has_sh = true;
    } else if (k == "q") {
      s = WantUint(kv.val, "q", UINT64_MAX, &t.seq);
      has_q = true;
    } else if (k == "t") {
      s = WantUint(kv.val, "t", UINT32_MAX * 4ull, &t.ts);
      has_t = true;
    } else if (k == "k") {
      s = WantKey(kv.val, &t.api_key);
    } else if (k == "b") {
      int64_t b;
      s = WantInt(kv.val, "b", 0, 100, &b);
      if (s.ok()) t.battery_pct = b;
    } else if (k == "c") {
      int64_t c;
      s = WantInt(kv.val, "c", -1000, 2000, &c);
      if (s.ok()) t.temp_decicelsius = c;
    } else if (k == "v") {
      uint64_t v;
      s = WantUint(kv.val, "v", UINT64_MAX, &v);
      if (s.ok()) t.version = v;
    } else if (k == "r") {
      has_r = true;
      if (kv.val.type != msgpack::type::ARRAY) {
        s = InvalidArgument("\"r\" must be an array of [slot, qty] pairs");
      } else {
        for (uint32_t j = 0; j < kv.val.via.array.size && s.ok(); ++j) {
          const msgpack::object& pair = kv.val.via.array.ptr[j];
          if (pair.type != msgpack::type::ARRAY || pair.via.array.size != 2) {
            s = InvalidArgument("\"r\" entries must be [slot, qty]");
            break;
          }
          uint64_t slot, qty;
          s = WantUint(pair.via.array.ptr[0], "r.slot", 4095, &slot);
          if (s.ok()) s = WantUint(pair.via.array.ptr[1], "r.qty", 100000, &qty);
          if (s.ok()) t.readings.emplace_back(static_cast<uint32_t>(slot), static_cast<uint32_t>(qty));
        }
      }
    }
    // Unknown keys are ignored, so newer firmware can add fields.
    if (!s.ok()) return s;
  }
  if (!has_d) return InvalidArgument("\"d\" (device id) is required");
  if (!has_sh) return InvalidArgument("\"sh\" (shelf id) is required");
  if (!has_q) return InvalidArgument("\"q\" (seq) is required");
  if (!has_t) return InvalidArgument("\"t\" (unix time) is required");
  if (!has_r || t.readings.empty()) return InvalidArgument("\"r\" (readings) is required and must not be empty");
  return t;
}

StatusOr<StockQuery> DecodeStockQuery(std::string_view bytes, size_t max_bytes) {
  auto oh = Unpack(bytes, max_bytes);
  if (!oh.ok()) return oh.status();
  const msgpack::object& root = oh->get();
  StockQuery q;
  for (uint32_t i = 0; i < root.via.map.size; ++i) {
    const msgpack::object_kv& kv = root.via.map.ptr[i];
    std::string_view k = KeyOf(kv.key);
    Status s;
    if (k == "k") {
      s = WantKey(kv.val, &q.api_key);
    } else if (k == "sh") {
      s = WantId(kv.val, "sh", &q.shelf_id);
    } else if (k == "sku") {
      s = WantId(kv.val, "sku", &q.sku);
    }
    if (!s.ok()) return s;
  }
  if (q.shelf_id.empty() == q.sku.empty()) return InvalidArgument("exactly one of \"sh\" and \"sku\" is required");
  return q;
}

std::string EncodeShelfFlags(uint64_t version, const std::vector<bool>& in_stock) {
  std::string bits((in_stock.size() + 7) / 8, '\0');
  for (size_t i = 0; i < in_stock.size(); ++i) {
    if (in_stock[i]) bits[i / 8] = static_cast<char>(bits[i / 8] | (1 << (i % 8)));
  }
  StringBuffer buf;
  msgpack::packer<StringBuffer> pk(buf);
  pk.pack_array(3);
  pk.pack_uint64(version);
  pk.pack_uint32(static_cast<uint32_t>(in_stock.size()));
  pk.pack_bin(static_cast<uint32_t>(bits.size()));
  pk.pack_bin_body(bits.data(), static_cast<uint32_t>(bits.size()));
  return buf.data;
}

StatusOr<std::pair<uint64_t, std::vector<bool>>> DecodeShelfFlags(std::string_view bytes) {
  try {
    size_t off = 0;
    // Bounded like every other decoder here: msgpack-cxx reserves a container's declared size before
    // reading its elements, so a 5-byte array header could otherwise ask for gigabytes.
    msgpack::unpack_limit limit(kShelfFlagsFields, 0, 0, kMaxBinBytes, 0, kMaxMsgpackDepth);
    msgpack::object_handle oh = msgpack::unpack(bytes.data(), bytes.size(), off, nullptr, nullptr, limit);
    const msgpack::object& o = oh.get();
    if (off != bytes.size() || o.type != msgpack::type::ARRAY || o.via.array.size != 3 ||
        o.via.array.ptr[0].type != msgpack::type::POSITIVE_INTEGER || o.via.array.ptr[1].type != msgpack::type::POSITIVE_INTEGER ||
        o.via.array.ptr[2].type != msgpack::type::BIN) {
      return InvalidArgument("not stock flags");
    }
    uint64_t n = o.via.array.ptr[1].via.u64;
    // Checked before (n + 7) / 8, which wraps to 0 for the largest counts.
    if (n > kMaxFlagSlots) return InvalidArgument("slot count over " + std::to_string(kMaxFlagSlots));
    const msgpack::object_bin& bin = o.via.array.ptr[2].via.bin;
    if (bin.size != (n + 7) / 8) return InvalidArgument("flags length does not match the slot count");
    std::vector<bool> bits(n);
    for (uint64_t i = 0; i < n; ++i) bits[i] = (static_cast<unsigned char>(bin.ptr[i / 8]) >> (i % 8)) & 1;
    return std::make_pair(o.via.array.ptr[0].via.u64, std::move(bits));
  } catch (const std::exception&) {
    return InvalidArgument("malformed msgpack");
  }
}

std::string EncodeBool(bool value) {
  StringBuffer buf;
  msgpack::packer<StringBuffer> pk(buf);
  if (value) {
    pk.pack_true();
  } else {
    pk.pack_false();
  }
  return buf.data;
}

std::string EncodeAck(uint64_t seq, const std::optional<std::string>& encoded_flags) {
  StringBuffer buf;
  msgpack::packer<StringBuffer> pk(buf);
  pk.pack_map(encoded_flags ? 2 : 1);
  pk.pack_str(1);
  pk.pack_str_body("q", 1);
  pk.pack_uint64(seq);
  if (encoded_flags) {
    pk.pack_str(1);
    pk.pack_str_body("f", 1);
    buf.data += *encoded_flags;  // already a complete msgpack value
  }
  return buf.data;
}

std::string EncodeError(int code, std::string_view message, int retry_after_s, std::optional<uint64_t> seq) {
  StringBuffer buf;
  msgpack::packer<StringBuffer> pk(buf);
  pk.pack_map(2 + (retry_after_s > 0 ? 1 : 0) + (seq ? 1 : 0));
  pk.pack_str(1);
  pk.pack_str_body("e", 1);
  pk.pack_int(code);
  pk.pack_str(1);
  pk.pack_str_body("m", 1);
  pk.pack_str(static_cast<uint32_t>(message.size()));
  pk.pack_str_body(message.data(), static_cast<uint32_t>(message.size()));
  if (retry_after_s > 0) {
    pk.pack_str(1);
    pk.pack_str_body("r", 1);
    pk.pack_int(retry_after_s);
  }
  if (seq) {
    pk.pack_str(1);
    pk.pack_str_body("q", 1);
    pk.pack_uint64(*seq);
  }
  return buf.data;
}

std::string EncodeTelemetry(const Telemetry& t, bool include_key) {
  StringBuffer buf;
  msgpack::packer<StringBuffer> pk(buf);
  uint32_t n = 5 + (t.battery_pct ? 1 : 0) + (t.temp_decicelsius ? 1 : 0) + (t.version ? 1 : 0) + (include_key ? 1 : 0);
  pk.pack_map(n);
  auto key = [&](const char* k) {
    pk.pack_str(static_cast<uint32_t>(std::strlen(k)));
    pk.pack_str_body(k, static_cast<uint32_t>(std::strlen(k)));
  };
  key("d");
  pk.pack(t.device_id);
  key("sh");
  pk.pack(t.shelf_id);
  key("q");
  pk.pack_uint64(t.seq);
  key("t");
  pk.pack_uint64(t.ts);
  key("r");
  pk.pack_array(static_cast<uint32_t>(t.readings.size()));
  for (auto& [slot, qty] : t.readings) {
    pk.pack_array(2);
    pk.pack_uint32(slot);
    pk.pack_uint32(qty);
  }
  if (t.battery_pct) {
    key("b");
    pk.pack_int64(*t.battery_pct);
  }
  if (t.temp_decicelsius) {
    key("c");
    pk.pack_int64(*t.temp_decicelsius);
  }
  if (t.version) {
    key("v");
    pk.pack_uint64(*t.version);
  }
  if (include_key) {
    key("k");
    pk.pack(t.api_key);
  }
  return buf.data;
}

std::string EncodeStockQuery(const StockQuery& q) {
  StringBuffer buf;
  msgpack::packer<StringBuffer> pk(buf);
  pk.pack_map(2);
  pk.pack(std::string("k"));
  pk.pack(q.api_key);
  if (!q.shelf_id.empty()) {
    pk.pack(std::string("sh"));
    pk.pack(q.shelf_id);
  } else {
    pk.pack(std::string("sku"));
    pk.pack(q.sku);
  }
  return buf.data;
}

}  // namespace bff
