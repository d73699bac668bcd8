// Metric families, children, overflow folding and the Prometheus text exposition format 0.0.4.
#include "observability/metrics.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <type_traits>
#include <stdexcept>

namespace bff {
namespace {

constexpr char kOverflowFamily[] = "bffd_metrics_label_overflow_total";

bool ValidName(std::string_view name, bool allow_colon) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (allow_colon && c == ':') ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

std::string_view TypeName(MetricType t) {
  switch (t) {
    case MetricType::kCounter: return "counter";
    case MetricType::kGauge: return "gauge";
    case MetricType::kHistogram: return "histogram";
  }
  return "untyped";
}

std::string EscapeHelp(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string_view Clip(std::string_view v) { return v.size() > kMaxLabelValueBytes ? v.substr(0, kMaxLabelValueBytes) : v; }

void AppendSample(std::string& out, const std::string& name, std::string_view suffix, const std::string& labels,
                  std::string_view value) {
  out += name;
  out += suffix;
  if (!labels.empty()) {
    out += labels;
    out += '}';
  }
  out += ' ';
  out += value;
  out += '\n';
}

}  // namespace

const std::vector<double>& DefaultLatencyBuckets() {
  static const std::vector<double> kBuckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                               0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
  return kBuckets;
}

std::string FormatMetricValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  // Integral values (most counters) print without a fraction or exponent.
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof(buf), "%.0f", v);
    return buf;
  }
  // Shortest text that reads back as the same double; fixed notation in the usual range so bucket
  // bounds read naturally ("0.0001", not "1e-04").
  auto fmt = (std::fabs(v) >= 1e-6 && std::fabs(v) < 1e15) ? std::chars_format::fixed : std::chars_format::general;
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v, fmt);
  if (ec != std::errc()) return "NaN";
  return std::string(buf, end);
}

std::string EscapeLabelValue(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

Histogram::Histogram(const std::vector<double>& bounds)
    : bounds_(bounds), counts_(std::make_unique<std::atomic<uint64_t>[]>(bounds.size() + 1)) {}

void Histogram::Observe(double v) {
  if (std::isnan(v)) return;
  size_t i = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.cumulative.resize(bounds_.size() + 1);
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    running += counts_[i].load(std::memory_order_relaxed);
    s.cumulative[i] = running;
  }
  // The count is the sum of the buckets read here, so +Inf and _count always agree within one scrape.
  s.count = running;
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

MetricFamilyBase::MetricFamilyBase(std::string name, std::string help, MetricType type, std::vector<std::string> label_names)
    : name_(std::move(name)), help_(std::move(help)), type_(type), label_names_(std::move(label_names)) {}

void MetricFamilyBase::RenderHeader(std::string& out) const {
  out += "# HELP ";
  out += name_;
  out += ' ';
  out += EscapeHelp(help_);
  out += "\n# TYPE ";
  out += name_;
  out += ' ';
  out += TypeName(type_);
  out += '\n';
}

std::string MetricFamilyBase::LabelPrefix(const std::vector<std::string>& values) const {
  if (label_names_.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < label_names_.size(); ++i) {
    if (i > 0) out += ',';
    out += label_names_[i];
    out += "=\"";
    out += EscapeLabelValue(values[i]);
    out += '"';
  }
  return out;
}

void MetricFamilyBase::CountOverflow() const {
  if (overflow_) overflow_->With({name_}).Inc();
}

template <typename T>
MetricFamily<T>::MetricFamily(std::string name, std::string help, MetricType type, std::vector<std::string> label_names,
                              std::vector<double> buckets)
    : MetricFamilyBase(std::move(name), std::move(help), type, std::move(label_names)), buckets_(std::move(buckets)) {
  // A family without labels has exactly one child; create it so it is exposed (as 0) from the start.
  if (label_names_.empty()) With(std::span<const std::string_view>());
}

template <typename T>
T& MetricFamily<T>::OtherLocked() {
  if (other_) return *other_;
  std::vector<std::string> values(label_names_.size(), kOverflowLabelValue);
  Child& c = children_[values];
  if (!c.metric) {
    if constexpr (std::is_same_v<T, Histogram>) {
      c.metric = std::make_unique<Histogram>(buckets_);
    } else {
      c.metric = std::make_unique<T>();
    }
  }
  other_ = c.metric.get();
  return *other_;
}

template <typename T>
T& MetricFamily<T>::With(std::span<const std::string_view> values) {
  bool overflowed = false;
  T* found = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (values.size() != label_names_.size()) {
      found = &OtherLocked();
    } else {
      // Clipping first makes a long value and its prefix the same child, which is what is exposed anyway.
      std::string_view clipped[8];
      std::vector<std::string_view> clipped_big;
      std::span<const std::string_view> key;
      if (values.size() <= std::size(clipped)) {
        for (size_t i = 0; i < values.size(); ++i) clipped[i] = Clip(values[i]);
        key = std::span<const std::string_view>(clipped, values.size());
      } else {
        for (auto v : values) clipped_big.push_back(Clip(v));
        key = clipped_big;
      }
      auto it = children_.find(key);
      if (it != children_.end() && it->second.metric) {
        found = it->second.metric.get();
      } else if (it != children_.end()) {
        // A callback child owns these labels; recording into it would be lost, so it goes to "other".
        found = &OtherLocked();
        overflowed = true;
      } else if (children_.size() >= kMaxChildrenPerFamily) {
        found = &OtherLocked();
        overflowed = true;
      } else {
        std::vector<std::string> owned(key.begin(), key.end());
        Child& c = children_[std::move(owned)];
        if constexpr (std::is_same_v<T, Histogram>) {
          c.metric = std::make_unique<Histogram>(buckets_);
        } else {
          c.metric = std::make_unique<T>();
        }
        found = c.metric.get();
      }
    }
  }
  if (overflowed) CountOverflow();
  return *found;
}

