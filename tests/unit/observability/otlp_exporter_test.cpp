// OTLP exporter against a real loopback collector: exact OTLP JSON, batching, drops when the queue is
// full or the collector fails, drain on shutdown.
#include "observability/otlp_exporter.h"

#include <functional>
#include <limits>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <gtest/gtest.h>

#include "common/config.h"
#include "common/log.h"
#include "support/otlp_receiver.h"

namespace bff {
namespace {

using namespace std::chrono_literals;
using testing::OtlpReceiver;
using json = nlohmann::json;

constexpr auto kWait = 10s;

TimePoint In(Duration d) { return Clock::now() + d; }

OtlpExporterOptions Options(const std::string& url) {
  OtlpExporterOptions o;
  o.collector_url = url;
  o.max_delay_ms = 60000;  // batches leave when full or flushed, never on a timer, unless a test says so
  o.timeout_ms = 10000;
  return o;
}

std::shared_ptr<OtlpExporter> MustCreate(OtlpExporterOptions o) {
  auto e = OtlpExporter::Create(std::move(o));
  if (!e.ok()) ADD_FAILURE() << e.status().ToString();
  return e.ok() ? e.value() : nullptr;
}

Span MakeSpan(const std::string& trace_id, int i) {
  Span s;
  s.trace_id = trace_id;
  s.span_id = RandomIdHex(8);
  s.name = "span-" + std::to_string(i);
  s.kind = SpanKind::kInternal;
  s.start_unix_nano = 1700000000000000000 + i;
  s.end_unix_nano = s.start_unix_nano + 1000;
  return s;
}

// A loopback port with nothing listening on it.
uint16_t ClosedPort() {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor a(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();  // closed when `a` goes
}

class LogCapture {
 public:
  LogCapture() {
    log::SetSink([this](std::string_view line) {
      std::lock_guard<std::mutex> lock(mu_);
      lines_.emplace_back(line);
    });
  }
  ~LogCapture() { log::SetSink(nullptr); }
  bool Contains(std::string_view text) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& l : lines_) {
      if (l.find(text) != std::string::npos) return true;
    }
    return false;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> lines_;
};

json Attr(const std::string& key, json value) { return {{"key", key}, {"value", std::move(value)}}; }

TEST(CollectorUrlTest, ParsesHostPortAndPrefix) {
  auto e = ParseCollectorUrl("http://collector.internal:4318");
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(e->host, "collector.internal");
  EXPECT_EQ(e->port, 4318);
  EXPECT_EQ(e->path, "/v1/traces");
  e = ParseCollectorUrl("HTTP://10.0.0.1/otlp/");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->host, "10.0.0.1");
  EXPECT_EQ(e->port, 80);
  EXPECT_EQ(e->path, "/otlp/v1/traces");
  e = ParseCollectorUrl("http://[::1]:4318");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->host, "::1");
  EXPECT_EQ(e->port, 4318);
}

TEST(CollectorUrlTest, RejectsWhatItCannotUse) {
  for (const char* bad : {"", "collector:4318", "https://collector:4318", "http://", "http://:4318",
                          "http://host:", "http://host:0", "http://host:65536", "http://host:43a8",
                          "http://user:pw@host:4318", "http://host:4318/?x=1", "http://host/#f", "http://[::1",
                          "http://[::1]x", "http://ho st"}) {
    EXPECT_FALSE(ParseCollectorUrl(bad).ok()) << bad;
  }
}

