// Spans end to end: bffd and bff-domain export to an OTLP receiver, and one trace shows every hop.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "domain/seed.h"
#include "protocols/msgpack/iot_codec.h"
#include "support/coap_client_output.h"
#include "support/otlp_receiver.h"
#include "support/processes.h"

namespace bff::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr char kCoapClient[] = "/usr/bin/coap-client-openssl";
constexpr char kTraceId[] = "0af7651916cd43dd8448eb211c80319c";
constexpr char kCallerSpanId[] = "b7ad6b7169203331";
// OTLP's SpanKind numbers.
constexpr int kServerKind = 2;
constexpr int kClientKind = 3;

std::string WriteConfig(const TempDir& dir, const std::string& body) {
  std::string path = dir.path() + "/bffd.toml";
  std::ofstream(path) << body;
  return path;
}

// The attribute `key` of an OTLP JSON span as a string ("" when absent); intValue stays decimal text.
std::string Attr(const json& span, const std::string& key) {
  for (const auto& a : span.value("attributes", json::array())) {
    if (a.value("key", "") != key) continue;
    const json& v = a["value"];
    if (v.contains("stringValue")) return v["stringValue"].get<std::string>();
    if (v.contains("intValue")) return v["intValue"].get<std::string>();
    if (v.contains("boolValue")) return v["boolValue"].get<bool>() ? "true" : "false";
  }
  return "";
}

std::string ServiceOf(const ReceivedSpan& s) {
  for (const auto& a : s.resource.value("attributes", json::array())) {
    if (a.value("key", "") == "service.name") return a["value"].value("stringValue", "");
  }
  return "";
}

// The spans of `trace_id` received so far, once `done` holds for them or 30 s passed.
std::vector<ReceivedSpan> SpansUntil(OtlpReceiver& receiver, const std::string& trace_id,
                                     const std::function<bool(const std::vector<ReceivedSpan>&)>& done) {
  std::vector<ReceivedSpan> spans;
  WaitFor(
      [&] {
        spans = receiver.WaitForSpans(trace_id, 1, 1s);
        return done(spans);
      },
      30s);
  return spans;
}

// bffd's IoT server spans of `trace_id` (its span for a device's message), once one arrived or 30 s passed.
std::vector<ReceivedSpan> IotEntrySpans(OtlpReceiver& receiver, const std::string& trace_id) {
  auto is_entry = [](const ReceivedSpan& s) {
    return s.span.value("kind", 0) == kServerKind && Attr(s.span, "bff.client.kind") == "iot";
  };
  std::vector<ReceivedSpan> spans = SpansUntil(receiver, trace_id, [&](const std::vector<ReceivedSpan>& all) {
    return std::any_of(all.begin(), all.end(), is_entry);
  });
  std::vector<ReceivedSpan> entries;
  std::copy_if(spans.begin(), spans.end(), std::back_inserter(entries), is_entry);
  return entries;
}

std::string MetricValue(const std::string& text, const std::string& series) {
  size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return "";
  size_t start = at + series.size() + 2;
  return text.substr(start, text.find('\n', start) - start);
}

