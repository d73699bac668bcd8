// Callbacks from the IoT components' own atomic counters into the registry: the hot paths stay one
// relaxed add each, and the registry reads them only when scraped.
#include "server/iot_metrics.h"

#include <atomic>
#include <string>

namespace bff {
namespace {

template <typename A>
std::function<double()> Read(const A& a) {
  return [&a] { return static_cast<double>(a.load(std::memory_order_relaxed)); };
}

void ExportIot(MetricsRegistry& m, const IotBff& iot) {
  const IotCounters& c = iot.counters();
  m.CounterCallback("bffd_iot_telemetry_received_total", "Readings received by the IoT BFF (MQTT and CoAP).",
                    Read(c.telemetry_received));
  m.CounterCallback("bffd_iot_telemetry_acknowledged_total",
                    "Readings acknowledged after inventory accepted them (retransmissions included).",
                    Read(c.telemetry_acknowledged));
  CounterFamily& rejected = m.Counters("bffd_iot_telemetry_rejected_total",
                                       "Readings not acknowledged, by reason; unavailable: inventory unreachable, the "
                                       "device keeps the reading and retries.",
                                       {"reason"});
  for (size_t i = 0; i < kIotRejectReasons; ++i) {
    rejected.AddCallback({std::string(IotRejectReasonName(static_cast<IotRejectReason>(i)))}, Read(c.telemetry_rejected_by[i]));
  }
  CounterFamily& queries = m.Counters("bffd_iot_stock_queries_total",
                                      "Stock questions from devices: kind shelf (flags of a shelf) or sku (one bool).",
                                      {"kind"});
  queries.AddCallback({"shelf"}, Read(c.shelf_queries));
  queries.AddCallback({"sku"}, Read(c.sku_queries));
  CounterFamily& flags = m.Counters("bffd_iot_stock_flags_total",
                                    "Stock flags a device got, by source: cache (fresh copy), derived (from the "
                                    "cached flags and an accepted reading), inventory (fetched).",
                                    {"source"});
  flags.AddCallback({"cache"}, Read(c.flags_cached));
  flags.AddCallback({"derived"}, Read(c.flags_derived));
  flags.AddCallback({"inventory"}, Read(c.flags_fetched));
  const IotBff* p = &iot;
  m.GaugeCallback("bffd_iot_stock_flags_cached_shelves", "Shelves whose stock flags the IoT BFF holds.",
                  [p] { return static_cast<double>(p->cached_shelves()); });
  // The families the HTTP BFFs count into (src/api/api.cpp), with client="iot".
  CounterFamily& auth = m.Counters("bffd_auth_failures_total",
                                   "Requests refused for authentication (401, reason unauthenticated) or "
                                   "authorization (403, reason forbidden).",
                                   {"client", "reason"});
  auth.AddCallback({"iot", "unauthenticated"}, Read(c.auth_failures));
  auth.AddCallback({"iot", "forbidden"}, Read(c.forbidden));
  m.Counters("bffd_rate_limited_total", "Requests refused with 429 (rate limited).", {"client"})
      .AddCallback({"iot"}, Read(c.rate_limited));
}

void ExportMqtt(MetricsRegistry& m, const MqttAdapter& mqtt) {
  const MqttStats& s = mqtt.stats();
  CounterFamily& in = m.Counters("bffd_mqtt_messages_received_total",
                                 "MQTT messages taken from the broker, by topic kind and outcome.", {"kind", "outcome"});
  // Only the pairs that can happen: an unknown topic is only ever ignored.
  in.AddCallback({"telemetry", "acknowledged"}, Read(s.in[kMqttInTelemetry][kMqttAcknowledged]));
  in.AddCallback({"telemetry", "rejected"}, Read(s.in[kMqttInTelemetry][kMqttRejected]));
  in.AddCallback({"telemetry", "unacknowledged"}, Read(s.in[kMqttInTelemetry][kMqttUnacknowledged]));
  in.AddCallback({"telemetry", "ignored"}, Read(s.in[kMqttInTelemetry][kMqttIgnored]));
  in.AddCallback({"stock_get", "acknowledged"}, Read(s.in[kMqttInStockGet][kMqttAcknowledged]));
  in.AddCallback({"stock_get", "rejected"}, Read(s.in[kMqttInStockGet][kMqttRejected]));
  in.AddCallback({"stock_get", "ignored"}, Read(s.in[kMqttInStockGet][kMqttIgnored]));
  in.AddCallback({"other", "ignored"}, Read(s.in[kMqttInOther][kMqttIgnored]));
  CounterFamily& out = m.Counters("bffd_mqtt_messages_published_total",
                                  "MQTT messages handed to the client library for the broker, by topic kind and "
                                  "outcome (failed: refused by the client library).",
                                  {"kind", "outcome"});
  const char* kinds[kMqttOutKinds] = {"ack", "stock", "error"};
  for (size_t k = 0; k < kMqttOutKinds; ++k) {
    out.AddCallback({kinds[k], "ok"}, Read(s.out[k][kMqttPublishOk]));
    out.AddCallback({kinds[k], "failed"}, Read(s.out[k][kMqttPublishFailed]));
  }
  m.CounterCallback("bffd_mqtt_connects_total", "MQTT broker sessions established: the first and every reconnect.",
                    Read(s.connects));
  m.CounterCallback("bffd_mqtt_connection_losses_total", "MQTT broker connections lost (the client reconnects).",
                    Read(s.connection_losses));
  m.CounterCallback("bffd_mqtt_backpressure_waits_total",
                    "Times the MQTT receive thread waited because mqtt.max_in_flight messages were being handled.",
                    Read(s.backpressure_waits));
  m.GaugeCallback("bffd_mqtt_messages_in_flight", "MQTT messages taken from the broker and not yet answered.",
                  Read(s.in_flight));
}

}  // namespace

void ExportIotMetrics(MetricsRegistry& metrics, const IotBff* iot, const MqttAdapter* mqtt, const CoapServer* coap,
                      const DomainServices* domain) {
  if (iot) ExportIot(metrics, *iot);
  if (mqtt) ExportMqtt(metrics, *mqtt);
  if (coap) {
    metrics.GaugeCallback("bffd_coap_observers", "CoAP observations of shelves established now.",
                          [coap] { return static_cast<double>(coap->observers()); });
  }
  if (domain) {
    metrics.GaugeCallback("bffd_inventory_shelf_readings_queued",
                          "Shelf readings waiting for inventory's writer (embedded domain only).",
                          [domain] { return static_cast<double>(domain->queued_shelf_readings()); });
  }
}

}  // namespace bff