TEST(OtlpExporterTest, CreateNamesTheBadSetting) {
  struct Case {
    std::function<void(OtlpExporterOptions&)> change;
    std::string setting;
  };
  std::vector<Case> cases = {
      {[](auto& o) { o.collector_url = "https://x"; }, "tracing.collector_url"},
      {[](auto& o) { o.max_queue = 0; }, "tracing.max_queue"},
      {[](auto& o) { o.max_batch = 0; }, "tracing.max_batch"},
      {[](auto& o) { o.max_batch = o.max_queue + 1; }, "tracing.max_batch"},
      {[](auto& o) { o.max_delay_ms = 0; }, "tracing.max_delay_ms"},
      {[](auto& o) { o.timeout_ms = -1; }, "tracing.timeout_ms"},
      {[](auto& o) { o.service_name.clear(); }, "tracing.service_name"},
  };
  for (const auto& c : cases) {
    OtlpExporterOptions o = Options("http://127.0.0.1:4318");
    c.change(o);
    auto e = OtlpExporter::Create(o);
    ASSERT_FALSE(e.ok()) << c.setting;
    EXPECT_EQ(e.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(e.status().message().find(c.setting), std::string::npos) << e.status().message();
  }
}

TEST(OtlpExporterTest, SpansReachTheCollectorAsOtlpJson) {
  OtlpReceiver receiver;
  OtlpExporterOptions o = Options(receiver.url());
  o.service_version = "1.2.3";
  auto exporter = MustCreate(o);
  ASSERT_NE(exporter, nullptr);
  Tracer tracer(exporter);

  TraceContext entry = TraceContext::NewRoot();
  TraceContext hop = entry.Child();
  ActiveSpan span = tracer.Start("GET /web/v1/products/{sku}", SpanKind::kServer, hop);
  span.SetAttribute(span_attr::kProtocol, "http")
      .SetAttribute(span_attr::kClientKind, "web")
      .SetAttribute(span_attr::kHttpRoute, "/web/v1/products/{sku}")
      .SetAttribute(span_attr::kHttpStatusCode, 200)
      .SetAttribute("ratio", 0.5)
      .SetAttribute(span_attr::kCacheHit, true)
      .SetAttribute(span_attr::kDegraded, "reviews");
  span.SetError("reviews timed out");
  span.End();
  ASSERT_TRUE(exporter->Flush(In(kWait)));

  auto spans = receiver.WaitForSpans(entry.trace_id, 1, kWait);
  ASSERT_EQ(spans.size(), 1u);
  auto requests = receiver.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "POST");
  EXPECT_EQ(requests[0].target, "/v1/traces");
  EXPECT_EQ(requests[0].content_type, "application/json");

  json want_resource = {{"attributes", {Attr("service.name", {{"stringValue", "bffd"}}),
                                        Attr("service.version", {{"stringValue", "1.2.3"}})}}};
  EXPECT_EQ(spans[0].resource, want_resource);
  EXPECT_EQ(spans[0].scope, (json{{"name", "bffd"}, {"version", "1.2.3"}}));

  const json& s = spans[0].span;
  EXPECT_EQ(s["traceId"], entry.trace_id);
  EXPECT_EQ(s["spanId"], hop.span_id);
  EXPECT_EQ(s["parentSpanId"], entry.span_id);
  EXPECT_EQ(s["name"], "GET /web/v1/products/{sku}");
  EXPECT_EQ(s["kind"], 2);  // SPAN_KIND_SERVER
  ASSERT_TRUE(s["startTimeUnixNano"].is_string());
  ASSERT_TRUE(s["endTimeUnixNano"].is_string());
  EXPECT_LE(std::stoll(s["startTimeUnixNano"].get<std::string>()), std::stoll(s["endTimeUnixNano"].get<std::string>()));
  EXPECT_GT(std::stoll(s["startTimeUnixNano"].get<std::string>()), 1600000000000000000);
  json want_attrs = {
      Attr("network.protocol.name", {{"stringValue", "http"}}),
      Attr("bff.client.kind", {{"stringValue", "web"}}),
      Attr("http.route", {{"stringValue", "/web/v1/products/{sku}"}}),
      Attr("http.response.status_code", {{"intValue", "200"}}),
      Attr("ratio", {{"doubleValue", 0.5}}),
      Attr("bff.cache.hit", {{"boolValue", true}}),
      Attr("bff.degraded", {{"stringValue", "reviews"}}),
  };
  EXPECT_EQ(s["attributes"], want_attrs);
  EXPECT_EQ(s["status"], (json{{"code", 2}, {"message", "reviews timed out"}}));

  EXPECT_EQ(exporter->counters().exported_spans.load(), 1u);
  EXPECT_EQ(exporter->counters().exported_batches.load(), 1u);
  EXPECT_TRUE(exporter->Shutdown(In(kWait)));
}

