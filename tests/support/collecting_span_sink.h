// A SpanSink that keeps every span it is given, for unit tests that check what a class records.
#pragma once

#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "observability/span.h"

namespace bff::testing {

class CollectingSpanSink : public SpanSink {
 public:
  void Record(Span span) override {
    std::lock_guard<std::mutex> lock(mu_);
    spans_.push_back(std::move(span));
  }
  std::vector<Span> spans() {
    std::lock_guard<std::mutex> lock(mu_);
    return spans_;
  }
  void Clear() {
    std::lock_guard<std::mutex> lock(mu_);
    spans_.clear();
  }
  // The spans named `name`, in the order they ended.
  std::vector<Span> Named(std::string_view name) {
    std::vector<Span> out;
    for (auto& s : spans()) {
      if (s.name == name) out.push_back(std::move(s));
    }
    return out;
  }

 private:
  std::mutex mu_;
  std::vector<Span> spans_;
};

// Attribute `key` of `span` when it holds a T; T{} otherwise.
template <typename T>
T SpanAttr(const Span& span, std::string_view key) {
  const AttributeValue* v = span.FindAttribute(key);
  return v && std::holds_alternative<T>(*v) ? std::get<T>(*v) : T{};
}

}  // namespace bff::testing