template <typename T>
T& MetricFamily<T>::With(const std::vector<std::string>& values) {
  std::vector<std::string_view> views(values.begin(), values.end());
  return With(std::span<const std::string_view>(views));
}

template <typename T>
void MetricFamily<T>::AddCallback(const std::vector<std::string>& values, std::function<double()> read) {
  if constexpr (std::is_same_v<T, Histogram>) {
    throw std::logic_error(name_ + ": histograms take no callbacks");
  } else {
    if (values.size() != label_names_.size()) throw std::logic_error(name_ + ": wrong number of label values");
    std::vector<std::string> key;
    for (const auto& v : values) key.emplace_back(Clip(v));
    std::lock_guard<std::mutex> lock(mu_);
    Child& c = children_[key];
    if (c.metric && !label_names_.empty()) throw std::logic_error(name_ + ": label set already recorded directly");
    // A label-free family's stored child gives way to the callback.
    c.metric.reset();
    c.read = std::move(read);
  }
}

template <typename T>
void MetricFamily<T>::Render(std::string& out) const {
  struct Row {
    std::vector<std::string> labels;
    const T* metric;
    std::function<double()> read;
  };
  std::vector<Row> rows;
  {
    std::lock_guard<std::mutex> lock(mu_);
    rows.reserve(children_.size());
    for (const auto& [labels, child] : children_) rows.push_back({labels, child.metric.get(), child.read});
  }
  RenderHeader(out);
  for (const Row& row : rows) {
    std::string labels = LabelPrefix(row.labels);
    if constexpr (std::is_same_v<T, Histogram>) {
      Histogram::Snapshot s = row.metric->snapshot();
      std::string prefix = labels.empty() ? "{" : labels + ",";
      for (size_t i = 0; i < s.cumulative.size(); ++i) {
        std::string le = i < buckets_.size() ? FormatMetricValue(buckets_[i]) : "+Inf";
        AppendSample(out, name_, "_bucket", prefix + "le=\"" + le + "\"", std::to_string(s.cumulative[i]));
      }
      AppendSample(out, name_, "_sum", labels, FormatMetricValue(s.sum));
      AppendSample(out, name_, "_count", labels, std::to_string(s.count));
    } else {
      std::string value;
      if (row.read) {
        value = FormatMetricValue(row.read());
      } else if constexpr (std::is_same_v<T, Counter>) {
        value = std::to_string(row.metric->value());
      } else {
        value = FormatMetricValue(row.metric->value());
      }
      AppendSample(out, name_, "", labels, value);
    }
  }
}