TEST(OtlpExporterTest, RootSpanHasNoParentAndDefaultsToOurVersion) {
  OtlpReceiver receiver;
  auto exporter = MustCreate(Options(receiver.url() + "/otlp/"));
  ASSERT_NE(exporter, nullptr);
  Span s = MakeSpan(RandomIdHex(16), 0);
  std::string trace_id = s.trace_id;
  exporter->Record(std::move(s));
  ASSERT_TRUE(exporter->Flush(In(kWait)));
  auto spans = receiver.WaitForSpans(trace_id, 1, kWait);
  ASSERT_EQ(spans.size(), 1u);
  EXPECT_FALSE(spans[0].span.contains("parentSpanId"));
  EXPECT_FALSE(spans[0].span.contains("attributes"));
  EXPECT_EQ(spans[0].span["kind"], 1);  // SPAN_KIND_INTERNAL
  EXPECT_EQ(spans[0].span["status"], (json{{"code", 0}}));
  EXPECT_EQ(spans[0].span["startTimeUnixNano"], "1700000000000000000");
  EXPECT_EQ(spans[0].span["endTimeUnixNano"], "1700000000000001000");
  EXPECT_EQ(spans[0].resource["attributes"][1]["value"]["stringValue"], VersionString());
  EXPECT_EQ(receiver.requests()[0].target, "/otlp/v1/traces");
  EXPECT_EQ(exporter->endpoint(), receiver.url() + "/otlp/v1/traces");
}

TEST(OtlpExporterTest, ResolvesAHostName) {
  OtlpReceiver receiver;
  auto exporter = MustCreate(Options("http://localhost:" + std::to_string(receiver.port())));
  ASSERT_NE(exporter, nullptr);
  Span s = MakeSpan(RandomIdHex(16), 0);
  std::string trace_id = s.trace_id;
  exporter->Record(std::move(s));
  ASSERT_TRUE(exporter->Flush(In(kWait)));
  EXPECT_EQ(receiver.WaitForSpans(trace_id, 1, kWait).size(), 1u);
  EXPECT_EQ(exporter->counters().exported_spans.load(), 1u);
}

TEST(OtlpExporterTest, BatchesOfAtMostMaxBatch) {
  OtlpReceiver receiver;
  OtlpExporterOptions o = Options(receiver.url());
  o.max_batch = 3;
  auto exporter = MustCreate(o);
  ASSERT_NE(exporter, nullptr);
  const std::string trace_id = RandomIdHex(16);
  constexpr int kSpans = 10;
  for (int i = 0; i < kSpans; ++i) exporter->Record(MakeSpan(trace_id, i));
  ASSERT_TRUE(exporter->Flush(In(kWait)));

  auto requests = receiver.requests();
  ASSERT_EQ(requests.size(), 4u);  // ceil(10 / 3)
  std::vector<size_t> sizes;
  for (const auto& r : requests) sizes.push_back(r.json["resourceSpans"][0]["scopeSpans"][0]["spans"].size());
  EXPECT_EQ(sizes, (std::vector<size_t>{3, 3, 3, 1}));
  auto spans = receiver.WaitForSpans(trace_id, kSpans, kWait);
  ASSERT_EQ(spans.size(), static_cast<size_t>(kSpans));
  for (int i = 0; i < kSpans; ++i) EXPECT_EQ(spans[i].span["name"], "span-" + std::to_string(i));  // in order
  EXPECT_EQ(exporter->counters().exported_batches.load(), 4u);
  EXPECT_EQ(exporter->counters().exported_spans.load(), static_cast<uint64_t>(kSpans));
  EXPECT_EQ(exporter->counters().queued_spans.load(), static_cast<uint64_t>(kSpans));
}