TEST(TracingTest, AWebProductPageIsOneTraceFromBffdThroughTheDomain) {
  OtlpReceiver receiver;
  TempDir dir;
  // A short batch delay, so the spans arrive soon after the request rather than at shutdown; generous
  // part timeouts, so a busy machine does not turn a part into a fallback.
  std::string config = WriteConfig(dir, "[mqtt]\nenabled = false\n[iot]\ndemo_fleet = 0\n"
                                        "[web]\ninventory_timeout_ms = 10000\nreviews_timeout_ms = 10000\n"
                                        "recommendations_timeout_ms = 10000\npromotions_timeout_ms = 10000\n"
                                        "catalog_timeout_ms = 10000\n[server]\nrequest_timeout_ms = 20000\n"
                                        "[tracing]\nmax_delay_ms = 50\n");
  DomainProcess domain(dir.path(), {"--trace-collector", receiver.url(), "--config", config});
  ASSERT_TRUE(domain.ready()) << domain.process().Stderr();
  BffdProcess bffd(dir.path(), {"--domain", domain.base_url(), "--config", config, "--trace-collector", receiver.url()});
  ASSERT_TRUE(bffd.ready()) << bffd.process().Stderr();

  TestHttpClient http;
  HttpRequest req;
  req.method = "GET";
  req.path = "/web/v1/products/" + SeedSku(0);
  req.headers.Set("traceparent", std::string("00-") + kTraceId + "-" + kCallerSpanId + "-01");
  auto r = http.Send(bffd.http_url(), req);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->status, 200) << r->body;
  std::string traceparent(r->headers.Get("traceparent"));
  EXPECT_EQ(traceparent.substr(3, 32), kTraceId) << traceparent;
  std::string timing(r->headers.Get("Server-Timing"));
  EXPECT_NE(timing.find("total;dur="), std::string::npos) << timing;
  EXPECT_NE(timing.find("catalog"), std::string::npos) << timing;

  const std::vector<std::string> services = {"catalog", "inventory", "reviews", "recommendations", "promotions"};
  // Every client span has its domain server span once the trace is complete.
  auto complete = [&](const std::vector<ReceivedSpan>& spans) {
    std::set<std::string> client_ids, server_parents;
    bool entry = false;
    for (const auto& s : spans) {
      int kind = s.span.value("kind", 0);
      if (kind == kClientKind) client_ids.insert(s.span.value("spanId", ""));
      if (kind == kServerKind && ServiceOf(s) == "bff-domain") server_parents.insert(s.span.value("parentSpanId", ""));
      if (kind == kServerKind && ServiceOf(s) == "bffd") entry = true;
    }
    if (!entry || client_ids.size() < services.size()) return false;
    for (const auto& id : client_ids) {
      if (!server_parents.count(id)) return false;
    }
    return true;
  };
  std::vector<ReceivedSpan> spans = SpansUntil(receiver, kTraceId, complete);
  ASSERT_TRUE(complete(spans)) << "spans of the trace: " << spans.size() << "\n" << bffd.process().Stderr();

  const json* entry = nullptr;
  for (const auto& s : spans) {
    if (s.span.value("kind", 0) == kServerKind && ServiceOf(s) == "bffd") entry = &s.span;
  }
  ASSERT_NE(entry, nullptr);
  EXPECT_EQ(entry->value("name", ""), "GET /web/v1/products/{sku}");
  EXPECT_EQ(entry->value("parentSpanId", ""), kCallerSpanId) << "child of the caller's traceparent";
  EXPECT_EQ(entry->value("spanId", ""), traceparent.substr(36, 16)) << "the answer's traceparent names the entry span";
  EXPECT_EQ(Attr(*entry, "http.route"), "/web/v1/products/{sku}");
  EXPECT_EQ(Attr(*entry, "http.response.status_code"), "200");
  EXPECT_EQ(Attr(*entry, "bff.client.kind"), "web");
  EXPECT_EQ(Attr(*entry, "network.protocol.name"), "http");
  const std::string entry_id = entry->value("spanId", "");

  std::map<std::string, const json*> client_by_service;
  for (const auto& s : spans) {
    if (s.span.value("kind", 0) != kClientKind) continue;
    std::string service = Attr(s.span, "peer.service");
    EXPECT_EQ(s.span.value("parentSpanId", ""), entry_id) << s.span.dump();
    EXPECT_EQ(s.span.value("name", "").rfind(service + " ", 0), 0u) << s.span.dump();
    client_by_service[service] = &s.span;
  }
  for (const auto& service : services) {
    ASSERT_TRUE(client_by_service.count(service)) << "no client span for " << service;
    EXPECT_EQ(Attr(*client_by_service[service], "http.response.status_code"), "200") << service;
    EXPECT_EQ(Attr(*client_by_service[service], "bff.outcome"), "ok") << service;
  }
  for (const auto& s : spans) {
    if (s.span.value("kind", 0) != kServerKind || ServiceOf(s) != "bff-domain") continue;
    EXPECT_EQ(s.span.value("traceId", ""), kTraceId);
    EXPECT_EQ(s.span.value("name", ""), Attr(s.span, "http.request.method") + " " + Attr(s.span, "http.route"))
        << "named by route pattern: " << s.span.dump();
    EXPECT_EQ(Attr(s.span, "http.route").rfind("/", 0), 0u) << s.span.dump();
    EXPECT_EQ(Attr(s.span, "http.response.status_code"), "200") << s.span.dump();
  }
}

