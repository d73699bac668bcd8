// Metrics registry: exact exposition text, escaping, exact totals under concurrency, label overflow,
// callbacks at scrape time, process metrics.
#include "observability/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <ctime>
#include <limits>
#include <stdexcept>
#include <thread>

#include "observability/process_metrics.h"

namespace bff {
namespace {

// The exposition of one family (the registry always carries its overflow family too).
std::string FamilyText(const MetricsRegistry& r, const std::string& name) {
  std::string all = r.Render();
  size_t start = all.find("# HELP " + name + " ");
  if (start == std::string::npos) return "";
  size_t end = all.find("# HELP ", start + 1);
  return all.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

// The value of the sample line that starts with `series` followed by a space, or "" when absent.
std::string Sample(const std::string& text, const std::string& series) {
  size_t at = text.rfind("\n" + series + " ");
  if (at == std::string::npos) {
    if (text.rfind(series + " ", 0) != 0) return "";
    at = 0;
  } else {
    ++at;
  }
  size_t v = at + series.size() + 1;
  return text.substr(v, text.find('\n', v) - v);
}

TEST(MetricsTest, CounterAndGaugeExpositionIsExact) {
  MetricsRegistry r;
  auto& requests = r.Counters("test_requests_total", "Requests answered.", {"client", "status"});
  requests.With({"web", "200"}).Inc(2);
  requests.With({"mobile", "404"}).Inc();
  requests.With({"mobile", "200"}).Inc(5);
  r.Gauges("test_temperature", "A gauge.").With({}).Set(-1.5);

  EXPECT_EQ(FamilyText(r, "test_requests_total"),
            "# HELP test_requests_total Requests answered.\n"
            "# TYPE test_requests_total counter\n"
            "test_requests_total{client=\"mobile\",status=\"200\"} 5\n"
            "test_requests_total{client=\"mobile\",status=\"404\"} 1\n"
            "test_requests_total{client=\"web\",status=\"200\"} 2\n");
  EXPECT_EQ(FamilyText(r, "test_temperature"),
            "# HELP test_temperature A gauge.\n"
            "# TYPE test_temperature gauge\n"
            "test_temperature -1.5\n");
}

TEST(MetricsTest, HistogramExpositionIsCumulativeWithInfSumAndCount) {
  MetricsRegistry r;
  auto& h = r.Histograms("test_latency_seconds", "Latency.", {"route"}, {0.005, 0.1, 1});
  auto& child = h.With({"/a/{id}"});
  child.Observe(0.001);
  child.Observe(0.005);  // on a bound: counted in that bucket (le is inclusive)
  child.Observe(0.05);
  child.Observe(3);
  EXPECT_EQ(FamilyText(r, "test_latency_seconds"),
            "# HELP test_latency_seconds Latency.\n"
            "# TYPE test_latency_seconds histogram\n"
            "test_latency_seconds_bucket{route=\"/a/{id}\",le=\"0.005\"} 2\n"
            "test_latency_seconds_bucket{route=\"/a/{id}\",le=\"0.1\"} 3\n"
            "test_latency_seconds_bucket{route=\"/a/{id}\",le=\"1\"} 3\n"
            "test_latency_seconds_bucket{route=\"/a/{id}\",le=\"+Inf\"} 4\n"
            "test_latency_seconds_sum{route=\"/a/{id}\"} " + FormatMetricValue(0.0 + 0.001 + 0.005 + 0.05 + 3) + "\n"
            "test_latency_seconds_count{route=\"/a/{id}\"} 4\n");

  MetricsRegistry unlabelled;
  unlabelled.Histograms("test_wait_seconds", "Wait.", {}, {1}).With({}).ObserveDuration(std::chrono::milliseconds(250));
  EXPECT_EQ(FamilyText(unlabelled, "test_wait_seconds"),
            "# HELP test_wait_seconds Wait.\n"
            "# TYPE test_wait_seconds histogram\n"
            "test_wait_seconds_bucket{le=\"1\"} 1\n"
            "test_wait_seconds_bucket{le=\"+Inf\"} 1\n"
            "test_wait_seconds_sum 0.25\n"
            "test_wait_seconds_count 1\n");
}

TEST(MetricsTest, DefaultLatencyBucketsReadAsDecimalSeconds) {
  MetricsRegistry r;
  r.Histograms("test_default_seconds", "Default buckets.").With({}).Observe(0.0002);
  std::string text = FamilyText(r, "test_default_seconds");
  EXPECT_EQ(Sample(text, "test_default_seconds_bucket{le=\"0.0001\"}"), "0");
  EXPECT_EQ(Sample(text, "test_default_seconds_bucket{le=\"0.00025\"}"), "1");
  EXPECT_EQ(Sample(text, "test_default_seconds_bucket{le=\"10\"}"), "1");
  EXPECT_EQ(Sample(text, "test_default_seconds_bucket{le=\"+Inf\"}"), "1");
  EXPECT_EQ(DefaultLatencyBuckets().size(), 16u);
}

TEST(MetricsTest, FamiliesAreSortedByNameAndOutputIsDeterministic) {
  MetricsRegistry r;
  r.Counters("zz_total", "Last.").With({}).Inc();
  r.Counters("aa_total", "First.").With({}).Inc();
  std::string text = r.Render();
  size_t aa = text.find("# HELP aa_total");
  size_t overflow = text.find("# HELP bffd_metrics_label_overflow_total");
  size_t zz = text.find("# HELP zz_total");
  ASSERT_NE(aa, std::string::npos);
  ASSERT_NE(overflow, std::string::npos);
  ASSERT_NE(zz, std::string::npos);
  EXPECT_LT(aa, overflow);
  EXPECT_LT(overflow, zz);
  // Nothing overflowed, so the overflow family has no samples (rather than a zero per family).
  EXPECT_EQ(text.find("bffd_metrics_label_overflow_total{"), std::string::npos);
  EXPECT_EQ(text, r.Render());
}

TEST(MetricsTest, LabelValuesAndHelpAreEscaped) {
  MetricsRegistry r;
  r.Counters("test_escape_total", "Help with \\ and\nnewline.", {"v"}).With({"a\\b\"c\nd"}).Inc();
  EXPECT_EQ(FamilyText(r, "test_escape_total"),
            "# HELP test_escape_total Help with \\\\ and\\nnewline.\n"
            "# TYPE test_escape_total counter\n"
            "test_escape_total{v=\"a\\\\b\\\"c\\nd\"} 1\n");
  EXPECT_EQ(EscapeLabelValue("plain"), "plain");
}

TEST(MetricsTest, SameFamilyIsReturnedAndMismatchesAreRefused) {
  MetricsRegistry r;
  auto& a = r.Counters("test_shared_total", "Shared.", {"x"});
  auto& b = r.Counters("test_shared_total", "Shared.", {"x"});
  EXPECT_EQ(&a, &b);
  EXPECT_EQ(&a.With({"1"}), &b.With({"1"}));
  EXPECT_THROW(r.Counters("test_shared_total", "Shared.", {"y"}), std::logic_error);
  EXPECT_THROW(r.Gauges("test_shared_total", "Shared.", {"x"}), std::logic_error);
  EXPECT_THROW(r.Counters("bad-name", "x"), std::logic_error);
  EXPECT_THROW(r.Histograms("test_h", "x", {"le"}), std::logic_error);
  EXPECT_THROW(r.Histograms("test_h", "x", {}, {1, 0.5}), std::logic_error);
}

TEST(MetricsTest, ConcurrentIncrementsAddUpExactly) {
  MetricsRegistry r;
  auto& family = r.Counters("test_concurrent_total", "Concurrent.", {"worker"});
  auto& hist = r.Histograms("test_concurrent_seconds", "Concurrent.", {}, {0.5});
  constexpr int kThreads = 4;
  constexpr int kPerThread = 50000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Counter& shared = family.With({"shared"});  // kept, as a hot path would
      Histogram& h = hist.With({});
      for (int i = 0; i < kPerThread; ++i) {
        shared.Inc();
        family.With({"looked-up-" + std::to_string(i % 3)}).Inc();
        h.Observe(i % 2 ? 0.25 : 1.0);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(family.With({"shared"}).value(), static_cast<uint64_t>(kThreads * kPerThread));
  uint64_t looked_up = 0;
  for (int k = 0; k < 3; ++k) looked_up += family.With({"looked-up-" + std::to_string(k)}).value();
  EXPECT_EQ(looked_up, static_cast<uint64_t>(kThreads * kPerThread));
  auto snap = hist.With({}).snapshot();
  EXPECT_EQ(snap.count, static_cast<uint64_t>(kThreads * kPerThread));
  EXPECT_EQ(snap.cumulative[0], static_cast<uint64_t>(kThreads * kPerThread / 2));
  EXPECT_DOUBLE_EQ(snap.sum, kThreads * (kPerThread / 2) * 1.25);
}

TEST(MetricsTest, LabelSetsPastTheLimitGoToOtherAndAreCounted) {
  MetricsRegistry r;
  auto& family = r.Counters("test_devices_total", "Per device.", {"device", "kind"});
  for (size_t i = 0; i < kMaxChildrenPerFamily + 7; ++i) family.With({"dev-" + std::to_string(i), "x"}).Inc();
  // Known label sets still get their own child after the limit.
  family.With({"dev-0", "x"}).Inc();
  std::string text = FamilyText(r, "test_devices_total");
  EXPECT_EQ(Sample(text, "test_devices_total{device=\"dev-0\",kind=\"x\"}"), "2");
  EXPECT_EQ(Sample(text, "test_devices_total{device=\"other\",kind=\"other\"}"), "7");
  EXPECT_EQ(Sample(text, "test_devices_total{device=\"dev-" + std::to_string(kMaxChildrenPerFamily + 3) + "\",kind=\"x\"}"), "");
  size_t lines = 0;
  for (char c : text) lines += c == '\n';
  EXPECT_EQ(lines, 2 + kMaxChildrenPerFamily + 1);  // HELP, TYPE, the children, "other"
  EXPECT_EQ(Sample(FamilyText(r, "bffd_metrics_label_overflow_total"),
                   "bffd_metrics_label_overflow_total{family=\"test_devices_total\"}"),
            "7");
  // A wrong number of label values is a bug, but it must not crash or create a malformed series.
  family.With({"only-one"}).Inc();
  EXPECT_EQ(Sample(FamilyText(r, "test_devices_total"), "test_devices_total{device=\"other\",kind=\"other\"}"), "8");
}

TEST(MetricsTest, LongLabelValuesAreClipped) {
  MetricsRegistry r;
  auto& family = r.Counters("test_clip_total", "Clipped.", {"v"});
  std::string huge(10000, 'a');
  family.With({huge}).Inc();
  family.With({huge + "b"}).Inc();  // same first kMaxLabelValueBytes bytes: the same child
  EXPECT_EQ(Sample(FamilyText(r, "test_clip_total"), "test_clip_total{v=\"" + std::string(kMaxLabelValueBytes, 'a') + "\"}"), "2");
}

TEST(MetricsTest, CallbacksAreReadAtScrapeTime) {
  MetricsRegistry r;
  double depth = 3;
  r.GaugeCallback("test_queue_depth", "Queue depth.", [&] { return depth; });
  r.Counters("test_cache_hits_total", "Hits.", {"client"}).AddCallback({"mobile"}, [] { return 42.0; });
  EXPECT_EQ(Sample(r.Render(), "test_queue_depth"), "3");
  depth = 0.5;
  EXPECT_EQ(Sample(r.Render(), "test_queue_depth"), "0.5");
  EXPECT_EQ(Sample(r.Render(), "test_cache_hits_total{client=\"mobile\"}"), "42");
}

TEST(MetricsTest, ValuesAreFormattedForPrometheus) {
  EXPECT_EQ(FormatMetricValue(0), "0");
  EXPECT_EQ(FormatMetricValue(12345678901.0), "12345678901");
  EXPECT_EQ(FormatMetricValue(0.1), "0.1");
  EXPECT_EQ(FormatMetricValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatMetricValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatMetricValue(std::nan("")), "NaN");
  EXPECT_EQ(FormatMetricValue(1e-9), "1e-09");
}

TEST(MetricsTest, ProcessMetricsDescribeThisProcess) {
  MetricsRegistry r;
  RegisterProcessMetrics(r);
  std::string text = r.Render();
  double rss = std::stod(Sample(text, "process_resident_memory_bytes"));
  double fds = std::stod(Sample(text, "process_open_fds"));
  double cpu = std::stod(Sample(text, "process_cpu_seconds_total"));
  double start = std::stod(Sample(text, "process_start_time_seconds"));
  EXPECT_GT(rss, 1024 * 1024);
  EXPECT_GE(fds, 3);  // stdin, stdout, stderr
  EXPECT_GE(cpu, 0);
  double now = static_cast<double>(std::time(nullptr));
  EXPECT_LE(start, now + 1);
  EXPECT_GT(start, now - 3600);  // this test process started moments ago, not at the epoch
  EXPECT_NE(text.find("# TYPE process_cpu_seconds_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE process_open_fds gauge\n"), std::string::npos);
}

}  // namespace
}  // namespace bff