TEST(OtlpExporterTest, PartialBatchLeavesAfterMaxDelay) {
  OtlpReceiver receiver;
  OtlpExporterOptions o = Options(receiver.url());
  o.max_delay_ms = 20;
  auto exporter = MustCreate(o);
  ASSERT_NE(exporter, nullptr);
  const std::string trace_id = RandomIdHex(16);
  exporter->Record(MakeSpan(trace_id, 0));
  // No Flush(): only the batch timer can send it.
  EXPECT_EQ(receiver.WaitForSpans(trace_id, 1, kWait).size(), 1u);
}

TEST(OtlpExporterTest, FullQueueDropsAndCountsWithoutBlockingTheCaller) {
  OtlpReceiver receiver;
  receiver.set_mode(OtlpReceiver::Mode::kHang);
  OtlpExporterOptions o = Options(receiver.url());
  o.max_queue = 8;
  o.max_batch = 4;
  o.timeout_ms = 120000;  // the collector holds the first batch for as long as the test runs
  auto exporter = MustCreate(o);
  ASSERT_NE(exporter, nullptr);
  const std::string trace_id = RandomIdHex(16);

  // A full batch leaves at once and the collector sits on it: the exporter thread is now stuck.
  for (int i = 0; i < 4; ++i) exporter->Record(MakeSpan(trace_id, i));
  ASSERT_TRUE(receiver.WaitForRequests(1, kWait));

  // Ten times the queue: every Record() returns (the test gets past this loop), the queue takes 8.
  constexpr int kFlood = 10 * 8;
  for (int i = 0; i < kFlood; ++i) exporter->Record(MakeSpan(trace_id, 100 + i));
  const auto& c = exporter->counters();
  EXPECT_EQ(c.queued_spans.load(), 4u + 8u);
  EXPECT_EQ(c.dropped_spans_queue_full.load(), static_cast<uint64_t>(kFlood - 8));
  EXPECT_EQ(c.exported_spans.load(), 0u);

  // Shutdown cannot drain past a hung collector: it gives up at its deadline and says so.
  EXPECT_FALSE(exporter->Shutdown(In(200ms)));
  EXPECT_EQ(c.failed_batches.load(), 1u);
  EXPECT_EQ(c.dropped_spans_failed.load(), 4u);
  EXPECT_EQ(c.dropped_spans_shutdown.load(), 8u);
  exporter->Record(MakeSpan(trace_id, 999));
  EXPECT_EQ(c.dropped_spans_shutdown.load(), 9u);
}

TEST(OtlpExporterTest, AbsentCollectorCountsFailedBatchesAndLogsOnce) {
  LogCapture logs;
  OtlpExporterOptions o = Options("http://127.0.0.1:" + std::to_string(ClosedPort()));
  o.max_batch = 2;
  auto exporter = MustCreate(o);
  ASSERT_NE(exporter, nullptr);
  const std::string trace_id = RandomIdHex(16);
  for (int i = 0; i < 5; ++i) exporter->Record(MakeSpan(trace_id, i));
  ASSERT_TRUE(exporter->Flush(In(kWait)));  // handed on (and lost), not stuck
  const auto& c = exporter->counters();
  EXPECT_EQ(c.failed_batches.load(), 3u);
  EXPECT_EQ(c.dropped_spans_failed.load(), 5u);
  EXPECT_EQ(c.exported_spans.load(), 0u);
  EXPECT_TRUE(logs.Contains("span export failing"));
  EXPECT_TRUE(exporter->Shutdown(In(kWait)));
}

