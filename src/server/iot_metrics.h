// The IoT side's numbers in /metrics: the IoT BFF's, the MQTT adapter's and the CoAP server's counters and
// gauges, and inventory's reading queue, exposed as callbacks read at scrape time.
#pragma once

#include "clients/iot/iot_bff.h"
#include "domain/domain_services.h"
#include "observability/metrics.h"
#include "protocols/coap/coap_server.h"
#include "protocols/mqtt/mqtt_adapter.h"

namespace bff {

// Registers the IoT families in `metrics`. Any component may be null (off, or a remote domain); what is
// given must outlive the registry's last scrape. The CoAP server counts its requests itself (see
// CoapServerOptions::metrics); its observers gauge is registered here.
void ExportIotMetrics(MetricsRegistry& metrics, const IotBff* iot, const MqttAdapter* mqtt, const CoapServer* coap,
                      const DomainServices* domain);

}  // namespace bff
