// W3C traceparent parsing/formatting and id generation.
#include "observability/trace_context.h"

#include <algorithm>
#include <atomic>

#include <cstring>
#include <random>

#include "common/crypto.h"

namespace bff {
namespace {

bool IsLowerHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool AllZero(std::string_view s) {
  for (char c : s) {
    if (c != '0') return false;
  }
  return true;
}

uint64_t NextRandom() {
  thread_local std::mt19937_64 rng = [] {
    std::string seed = RandomBytes(16);
    std::seed_seq seq(seed.begin(), seed.end());
    return std::mt19937_64(seq);
  }();
  return rng();
}

}  // namespace

std::string RandomIdHex(size_t n_bytes) {
  std::string raw;
  raw.reserve(n_bytes + 8);
  while (raw.size() < n_bytes) {
    uint64_t v = NextRandom();
    raw.append(reinterpret_cast<const char*>(&v), sizeof(v));
  }
  raw.resize(n_bytes);
  std::string hex = HexEncode(raw);
  if (AllZero(hex)) hex.back() = '1';
  return hex;
}

namespace {
std::atomic<int> g_sample_percent{100};
}  // namespace

void SetNewTraceSamplePercent(int percent) { g_sample_percent.store(std::clamp(percent, 0, 100)); }

TraceContext TraceContext::NewRoot() {
  TraceContext t;
  t.trace_id = RandomIdHex(kTraceIdBytes);
  t.span_id = RandomIdHex(kSpanIdBytes);
  const int pct = g_sample_percent.load(std::memory_order_relaxed);
  if (pct < 100) t.flags = (NextRandom() % 100) < static_cast<uint64_t>(pct) ? 1 : 0;
  return t;
}

std::optional<TraceContext> TraceContext::Parse(std::string_view h, std::string_view tracestate) {
  // version "-" trace-id "-" parent-id "-" flags
  while (!h.empty() && (h.front() == ' ' || h.front() == '\t')) h.remove_prefix(1);
  while (!h.empty() && (h.back() == ' ' || h.back() == '\t')) h.remove_suffix(1);
  if (h.size() < 55) return std::nullopt;
  std::string_view version = h.substr(0, 2);
  if (!IsLowerHex(version) || version == "ff") return std::nullopt;
  if (version == "00" && h.size() != 55) return std::nullopt;
  if (version != "00" && h.size() > 55 && h[55] != '-') return std::nullopt;
  if (h[2] != '-' || h[35] != '-' || h[52] != '-') return std::nullopt;
  std::string_view trace_id = h.substr(3, 32);
  std::string_view span_id = h.substr(36, 16);
  std::string_view flags = h.substr(53, 2);
  if (!IsLowerHex(trace_id) || !IsLowerHex(span_id) || !IsLowerHex(flags)) return std::nullopt;
  if (AllZero(trace_id) || AllZero(span_id)) return std::nullopt;
  TraceContext t;
  t.trace_id = std::string(trace_id);
  t.span_id = std::string(span_id);
  t.flags = static_cast<uint8_t>(std::stoi(std::string(flags), nullptr, 16));
  if (tracestate.size() <= 512) t.tracestate = std::string(tracestate);
  return t;
}

TraceContext TraceContext::AcceptOrCreate(std::string_view traceparent, std::string_view tracestate) {
  if (auto parsed = Parse(traceparent, tracestate)) return parsed->Child();
  return NewRoot();
}

TraceContext TraceContext::Child() const {
  TraceContext c;
  c.trace_id = trace_id;
  c.span_id = RandomIdHex(kSpanIdBytes);
  c.parent_span_id = span_id;
  c.flags = flags;
  c.tracestate = tracestate;
  return c;
}

std::string TraceContext::ToTraceparent() const {
  static const char* kHex = "0123456789abcdef";
  std::string s = "00-" + trace_id + "-" + span_id + "-";
  s.push_back(kHex[flags >> 4]);
  s.push_back(kHex[flags & 15]);
  return s;
}

}  // namespace bff
