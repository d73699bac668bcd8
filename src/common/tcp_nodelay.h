// Socket options for sockets a library opened itself. Turns Nagle's algorithm off on sockets a library opened without a way to ask for it (Paho MQTT has
// no TCP_NODELAY option): small request/answer exchanges otherwise wait for a delayed TCP ack.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace bff {

// Sets TCP_NODELAY on every TCP socket of this process connected to the host and port of `uri`
// ("tcp://host:port", "mqtt://host:port", "ssl://host:port"; default port 1883, 8883 for ssl). Returns
// how many sockets it set; 0 when none matched or the URI does not resolve.
int SetTcpNoDelayOnSocketsTo(const std::string& uri);

// Calls `fn` with every open socket of this process of `type` (SOCK_STREAM, SOCK_DGRAM).
void ForEachOwnSocket(int type, const std::function<void(int fd)>& fn);

// Sets the receive buffer of this process's UDP sockets bound to local `port` to `bytes` (past the
// system's rmem_max when the process may, as root can); returns the size the kernel reports for the
// last one set, 0 when none matched. For libraries that open sockets without such an option (libcoap).
int SetUdpReceiveBuffer(uint16_t port, int bytes);

}  // namespace bff
