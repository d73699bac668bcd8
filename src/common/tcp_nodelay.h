// Turns Nagle's algorithm off on sockets a library opened without a way to ask for it (Paho MQTT has
// no TCP_NODELAY option): small request/answer exchanges otherwise wait for a delayed TCP ack.
#pragma once

#include <string>

namespace bff {

// Sets TCP_NODELAY on every TCP socket of this process connected to the host and port of `uri`
// ("tcp://host:port", "mqtt://host:port", "ssl://host:port"; default port 1883, 8883 for ssl). Returns
// how many sockets it set; 0 when none matched or the URI does not resolve.
int SetTcpNoDelayOnSocketsTo(const std::string& uri);

}  // namespace bff