TEST(TracingTest, AnAbsentCollectorCostsRequestsNothingAndIsCounted) {
  TempDir dir;
  // A port nothing listens on: every export fails at connect.
  const std::string collector = "http://127.0.0.1:" + std::to_string(FreeTcpPort());
  std::string config = WriteConfig(dir, "[mqtt]\nenabled = false\n[iot]\ndemo_fleet = 0\n"
                                        "[tracing]\nmax_delay_ms = 20\nmax_batch = 1\n");
  BffdProcess bffd(dir.path(), {"--config", config, "--trace-collector", collector});
  ASSERT_TRUE(bffd.ready()) << bffd.process().Stderr();
  EXPECT_NE(bffd.process().Stderr().find("exporting spans"), std::string::npos);

  TestHttpClient http;
  for (int i = 0; i < 5; ++i) {
    auto r = http.Get(bffd.http_url(), "/mobile/v1/products/" + SeedSku(i));
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(r->status, 200) << r->body;
  }
  std::string metrics;
  bool counted = WaitFor(
      [&] {
        auto m = http.Get(bffd.admin_url(), "/metrics");
        if (!m.ok()) return false;
        metrics = m->body;
        std::string failed = MetricValue(metrics, "bffd_spans_dropped_total{reason=\"failed\"}");
        std::string batches = MetricValue(metrics, "bffd_span_batches_failed_total");
        return !failed.empty() && failed != "0" && !batches.empty() && batches != "0";
      },
      30s);
  EXPECT_TRUE(counted) << metrics;
  EXPECT_EQ(MetricValue(metrics, "bffd_spans_exported_total"), "0") << metrics;
  EXPECT_NE(MetricValue(metrics, "bffd_spans_dropped_total{reason=\"queue_full\"}"), "") << metrics;
}

// A device's MQTT 5 question with a traceparent user property: bffd's span for the message is the
// device span's child, and the answer bffd publishes back carries the same trace.
TEST(TracingTest, AnMqttQuestionJoinsTheDevicesTraceAndTheAnswerCarriesIt) {
  if (access("/usr/sbin/mosquitto", X_OK) != 0) GTEST_SKIP() << "mosquitto is not installed";
  OtlpReceiver receiver;
  TempDir dir;
  SeedSlotRef slot = SeedShelfOnlyProduct(3);
  std::string key;
  ASSERT_EQ(RunCommand(BinPath("bffd") + " keys add sensor-q --shelf " + slot.shelf_id + " --data " + dir.path(), &key),
            0);
  while (!key.empty() && (key.back() == '\n' || key.back() == ' ')) key.pop_back();
  MosquittoProcess broker(dir.path(), dir.path() + "/broker");
  ASSERT_TRUE(broker.ready());
  std::string config = WriteConfig(dir, "[iot]\ndemo_fleet = 0\n[tracing]\nmax_delay_ms = 50\n");
  BffdProcess bffd(dir.path(), {"--config", config, "--mqtt", broker.uri(), "--trace-collector", receiver.url()});
  ASSERT_TRUE(bffd.ready()) << bffd.process().Stderr();
  ASSERT_TRUE(WaitFor([&] { return bffd.process().Stderr().find("mqtt: connected and subscribed") != std::string::npos; },
                      20s));

  const std::string port = std::to_string(broker.port());
  ChildProcess sub("/usr/bin/mosquitto_sub",
                   {"-h", "127.0.0.1", "-p", port, "-u", "sensor-q", "-P", key, "-t", "iot/v1/sensor-q/stock", "-q", "1",
                    "-V", "mqttv5", "-F", "%x %P"},
                   dir.path());
  const std::string trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  const std::string device_span = "00f067aa0ba902b7";
  std::string file = dir.path() + "/query";
  std::ofstream(file, std::ios::binary) << EncodeStockQuery({key, "", slot.sku});
  std::string answer;
  for (int attempt = 0; attempt < 30 && answer.empty(); ++attempt) {
    RunCommand("/usr/bin/mosquitto_pub -h 127.0.0.1 -p " + port + " -u sensor-q -P " + key +
                   " -q 1 -V mqttv5 -t iot/v1/sensor-q/stock/get -D publish user-property traceparent 00-" + trace_id +
                   "-" + device_span + "-01 -f " + file,
               nullptr);
    WaitFor([&] { return sub.Stdout().find('\n') != std::string::npos; }, 700ms);
    answer = sub.Stdout().substr(0, sub.Stdout().find('\n'));
  }
  ASSERT_FALSE(answer.empty()) << "no answer on iot/v1/sensor-q/stock";
  // "%P" prints each user property as key:value.
  EXPECT_NE(answer.find("traceparent:00-" + trace_id + "-"), std::string::npos)
      << "the answer carries the device's trace: " << answer;

  std::vector<ReceivedSpan> entries = IotEntrySpans(receiver, trace_id);
  ASSERT_FALSE(entries.empty()) << bffd.process().Stderr();
  std::string entry_id;
  for (const auto& s : entries) {
    entry_id = s.span.value("spanId", "");
    EXPECT_EQ(s.span.value("name", ""), "iot/v1/{device}/stock/get");
    EXPECT_EQ(s.span.value("parentSpanId", ""), device_span) << "child of the device's span";
    EXPECT_EQ(Attr(s.span, "network.protocol.name"), "mqtt");
    EXPECT_EQ(Attr(s.span, "messaging.destination.name"), "iot/v1/{device}/stock/get");
    EXPECT_EQ(Attr(s.span, "bff.iot.result"), "ok");
    EXPECT_EQ(ServiceOf(s), "bffd");
  }
  // The published answer is a hop of the message's span: its traceparent names a child of it.
  const std::string published = answer.substr(answer.find("traceparent:00-") + 15 + 33, 16);
  EXPECT_NE(published, device_span);
  EXPECT_NE(published, entry_id) << "a fresh span id for the publish";
}

