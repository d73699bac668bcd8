// What libcoap's coap-client (-v 7) prints, parsed: the responses a device saw, their codes, options and
// bodies. Shared by the tests that drive bffd's CoAP front with that outside client.
#pragma once

#include <cctype>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/crypto.h"

namespace bff::testing {

// One response as coap-client's debug output (-v 7) shows it.
struct Response {
  std::string type;     // CON, NON, ACK, RST
  std::string code;     // "2.05"
  std::string options;  // "ETag:0x02, Max-Age:300"
  std::string body;

  // The value of an option as printed ("0x02", "300"); empty when absent.
  std::string Option(const std::string& name) const {
    std::string key = name + ":";
    size_t at = 0;
    while ((at = options.find(key, at)) != std::string::npos) {
      if (at == 0 || options[at - 1] == ' ') {
        size_t end = options.find(',', at);
        return options.substr(at + key.size(), end == std::string::npos ? std::string::npos : end - at - key.size());
      }
      at += key.size();
    }
    return {};
  }
};

inline std::vector<Response> ParseResponses(const std::string& out) {
  std::vector<Response> responses;
  std::istringstream in(out);
  std::string line;
  Response* last = nullptr;
  while (std::getline(in, line)) {
    if (line.rfind("v:1 t:", 0) == 0) {
      last = nullptr;
      size_t c = line.find(" c:");
      if (c == std::string::npos || c + 3 >= line.size() || !std::isdigit(static_cast<unsigned char>(line[c + 3])) ||
          line.compare(c + 3, 4, "0.00") == 0) {
        continue;  // a request, or the client's own empty ACK
      }
      Response r;
      r.type = line.substr(6, line.find(' ', 6) - 6);
      r.code = line.substr(c + 3, line.find(' ', c + 3) - c - 3);
      size_t open = line.find("[ ");
      size_t close = line.find(" ]");
      if (open != std::string::npos && close != std::string::npos && close > open) {
        r.options = line.substr(open + 2, close - open - 2);
      }
      responses.push_back(r);
      if (line.find(":: binary data length") != std::string::npos) last = &responses.back();
    } else if (last != nullptr && line.rfind("<<", 0) == 0) {
      std::string hex = line.substr(2, line.find(">>") - 2);
      EXPECT_TRUE(HexDecode(hex, &last->body)) << line;
      last = nullptr;
    }
  }
  return responses;
}

struct ClientRun {
  int exit_code = -1;
  std::vector<Response> responses;
  std::string output;
};

inline int ErrorCodeOf(const std::string& body) {
  // {"e": code, "m": message, "r"?: seconds}: a fixmap whose first key is "e" and value a uint16.
  if (body.size() < 6 || (static_cast<uint8_t>(body[0]) & 0xf0) != 0x80 || body.substr(1, 2) != "\xa1"
                                                                                                   "e") {
    return -1;
  }
  if (static_cast<uint8_t>(body[3]) == 0xcd) return (static_cast<uint8_t>(body[4]) << 8) | static_cast<uint8_t>(body[5]);
  return -1;
}

}  // namespace bff::testing