TEST(OtlpExporterTest, CollectorErrorsDropBatchesUntilItRecovers) {
  LogCapture logs;
  OtlpReceiver receiver;
  receiver.set_mode(OtlpReceiver::Mode::kFail);
  auto exporter = MustCreate(Options(receiver.url()));
  ASSERT_NE(exporter, nullptr);
  const std::string trace_id = RandomIdHex(16);
  exporter->Record(MakeSpan(trace_id, 0));
  exporter->Record(MakeSpan(trace_id, 1));
  ASSERT_TRUE(exporter->Flush(In(kWait)));
  const auto& c = exporter->counters();
  EXPECT_EQ(c.failed_batches.load(), 1u);
  EXPECT_EQ(c.dropped_spans_failed.load(), 2u);
  EXPECT_TRUE(logs.Contains("span export failing"));

  receiver.set_mode(OtlpReceiver::Mode::kAccept);
  exporter->Record(MakeSpan(trace_id, 2));
  ASSERT_TRUE(exporter->Flush(In(kWait)));
  EXPECT_EQ(c.exported_spans.load(), 1u);
  EXPECT_EQ(c.exported_batches.load(), 1u);
  EXPECT_TRUE(logs.Contains("span export recovered"));
  EXPECT_EQ(receiver.request_count(), 2u);  // the failed batch is not retried
}

TEST(OtlpExporterTest, CountsSpansTheCollectorRejected) {
  OtlpReceiver receiver;
  receiver.set_response_body(R"({"partialSuccess":{"rejectedSpans":"2","errorMessage":"too old"}})");
  auto exporter = MustCreate(Options(receiver.url()));
  ASSERT_NE(exporter, nullptr);
  const std::string trace_id = RandomIdHex(16);
  for (int i = 0; i < 3; ++i) exporter->Record(MakeSpan(trace_id, i));
  ASSERT_TRUE(exporter->Flush(In(kWait)));
  EXPECT_EQ(exporter->counters().rejected_spans.load(), 2u);
  EXPECT_EQ(exporter->counters().exported_spans.load(), 3u);
}

TEST(OtlpExporterTest, KeepAliveConnectionCarriesSeveralBatches) {
  OtlpReceiver receiver;
  OtlpExporterOptions o = Options(receiver.url());
  o.max_batch = 1;
  auto exporter = MustCreate(o);
  ASSERT_NE(exporter, nullptr);
  const std::string trace_id = RandomIdHex(16);
  for (int i = 0; i < 5; ++i) {
    exporter->Record(MakeSpan(trace_id, i));
    ASSERT_TRUE(exporter->Flush(In(kWait)));
  }
  EXPECT_EQ(receiver.request_count(), 5u);
  EXPECT_EQ(receiver.connection_count(), 1u);
  EXPECT_EQ(exporter->counters().exported_spans.load(), 5u);
}

TEST(OtlpExporterTest, ShutdownDrainsWhatIsQueued) {
  OtlpReceiver receiver;
  auto exporter = MustCreate(Options(receiver.url()));  // batch 512, delay 60 s: only a drain sends these
  ASSERT_NE(exporter, nullptr);
  const std::string trace_id = RandomIdHex(16);
  for (int i = 0; i < 20; ++i) exporter->Record(MakeSpan(trace_id, i));
  EXPECT_TRUE(exporter->Shutdown(In(kWait)));
  EXPECT_EQ(receiver.spans().size(), 20u);
  EXPECT_EQ(exporter->counters().exported_spans.load(), 20u);
  EXPECT_TRUE(exporter->Shutdown(In(kWait)));  // again: nothing to do
  exporter->Record(MakeSpan(trace_id, 20));
  EXPECT_EQ(exporter->counters().dropped_spans_shutdown.load(), 1u);
}

TEST(OtlpExporterTest, UntrustedTextStillMakesValidJson) {
  OtlpReceiver receiver;
  auto exporter = MustCreate(Options(receiver.url()));
  ASSERT_NE(exporter, nullptr);
  Span s = MakeSpan(RandomIdHex(16), 0);
  s.name = "GET /\xff\xfe\"\n";
  s.SetAttribute("nan", std::numeric_limits<double>::quiet_NaN());
  s.SetAttribute("inf", -std::numeric_limits<double>::infinity());
  std::string trace_id = s.trace_id;
  exporter->Record(std::move(s));
  ASSERT_TRUE(exporter->Flush(In(kWait)));
  auto spans = receiver.WaitForSpans(trace_id, 1, kWait);
  ASSERT_EQ(spans.size(), 1u);
  EXPECT_TRUE(spans[0].span["name"].is_string());
  EXPECT_EQ(spans[0].span["attributes"][0]["value"], (json{{"doubleValue", "NaN"}}));
  EXPECT_EQ(spans[0].span["attributes"][1]["value"], (json{{"doubleValue", "-Infinity"}}));
  EXPECT_EQ(exporter->counters().exported_spans.load(), 1u);
}

