// Tests for a simulated device's firmware rules and the shop, driven by hand-set times (no clock).
#include "firmware-sim/device.h"

#include <gtest/gtest.h>

#include "firmware-sim/shop.h"
#include "protocols/msgpack/iot_codec.h"

namespace bff::sim {
namespace {

using namespace std::chrono_literals;

DeviceIdentity Id() { return {"sensor-t", "shelf-01-01", std::string(32, 'a')}; }

Answer Ack(const std::string& flags = "") { return Answer{AnswerKind::kAcknowledged, 204, flags, 0}; }
Answer Silence() { return Answer{}; }

DeviceOptions Options(size_t capacity = 8, size_t window = 1) {
  DeviceOptions o;
  o.buffer_capacity = capacity;
  o.window = window;
  o.backoff_min = 1000ms;
  o.backoff_max = 8000ms;
  o.backoff_jitter = 0;  // exact back-offs in these tests
  return o;
}

const SimTime kT0 = SimTime{} + 1h;

TEST(DeviceTest, FirstReadingReportsSlotZeroThenTheFlagsTeachTheSlotCount) {
  Device d(Id(), Options(), 100, 1);
  d.Record(1790000000, std::vector<uint32_t>(24, 5), 90, 210);
  std::vector<Reading> due = d.Due(kT0);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].seq, 100u);
  ASSERT_EQ(due[0].slots.size(), 1u) << "slot 0 exists on every shelf";
  std::vector<bool> bits(24, true);
  bits[3] = false;
  d.OnAnswer(100, Ack(EncodeShelfFlags(7, bits)), kT0);
  EXPECT_TRUE(d.drained());
  EXPECT_EQ(d.slot_count(), 24u);
  EXPECT_EQ(d.version(), 7u);
  EXPECT_FALSE(d.leds()[3]) << "slot 3's LED shows out of stock";
  EXPECT_TRUE(d.leds()[4]);
  d.Record(1790000010, std::vector<uint32_t>(24, 5), 90, 210);
  due = d.Due(kT0 + 10s);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].seq, 101u);
  EXPECT_EQ(due[0].slots.size(), 24u) << "now every slot";
  EXPECT_EQ(d.counters().acknowledged, 1u);
}

TEST(DeviceTest, SilenceKeepsTheReadingAndItIsResentWithTheSameSeqAfterABackOff) {
  Device d(Id(), Options(), 1, 1);
  d.Record(1, {3}, 90, 210);
  ASSERT_EQ(d.Due(kT0).size(), 1u);
  EXPECT_EQ(d.OnAnswer(1, Silence(), kT0), Verdict::kBackOff);
  EXPECT_TRUE(d.Due(kT0 + 999ms).empty()) << "backing off";
  std::vector<Reading> again = d.Due(kT0 + 1000ms);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].seq, 1u);
  EXPECT_EQ(again[0].attempts, 2u);
  d.OnAnswer(1, Silence(), kT0 + 1000ms);
  EXPECT_TRUE(d.Due(kT0 + 2999ms).empty()) << "the back-off doubled";
  EXPECT_EQ(d.Due(kT0 + 3000ms).size(), 1u);
  d.OnAnswer(1, Ack(), kT0 + 3000ms);
  EXPECT_TRUE(d.drained());
  EXPECT_EQ(d.counters().sent, 1u);
  EXPECT_EQ(d.counters().retried, 2u);
  EXPECT_EQ(d.counters().no_answer, 2u);
  // After an acknowledgement the next silence starts from the shortest back-off again.
  d.Record(2, {3}, 90, 210);
  d.Due(kT0 + 4s);
  d.OnAnswer(2, Silence(), kT0 + 4s);
  EXPECT_EQ(d.backoff_until(), kT0 + 5s);
}

TEST(DeviceTest, RetryLaterHonoursTheServersHintWithinBounds) {
  Device d(Id(), Options(), 1, 1);
  d.Record(1, {3}, 90, 210);
  d.Due(kT0);
  d.OnAnswer(1, Answer{AnswerKind::kRetryLater, 503, "", 30}, kT0);
  EXPECT_EQ(d.backoff_until(), kT0 + 8s) << "30 s asked, capped at backoff_max";
  EXPECT_EQ(d.buffered(), 1u);
  d.Due(kT0 + 8s);
  d.OnAnswer(1, Answer{AnswerKind::kRetryLater, 429, "", 2}, kT0 + 8s);
  EXPECT_EQ(d.backoff_until(), kT0 + 10s);
  EXPECT_EQ(d.counters().retry_later, 2u);
}

TEST(DeviceTest, AFullBufferDropsTheOldestAndCountsIt) {
  Device d(Id(), Options(3), 1, 1);
  for (uint64_t i = 0; i < 5; ++i) d.Record(i, {1}, 90, 210);
  EXPECT_EQ(d.buffered(), 3u);
  EXPECT_EQ(d.counters().dropped, 2u);
  std::vector<Reading> due = d.Due(kT0);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].seq, 3u) << "the two oldest went";
}