TEST(TracingTest, ACoapRequestJoinsTheDevicesTrace) {
  if (access(kCoapClient, X_OK) != 0) GTEST_SKIP() << "coap-client-openssl is not installed";
  OtlpReceiver receiver;
  TempDir dir;
  SeedSlotRef slot = SeedShelfOnlyProduct(2);
  std::string key;
  ASSERT_EQ(RunCommand(BinPath("bffd") + " keys add sensor-t --shelf " + slot.shelf_id + " --data " + dir.path(), &key),
            0);
  while (!key.empty() && (key.back() == '\n' || key.back() == ' ')) key.pop_back();
  std::string config = WriteConfig(dir, "[mqtt]\nenabled = false\n[iot]\ndemo_fleet = 0\n"
                                        "[tracing]\nmax_delay_ms = 50\n");
  BffdProcess bffd(dir.path(), {"--config", config, "--trace-collector", receiver.url()});
  ASSERT_TRUE(bffd.ready()) << bffd.process().Stderr();
  ASSERT_NE(bffd.coap_port(), 0);

  const std::string trace_id = "5bf92f3577b34da6a3ce929d0e0e4737";
  const std::string device_span = "10f067aa0ba902b8";
  ChildProcess client(kCoapClient,
                      {"-v", "7", "-B", "10", "-O", "65020,00-" + trace_id + "-" + device_span + "-01", "-m", "get",
                       "coap://127.0.0.1:" + std::to_string(bffd.coap_port()) + "/p/" + slot.sku + "?d=sensor-t&k=" + key},
                      dir.path());
  ASSERT_EQ(client.Wait(60s), 0);
  std::vector<Response> answers = ParseResponses(client.Stdout());
  ASSERT_EQ(answers.size(), 1u) << client.Stdout();
  EXPECT_EQ(answers[0].code, "2.05");

  // The IoT server span; the embedded domain's own server span for the stock read is in the trace too.
  std::vector<ReceivedSpan> entries = IotEntrySpans(receiver, trace_id);
  ASSERT_FALSE(entries.empty()) << bffd.process().Stderr();
  std::string entry_id;
  for (const auto& s : entries) {
    entry_id = s.span.value("spanId", "");
    EXPECT_EQ(s.span.value("name", ""), "GET /p/{sku}");
    EXPECT_EQ(s.span.value("parentSpanId", ""), device_span) << "child of the device's span";
    EXPECT_EQ(Attr(s.span, "network.protocol.name"), "coap");
    EXPECT_EQ(Attr(s.span, "bff.client.kind"), "iot");
    EXPECT_EQ(Attr(s.span, "bff.iot.result"), "ok");
  }
  // The stock read below it is a client span of the same trace, child of the IoT span.
  auto inventory = SpansUntil(receiver, trace_id, [&](const std::vector<ReceivedSpan>& all) {
    for (const auto& s : all) {
      if (s.span.value("kind", 0) == kClientKind && s.span.value("parentSpanId", "") == entry_id) return true;
    }
    return false;
  });
  bool found = false;
  for (const auto& s : inventory) {
    if (s.span.value("kind", 0) != kClientKind || s.span.value("parentSpanId", "") != entry_id) continue;
    found = true;
    EXPECT_EQ(Attr(s.span, "peer.service"), "inventory");
  }
  EXPECT_TRUE(found) << "no inventory client span under the CoAP span";
}

}  // namespace
}  // namespace bff::testing