TEST(OtlpEncodingTest, TextKeepsEveryValidCharacterAndReplacesOnlyBadBytes) {
  Span s = MakeSpan(std::string(32, 'a'), 0);
  // quote, backslash, control bytes, two- three- and four-byte UTF-8, a lone continuation byte, a
  // truncated sequence, an overlong '/', a UTF-16 surrogate
  s.name = std::string("q\" b\\ t\t nl\n nul") + '\0' + "\x01 caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa6 " +
           "\x80 \xe2\x82 \xc0\xaf \xed\xa0\x80.";
  s.SetAttribute("half", 0.5);
  s.SetAttribute("whole", 3.0);
  s.SetAttribute("tiny", 1e-300);
  s.SetAttribute("n", int64_t{-9007199254740993});
  s.SetAttribute("yes", true);
  std::string wire = EncodeOtlpTracesJson({s}, "bffd", "1.2.3");
  auto doc = json::parse(wire);  // throws on anything that is not JSON
  const auto& span = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
  const std::string bad = "\xef\xbf\xbd";
  EXPECT_EQ(span["name"], std::string("q\" b\\ t\t nl\n nul") + '\0' + "\x01 caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa6 " +
                              bad + " " + bad + bad + " " + bad + bad + " " + bad + bad + bad + ".");
  EXPECT_EQ(span["attributes"][0]["value"]["doubleValue"].get<double>(), 0.5);
  EXPECT_TRUE(span["attributes"][1]["value"]["doubleValue"].is_number_float());
  EXPECT_EQ(span["attributes"][1]["value"]["doubleValue"].get<double>(), 3.0);
  EXPECT_EQ(span["attributes"][2]["value"]["doubleValue"].get<double>(), 1e-300);
  EXPECT_EQ(span["attributes"][3]["value"], (json{{"intValue", "-9007199254740993"}}));
  EXPECT_EQ(span["attributes"][4]["value"], (json{{"boolValue", true}}));
  EXPECT_EQ(doc["resourceSpans"][0]["resource"]["attributes"][1], Attr("service.version", {{"stringValue", "1.2.3"}}));
  EXPECT_EQ(doc["resourceSpans"][0]["scopeSpans"][0]["scope"], (json{{"name", "bffd"}, {"version", "1.2.3"}}));
}

TEST(OtlpExporterTest, ManyThreadsRecordingLoseNothingThatWasCounted) {
  OtlpReceiver receiver;
  OtlpExporterOptions o = Options(receiver.url());
  o.max_queue = 4096;
  o.max_batch = 64;
  auto exporter = MustCreate(o);
  ASSERT_NE(exporter, nullptr);
  const std::string trace_id = RandomIdHex(16);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 500;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) exporter->Record(MakeSpan(trace_id, t * kPerThread + i));
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_TRUE(exporter->Shutdown(In(kWait)));
  const auto& c = exporter->counters();
  EXPECT_EQ(c.queued_spans.load() + c.dropped_spans_queue_full.load(), static_cast<uint64_t>(kThreads * kPerThread));
  EXPECT_EQ(c.exported_spans.load(), c.queued_spans.load());
  auto spans = receiver.spans();
  EXPECT_EQ(spans.size(), c.exported_spans.load());
  std::set<std::string> ids;
  for (const auto& s : spans) ids.insert(s.span["spanId"].get<std::string>());
  EXPECT_EQ(ids.size(), spans.size());  // no span sent twice
}

}  // namespace
}  // namespace bff
