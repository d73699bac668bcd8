// Prometheus metrics without a third-party client: labelled counter, gauge and histogram families,
// samples read by callbacks at scrape time, and the text exposition format 0.0.4.
//
// The daemon owns one MetricsRegistry and hands it (or handles taken from it) to what it builds. A family
// is registered once by name, get-or-create: asking again with the same type, label names and buckets
// returns the same family, so two components may share one. A child (one label set) is found by its label
// values and lives as long as the registry; hot paths look it up once and keep the reference, so recording
// is one relaxed atomic add, with no lock and no allocation.
//
// Label values often come from outside (routes, device ids). A family holds at most
// kMaxChildrenPerFamily label sets; values for further sets go to the child whose every label value is
// "other", and bffd_metrics_label_overflow_total{family} counts them, so hostile input cannot grow
// memory without bound.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/scheduler.h"

namespace bff {

// Label sets one family may hold before new ones are folded into its "other" child.
inline constexpr size_t kMaxChildrenPerFamily = 1000;
// Longer label values are cut to this many bytes (a value is a name, never a payload).
inline constexpr size_t kMaxLabelValueBytes = 128;
// The label value standing in for label sets past the limit.
inline constexpr char kOverflowLabelValue[] = "other";
// Content-Type of Render()'s output.
inline constexpr char kPrometheusContentType[] = "text/plain; version=0.0.4; charset=utf-8";

// Default histogram buckets for latencies, in seconds: 100 us to 10 s, roughly 1-2.5-5 per decade.
// A cache hit is answered in tens of microseconds and a downstream call takes milliseconds; request
// deadlines are a few seconds, so nothing legitimate lands past 10 s.
const std::vector<double>& DefaultLatencyBuckets();

class Counter {
 public:
  void Inc(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double d) { value_.fetch_add(d, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Histogram {
 public:
  // `bounds`: ascending upper bounds, owned by the family (outlives the child).
  explicit Histogram(const std::vector<double>& bounds);

  // Counts `v` in the first bucket whose upper bound is >= v (NaN is ignored).
  void Observe(double v);
  void ObserveDuration(Duration d) { Observe(std::chrono::duration<double>(d).count()); }

  struct Snapshot {
    std::vector<uint64_t> cumulative;  // one per bound, then +Inf
    double sum = 0;
    uint64_t count = 0;                // always equal to the +Inf bucket
  };
  Snapshot snapshot() const;

 private:
  const std::vector<double>& bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // per bucket, not cumulative; last is +Inf
  std::atomic<double> sum_{0};
};

enum class MetricType { kCounter, kGauge, kHistogram };

template <typename T>
class MetricFamily;

// What the registry needs of a family; the typed MetricFamily<T> below is what callers use.
class MetricFamilyBase {
 public:
  MetricFamilyBase(std::string name, std::string help, MetricType type, std::vector<std::string> label_names);
  virtual ~MetricFamilyBase() = default;
  MetricFamilyBase(const MetricFamilyBase&) = delete;
  MetricFamilyBase& operator=(const MetricFamilyBase&) = delete;

  const std::string& name() const { return name_; }
  MetricType type() const { return type_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  // Appends # HELP, # TYPE and every sample, children in label-value order.
  virtual void Render(std::string& out) const = 0;

 protected:
  friend class MetricsRegistry;
  void RenderHeader(std::string& out) const;
  // `{a="x",b="y"` without the closing brace (so a histogram can add le), or "" without labels.
  std::string LabelPrefix(const std::vector<std::string>& values) const;
  void CountOverflow() const;

  const std::string name_;
  const std::string help_;
  const MetricType type_;
  const std::vector<std::string> label_names_;
  // bffd_metrics_label_overflow_total; its child for this family appears with the first overflow.
  MetricFamily<Counter>* overflow_ = nullptr;
};

// Orders label-value lists without building a key for each lookup.
struct LabelValuesLess {
  using is_transparent = void;
  template <typename A, typename B>
  bool operator()(const A& a, const B& b) const {
    return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(),
                                        [](std::string_view x, std::string_view y) { return x < y; });
  }
};

template <typename T>
class MetricFamily final : public MetricFamilyBase {
 public:
  MetricFamily(std::string name, std::string help, MetricType type, std::vector<std::string> label_names,
               std::vector<double> buckets = {});

  // The child for these label values (one per label name), created on first use and valid for the
  // registry's lifetime. A wrong number of values, or a new label set past kMaxChildrenPerFamily, gives
  // the "other" child.
  T& With(std::span<const std::string_view> values);
  T& With(std::initializer_list<std::string_view> values) { return With(std::span(values.begin(), values.size())); }
  T& With(const std::vector<std::string>& values);

  // A child whose value `read` returns at each scrape, for values kept elsewhere (queue depths, cache
  // sizes, counters of a component). Counters and gauges only. `read` runs on the scraping thread without
  // the family's lock held and must stay callable while the registry can be scraped.
  void AddCallback(const std::vector<std::string>& values, std::function<double()> read);

  const std::vector<double>& buckets() const { return buckets_; }
  void Render(std::string& out) const override;

 private:
  struct Child {
    std::unique_ptr<T> metric;
    std::function<double()> read;
  };
  T& OtherLocked();

  const std::vector<double> buckets_;  // histograms only
  mutable std::mutex mu_;
  std::map<std::vector<std::string>, Child, LabelValuesLess> children_;
  T* other_ = nullptr;
};

using CounterFamily = MetricFamily<Counter>;
using GaugeFamily = MetricFamily<Gauge>;
using HistogramFamily = MetricFamily<Histogram>;

class MetricsRegistry {
 public:
  MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // Get-or-create by name. Names follow Prometheus rules ([a-zA-Z_:][a-zA-Z0-9_:]*; labels without ':',
  // not "le" and not starting "__"). Registering a name again with another type, label names or buckets
  // is a programming error and throws std::logic_error (at start-up, where components are built).
  CounterFamily& Counters(const std::string& name, const std::string& help, std::vector<std::string> label_names = {});
  GaugeFamily& Gauges(const std::string& name, const std::string& help, std::vector<std::string> label_names = {});
  HistogramFamily& Histograms(const std::string& name, const std::string& help, std::vector<std::string> label_names = {},
                              std::vector<double> buckets = DefaultLatencyBuckets());

  // Label-free metrics whose value `read` returns at each scrape (see MetricFamily::AddCallback).
  void CounterCallback(const std::string& name, const std::string& help, std::function<double()> read);
  void GaugeCallback(const std::string& name, const std::string& help, std::function<double()> read);

  // Every family in the text exposition format 0.0.4, families sorted by name.
  std::string Render() const;

 private:
  template <typename T>
  MetricFamily<T>& GetOrCreate(const std::string& name, const std::string& help, MetricType type,
                               std::vector<std::string> label_names, std::vector<double> buckets);

  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<MetricFamilyBase>> families_;
  CounterFamily* overflow_ = nullptr;
};

// Formats a sample value as the exposition format expects: integers without a fraction, shortest
// round-trip decimals otherwise, "+Inf", "-Inf", "NaN".
std::string FormatMetricValue(double v);
// Escapes a label value (backslash, double quote, newline).
std::string EscapeLabelValue(std::string_view v);

}  // namespace bff