TEST(DeviceTest, AReadingOnTheWireIsNotDroppedBeforeOlderOnesThatAreNot) {
  Device d(Id(), Options(2, 2), 1, 1);
  d.Record(0, {1}, 90, 210);
  d.Record(1, {1}, 90, 210);
  ASSERT_EQ(d.Due(kT0).size(), 2u);
  d.OnAnswer(1, Silence(), kT0);  // seq 1 waits for its retry; seq 2 still on the wire
  d.Record(2, {1}, 90, 210);      // full: seq 1 is dropped, not seq 2
  EXPECT_EQ(d.counters().dropped_after_send, 1u);
  d.OnAnswer(2, Ack(), kT0);
  EXPECT_EQ(d.counters().acknowledged, 1u) << "seq 2's acknowledgement still counts";
  EXPECT_EQ(d.buffered(), 1u);
}

TEST(DeviceTest, RefusedReadingsAreDroppedByCodeAndABadKeyBacksOff) {
  Device d(Id(), Options(), 1, 1);
  d.Record(0, {1}, 90, 210);
  d.Record(1, {1}, 90, 210);
  d.Due(kT0);
  EXPECT_EQ(d.OnAnswer(1, Answer{AnswerKind::kRejected, 400, "", 0}, kT0), Verdict::kDropped);
  EXPECT_EQ(d.Due(kT0).size(), 1u) << "a bad payload is dropped and the device moves on at once";
  d.OnAnswer(2, Answer{AnswerKind::kRejected, 401, "", 0}, kT0);
  EXPECT_EQ(d.counters().rejected, 2u);
  EXPECT_EQ(d.counters().rejected_by_code.at(400), 1u);
  EXPECT_EQ(d.counters().rejected_by_code.at(401), 1u);
  EXPECT_EQ(d.backoff_until(), kT0 + 1s) << "a refused key does not heal by itself: do not hammer";
}

TEST(DeviceTest, AWindowKeepsSeveralOutstandingAndResendsTheOldestFirst) {
  Device d(Id(), Options(8, 3), 1, 1);
  for (int i = 0; i < 5; ++i) d.Record(static_cast<uint64_t>(i), {1}, 90, 210);
  std::vector<Reading> due = d.Due(kT0);
  ASSERT_EQ(due.size(), 3u);
  EXPECT_EQ(due[0].seq, 1u);
  EXPECT_EQ(due[2].seq, 3u);
  d.OnAnswer(2, Ack(), kT0);
  due = d.Due(kT0);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].seq, 4u);
  d.OnAnswer(1, Silence(), kT0);
  d.OnAnswer(3, Silence(), kT0);
  d.OnAnswer(4, Silence(), kT0);
  due = d.Due(kT0 + 1s);
  ASSERT_EQ(due.size(), 3u);
  EXPECT_EQ(due[0].seq, 1u) << "in order, with the same seqs";
  EXPECT_EQ(due[1].seq, 3u);
  EXPECT_EQ(due[2].seq, 4u);
}

TEST(DeviceTest, TheBufferAndTheSeqSurviveAReboot) {
  Device d(Id(), Options(), 50, 1);
  d.Record(10, {1, 2}, 80, 200);
  d.Record(11, {3, 4}, 80, 200);
  d.Due(kT0);
  nlohmann::json flash = d.Save();
  Device rebooted(Id(), Options(), 1, 2);
  rebooted.Restore(flash);
  EXPECT_EQ(rebooted.buffered(), 2u);
  EXPECT_EQ(rebooted.next_seq(), 52u);
  std::vector<Reading> due = rebooted.Due(kT0);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].seq, 50u);
  EXPECT_EQ(due[0].ts, 10u);
  EXPECT_EQ(due[0].attempts, 2u) << "it had been sent before the reboot";
}

TEST(ShopTest, TheSameSeedGivesTheSameShop) {
  ShopOptions o;
  o.seed = 42;
  Shop a(o), b(o);
  for (int minute = 0; minute <= 30; minute += 5) {
    EXPECT_EQ(a.Observe("shelf-01-01", 24, std::chrono::minutes(minute)),
              b.Observe("shelf-01-01", 24, std::chrono::minutes(minute)));
  }
  o.seed = 43;
  Shop c(o);
  EXPECT_NE(c.Observe("shelf-01-01", 24, 30min), a.Observe("shelf-01-01", 24, 30min));
}

TEST(ShopTest, DemoSlotsRunEmptyWithinAMinuteAndAreRestocked) {
  ShopOptions o;
  o.demo = true;
  o.restock_after = 60s;
  Shop shop(o);
  std::vector<uint32_t> start = shop.Observe("shelf-02-03", 12, 0ms);
  std::vector<uint32_t> minute = shop.Observe("shelf-02-03", 12, 60s);
  size_t emptied = 0;
  for (size_t i = 0; i < Shop::kDemoFastSlots; ++i) {
    EXPECT_GT(start[i], 0u);
    emptied += minute[i] == 0 ? 1 : 0;
  }
  EXPECT_GE(emptied, 2u) << "fast slots run empty within a minute";
  std::vector<uint32_t> later = shop.Observe("shelf-02-03", 12, 200s);
  size_t restocked = 0;
  for (size_t i = 0; i < Shop::kDemoFastSlots; ++i) restocked += later[i] > 0 || minute[i] > 0 ? 1 : 0;
  EXPECT_GE(restocked, 1u) << "an empty slot comes back";
  for (size_t i = Shop::kDemoFastSlots; i < 12; ++i) EXPECT_LE(minute[i], start[i]) << "quantities only fall between restocks";
}

}  // namespace
}  // namespace bff::sim