template class MetricFamily<Counter>;
template class MetricFamily<Gauge>;
template class MetricFamily<Histogram>;

MetricsRegistry::MetricsRegistry() {
  overflow_ = &GetOrCreate<Counter>(kOverflowFamily,
                                    "Recordings folded into a family's \"other\" child because the family already held "
                                    "its maximum number of label sets.",
                                    MetricType::kCounter, {"family"}, {});
}

template <typename T>
MetricFamily<T>& MetricsRegistry::GetOrCreate(const std::string& name, const std::string& help, MetricType type,
                                              std::vector<std::string> label_names, std::vector<double> buckets) {
  if (!ValidName(name, true)) throw std::logic_error("metric name '" + name + "' is not a valid Prometheus name");
  for (const auto& l : label_names) {
    if (!ValidName(l, false) || l.rfind("__", 0) == 0 || (type == MetricType::kHistogram && l == "le")) {
      throw std::logic_error(name + ": label name '" + l + "' is not allowed");
    }
  }
  if (type == MetricType::kHistogram) {
    if (buckets.empty() || !std::is_sorted(buckets.begin(), buckets.end()) ||
        std::adjacent_find(buckets.begin(), buckets.end()) != buckets.end()) {
      throw std::logic_error(name + ": buckets must be strictly ascending and not empty");
    }
    // +Inf is always added; a bound of +Inf given explicitly would appear twice.
    if (std::isinf(buckets.back())) buckets.pop_back();
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto it = families_.find(name);
  if (it != families_.end()) {
    auto* existing = dynamic_cast<MetricFamily<T>*>(it->second.get());
    if (!existing || existing->type() != type || existing->label_names() != label_names || existing->buckets() != buckets) {
      throw std::logic_error("metric '" + name + "' registered twice with different type, labels or buckets");
    }
    return *existing;
  }
  auto family = std::make_unique<MetricFamily<T>>(name, help, type, std::move(label_names), std::move(buckets));
  MetricFamily<T>& ref = *family;
  // The overflow family counts for the others; its own label set (one per family) is bounded already.
  ref.overflow_ = overflow_;
  families_.emplace(name, std::move(family));
  return ref;
}

CounterFamily& MetricsRegistry::Counters(const std::string& name, const std::string& help, std::vector<std::string> label_names) {
  return GetOrCreate<Counter>(name, help, MetricType::kCounter, std::move(label_names), {});
}

GaugeFamily& MetricsRegistry::Gauges(const std::string& name, const std::string& help, std::vector<std::string> label_names) {
  return GetOrCreate<Gauge>(name, help, MetricType::kGauge, std::move(label_names), {});
}

HistogramFamily& MetricsRegistry::Histograms(const std::string& name, const std::string& help,
                                             std::vector<std::string> label_names, std::vector<double> buckets) {
  return GetOrCreate<Histogram>(name, help, MetricType::kHistogram, std::move(label_names), std::move(buckets));
}

void MetricsRegistry::CounterCallback(const std::string& name, const std::string& help, std::function<double()> read) {
  Counters(name, help).AddCallback({}, std::move(read));
}

void MetricsRegistry::GaugeCallback(const std::string& name, const std::string& help, std::function<double()> read) {
  Gauges(name, help).AddCallback({}, std::move(read));
}

std::string MetricsRegistry::Render() const {
  std::vector<const MetricFamilyBase*> families;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [name, f] : families_) families.push_back(f.get());
  }
  std::string out;
  for (const MetricFamilyBase* f : families) f->Render(out);
  return out;
}

}  // namespace bff
