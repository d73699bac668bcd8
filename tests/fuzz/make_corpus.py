#!/usr/bin/env python3
# Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/): valid examples from
# CONTRACT.md section 4, docs/iot.md and the tests, plus tricky inputs. Rerun after changing a seed here;
# files the fuzzers found are kept (only the named seeds are rewritten).
import base64, hashlib, json, os, struct, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
KEY = b"KEYKEYKEYKEYKEYKEYKEYKEYKEYKEYKE"  # fuzz_device_key.h kKeyPlaceholder
DEVICE = b"sensor-fuzz"
SHELF, SHELF_ONLY = b"shelf-01-01", b"shelf-01-04"   # the device's shelves (shelf-01-04 slot 0: SKU-10008)


# --- msgpack, just what the IoT formats use -------------------------------------------------------
def mp(v):
    if v is True: return b"\xc3"
    if v is False: return b"\xc2"
    if isinstance(v, int):
        if 0 <= v < 0x80: return bytes([v])
        if -32 <= v < 0: return struct.pack(">b", v)
        if v < 0: return b"\xd3" + struct.pack(">q", v)
        for tag, fmt, hi in ((0xcc, ">B", 0xff), (0xcd, ">H", 0xffff), (0xce, ">I", 0xffffffff)):
            if v <= hi: return bytes([tag]) + struct.pack(fmt, v)
        return b"\xcf" + struct.pack(">Q", v)
    if isinstance(v, str): v = v.encode()
    if isinstance(v, bytes):
        return (bytes([0xa0 | len(v)]) if len(v) < 32 else b"\xd9" + bytes([len(v)])) + v
    if isinstance(v, bytearray): return b"\xc4" + bytes([len(v)]) + bytes(v)
    if isinstance(v, list): return bytes([0x90 | len(v)]) + b"".join(mp(x) for x in v) if len(v) < 16 else \
        b"\xdc" + struct.pack(">H", len(v)) + b"".join(mp(x) for x in v)
    if isinstance(v, tuple):  # a map with ordered (possibly repeated) keys
        return (bytes([0x80 | len(v)]) if len(v) < 16 else b"\xde" + struct.pack(">H", len(v))) + \
            b"".join(mp(k) + mp(x) for k, x in v)
    raise TypeError(v)


def telemetry(d=DEVICE, sh=SHELF_ONLY, q=1, t=1790000000, r=((0, 5),), key=KEY, **extra):
    m = [("d", d), ("sh", sh), ("q", q), ("t", t), ("r", [list(x) for x in r])]
    m += list(extra.items())
    if key is not None: m.append(("k", key))
    return mp(tuple(m))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


valid_telemetry = telemetry()
docs_example = (b"\x86" + mp(b"d") + mp(DEVICE) + mp(b"sh") + mp(SHELF) + mp(b"q") + b"\x01" + mp(b"t")
                + b"\xce" + struct.pack(">I", 1790000000) + mp(b"r") + b"\x91\x92\x00\x00" + mp(b"k") + mp(KEY))
full_telemetry = telemetry(sh=SHELF, q=42, r=((0, 3), (1, 0), (23, 40)), b=87, c=215, v=1)
coap_telemetry = telemetry(key=None)
msgpack_seeds = {
    "telemetry-docs-iot-md": docs_example,
    "telemetry-shelf-only-slot": valid_telemetry,
    "telemetry-all-fields": full_telemetry,
    "telemetry-coap-no-key": coap_telemetry,
    "telemetry-version-current": telemetry(v=1),
    "telemetry-max-seq": telemetry(q=2**64 - 1, v=2**64 - 1),
    "telemetry-negative-battery": telemetry(b=-1, c=-1000),
    "telemetry-64-readings": telemetry(sh=SHELF, r=tuple((i % 24, i) for i in range(64))),
    "telemetry-65-readings": telemetry(sh=SHELF, r=tuple((i % 24, i) for i in range(65))),
    "telemetry-repeated-r": mp(tuple([("d", DEVICE), ("sh", SHELF), ("q", 1), ("t", 1)] +
                                     [("r", [[i, 1] for i in range(15)])] * 5)),
    "telemetry-path-traversal-id": telemetry(d=b"../../etc/passwd", sh=b"..%2f..%2fshelf"),
    "telemetry-invalid-utf8-id": telemetry(d=b"sensor-\xff\xfe", sh=b"shelf-\xc3\x28"),
    "telemetry-trailing-bytes": valid_telemetry + b"\x00",
    "telemetry-over-1kib": telemetry(sh=SHELF, junk=b"x" * 30, r=tuple((i, i) for i in range(64))) + b"\x00" * 1000,
    "stock-query-shelf": mp((("k", KEY), ("sh", SHELF))),
    "stock-query-sku": mp((("k", KEY), ("sku", b"SKU-10008"))),
    "stock-query-both": mp((("k", KEY), ("sh", SHELF), ("sku", b"SKU-10008"))),
    "shelf-flags-24-slots": mp([7, 24, bytearray(b"\xff\xfe\x7f")]),
    "huge-array32-prefix": b"\xdd\xff\xff\xff\xff",
    "huge-map32-prefix": b"\xdf\xff\xff\xff\xff",
    "huge-str32-prefix": b"\xdb\xff\xff\xff\xff",
    "huge-bin32-in-flags": b"\x93\x01\x18\xc6\xff\xff\xff\xff",
    "flags-slot-count-wraps": b"\x93\x01\xcf\xff\xff\xff\xff\xff\xff\xff\xff\xc4\x00",
    "flags-array32-of-arrays": b"\xdd\x00\x01\x00\x00" + b"\x91" * 16,
    "deep-nesting": b"\x81\xa1r" + b"\x91" * 200 + b"\x00",
    "ext-types": mp((("d", DEVICE),)) [:-len(DEVICE) - 1] + b"\xd4\x01\x00",
}
for name, data in msgpack_seeds.items():
    write("fuzz_msgpack", name, data)

# --- IotBff: selector byte (handler = bits 0-1, transport = (bits 2-3) % 3, 0x10 key in the caller) -----
MQTT, COAP, COAPS, CALLER_KEY = 0 << 2, 1 << 2, 2 << 2, 0x10
TEL, QUERY, SHELF_GET, SKU_GET = 0, 1, 2, 3
iot_seeds = {
    "mqtt-telemetry": bytes([MQTT | TEL]) + valid_telemetry,
    "mqtt-telemetry-all-fields": bytes([MQTT | TEL]) + full_telemetry,
    "mqtt-telemetry-other-device": bytes([MQTT | TEL]) + telemetry(d=b"sensor-other"),
    "mqtt-telemetry-shelf-not-allowed": bytes([MQTT | TEL]) + telemetry(sh=b"shelf-02-01"),
    "mqtt-telemetry-slot-out-of-range": bytes([MQTT | TEL]) + telemetry(r=((4095, 1),)),
    "mqtt-telemetry-wrong-key": bytes([MQTT | TEL]) + telemetry(key=b"0" * 32),
    "coap-telemetry-key-in-query": bytes([COAP | CALLER_KEY | TEL]) + coap_telemetry,
    "coap-telemetry-no-key": bytes([COAP | TEL]) + coap_telemetry,
    "coaps-telemetry": bytes([COAPS | CALLER_KEY | TEL]) + coap_telemetry,
    "mqtt-stock-get-shelf": bytes([MQTT | QUERY]) + msgpack_seeds["stock-query-shelf"],
    "mqtt-stock-get-sku": bytes([MQTT | QUERY]) + msgpack_seeds["stock-query-sku"],
    "coap-get-shelf": bytes([COAP | CALLER_KEY | SHELF_GET]) + SHELF,
    "coap-get-shelf-only": bytes([COAPS | CALLER_KEY | SHELF_GET]) + SHELF_ONLY,
    "coap-get-shelf-unknown": bytes([COAP | CALLER_KEY | SHELF_GET]) + b"shelf-99-99",
    "coap-get-shelf-traversal": bytes([COAP | CALLER_KEY | SHELF_GET]) + b"../../shelf-01-01",
    "coap-get-sku": bytes([COAP | CALLER_KEY | SKU_GET]) + b"SKU-10008",
    "coap-get-sku-invalid-utf8": bytes([COAP | CALLER_KEY | SKU_GET]) + b"SKU-\xff\xfe",
    "coap-get-sku-no-key": bytes([COAP | SKU_GET]) + b"SKU-10001",
    "mqtt-huge-array-prefix": bytes([MQTT | TEL]) + b"\xdd\xff\xff\xff\xff",
}
for name, data in iot_seeds.items():
    write("fuzz_iot_bff", name, data)


# --- CoAP datagrams (RFC 7252) ---------------------------------------------------------------------
def coap(type_, code, mid, token=b"", options=(), payload=b""):
    out = bytes([0x40 | type_ << 4 | len(token), code]) + struct.pack(">H", mid) + token
    last = 0
    for number, value in sorted(options, key=lambda o: o[0]):
        delta, last = number - last, number
        def nib(v): return v if v < 13 else (13 if v < 269 else 14)
        def ext(v): return b"" if v < 13 else (bytes([v - 13]) if v < 269 else struct.pack(">H", v - 269))
        out += bytes([nib(delta) << 4 | nib(len(value))]) + ext(delta) + ext(len(value)) + value
    return out + (b"\xff" + payload if payload else b"")


CON, NON, ACK, RST = 0, 1, 2, 3
GET, POST = 1, 2
OBSERVE, URI_PATH, CONTENT_FORMAT, URI_QUERY, ETAG, BLOCK2, TRACEPARENT = 6, 11, 12, 15, 4, 23, 65020
def path(*segs): return [(URI_PATH, s) for s in segs]
def query(*qs): return [(URI_QUERY, q) for q in qs]
dk = query(b"d=" + DEVICE, b"k=" + KEY)
coap_seeds = {
    "post-telemetry": coap(CON, POST, 1, b"\x01\x02", path(b"t") + query(b"k=" + KEY), coap_telemetry),
    "post-telemetry-non": coap(NON, POST, 2, b"\x03", path(b"t") + query(b"k=" + KEY) + [(CONTENT_FORMAT, b"\x3c")],
                               telemetry(sh=SHELF, key=None, q=7)),
    "post-telemetry-no-key": coap(CON, POST, 3, b"\x04", path(b"t"), coap_telemetry),
    "post-telemetry-huge-array": coap(CON, POST, 4, b"\x05", path(b"t") + query(b"k=" + KEY), b"\xdd\xff\xff\xff\xff"),
    "get-shelf": coap(CON, GET, 5, b"\x06\x07", path(b"s", SHELF) + dk),
    "get-shelf-observe": coap(CON, GET, 6, b"\x08", path(b"s", SHELF_ONLY) + dk + [(OBSERVE, b"")]),
    "get-shelf-etag": coap(CON, GET, 7, b"\x09", path(b"s", SHELF) + dk + [(ETAG, b"\x01")]),
    "get-shelf-block2": coap(CON, GET, 8, b"\x0a", path(b"s", SHELF) + dk + [(BLOCK2, b"\x06")]),
    "get-shelf-traceparent": coap(CON, GET, 9, b"\x0b", path(b"s", SHELF) + dk +
                                  [(TRACEPARENT, b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]),
    "get-shelf-traversal": coap(CON, GET, 10, b"\x0c", path(b"s", b"..", b"..", b"etc", b"passwd") + dk),
    "get-sku": coap(CON, GET, 11, b"\x0d", path(b"p", b"SKU-10008") + dk),
    "get-sku-invalid-utf8": coap(CON, GET, 12, b"\x0e", path(b"p", b"SKU-\xff\xfe") + dk),
    "get-unknown-resource": coap(CON, GET, 13, b"\x0f", path(b"x", b"y")),
    "ping": coap(CON, 0, 14),
    "reset": coap(RST, 0, 15),
    "ack-unsolicited": coap(ACK, 0x44, 16, b"\x10"),
    "token-length-15": bytes([0x4f, 0x01, 0x00, 0x11]) + b"\x00" * 8,
    "option-delta-15": coap(CON, GET, 18)[:4] + b"\xf0\x00",
    "payload-marker-no-payload": coap(CON, POST, 19, b"", path(b"t")) + b"\xff",
    "option-length-2-byte-ext": coap(CON, GET, 20, b"", path(b"s", b"a" * 300) + dk),
    "truncated-header": b"\x40\x01",
}
for name, data in coap_seeds.items():
    write("fuzz_coap", name, data)


# --- HTTP requests for ApiFront ---------------------------------------------------------------------
def http(method, target, headers=(), body=""):
    return f"{method} {target}\n" + "".join(f"{k}: {v}\n" for k, v in headers) + "\n" + body


JSON = ("Content-Type", "application/json")
BEARER = ("Authorization", "Bearer @TOKEN@")
WEB = [("Cookie", "@SESSION@"), ("X-CSRF-Token", "@CSRF@"), JSON]
http_seeds = {
    "mobile-product": http("GET", "/mobile/v1/products/SKU-10001"),
    "mobile-product-if-none-match": http("GET", "/mobile/v1/products/SKU-10001", [("If-None-Match", '"abc"')]),
    "mobile-product-unknown": http("GET", "/mobile/v1/products/SKU-99999"),
    "mobile-product-traversal": http("GET", "/mobile/v1/products/..%2F..%2Fadmin"),
    "mobile-product-invalid-utf8": http("GET", "/mobile/v1/products/SKU-\xff"),
    "mobile-batch": http("GET", "/mobile/v1/products?ids=SKU-10001,SKU-10002,SKU-99999"),
    "mobile-batch-oversized": http("GET", "/mobile/v1/products?ids=" + ",".join(f"SKU-{10001 + i}" for i in range(60))),
    "mobile-batch-empty-ids": http("GET", "/mobile/v1/products?ids=,,,&ids=SKU-10001"),
    "mobile-batch-traversal": http("GET", "/mobile/v1/products?ids=..%2F..%2Fetc%2Fpasswd,SKU-10001"),
    "mobile-token-password": http("POST", "/mobile/v1/auth/token", [JSON],
                                  json.dumps({"grant_type": "password", "username": "bob", "password": "demo-bob"})),
    "mobile-token-form": http("POST", "/mobile/v1/auth/token", [("Content-Type", "application/x-www-form-urlencoded")],
                              "grant_type=password&username=bob&password=demo-bob"),
    "mobile-token-refresh": http("POST", "/mobile/v1/auth/token", [JSON],
                                 json.dumps({"grant_type": "refresh_token", "refresh_token": "x" * 40})),
    "mobile-cart": http("POST", "/mobile/v1/cart/items", [BEARER, JSON], json.dumps({"sku": "SKU-10001", "qty": 1})),
    "mobile-cart-out-of-stock": http("POST", "/mobile/v1/cart/items", [BEARER, JSON], json.dumps({"sku": "SKU-10094", "qty": 1})),
    "mobile-cart-bad-qty": http("POST", "/mobile/v1/cart/items", [BEARER, JSON], '{"sku":"SKU-10001","qty":1e308}'),
    "mobile-cart-negative-qty": http("POST", "/mobile/v1/cart/items", [BEARER, JSON], '{"sku":"SKU-10001","qty":-9223372036854775808}'),
    "mobile-cart-no-token": http("POST", "/mobile/v1/cart/items", [JSON], '{"sku":"SKU-10001","qty":1}'),
    "mobile-cart-bad-token": http("POST", "/mobile/v1/cart/items", [("Authorization", "Bearer a.b.c"), JSON], '{"sku":"SKU-10001","qty":1}'),
    "web-product": http("GET", "/web/v1/products/SKU-10008"),
    "web-product-traceparent": http("GET", "/web/v1/products/SKU-10001",
                                    [("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]),
    "web-login": http("POST", "/web/v1/session", [JSON], json.dumps({"username": "alice", "password": "demo-alice"})),
    "web-login-invalid-utf8": http("POST", "/web/v1/session", [JSON], '{"username":"\xff\xfe","password":"x"}'),
    "web-logout-no-session": http("DELETE", "/web/v1/session", [("Cookie", "bff_session=nope")]),
    "web-me": http("GET", "/web/v1/me", [("Cookie", "@SESSION@")]),
    "web-cart": http("POST", "/web/v1/cart/items", WEB, json.dumps({"sku": "SKU-10002", "qty": 2})),
    "web-cart-no-csrf": http("POST", "/web/v1/cart/items", [("Cookie", "@SESSION@"), JSON], '{"sku":"SKU-10002","qty":2}'),
    "deep-json": http("POST", "/web/v1/cart/items", WEB, "[" * 5000 + "]" * 5000),
    "deep-json-objects": http("POST", "/mobile/v1/auth/token", [JSON], '{"a":' * 2500 + "1" + "}" * 2500),
    "wrong-content-type": http("POST", "/web/v1/session", [("Content-Type", "text/plain")], "username=alice"),
    "unknown-route": http("GET", "/mobile/v2/../v1/products/SKU-10001"),
    "wrong-method": http("PUT", "/mobile/v1/products/SKU-10001"),
    "empty-method": http("", ""),
}
for name, data in http_seeds.items():
    write("fuzz_http", name, data.encode("latin-1"))


# --- JWT: mode byte (0 token, 1 claims to sign, 2 JWK set) ------------------------------------------
def b64(b): return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


PEM = open(os.path.join(HERE, "fuzz_jwt.cpp")).read().split('kFuzzSigningKeyPem[] =')[1].split(";")[0]
PEM = "".join(part.split('"')[1] for part in PEM.strip().splitlines()).replace("\\n", "\n")
with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as f:
    f.write(PEM)
der = subprocess.run(["openssl", "pkey", "-in", f.name, "-pubout", "-outform", "DER"], capture_output=True, check=True).stdout
point = der[-65:]
x, y = b64(point[1:33]), b64(point[33:])
kid = b64(hashlib.sha256(json.dumps({"crv": "P-256", "kty": "EC", "x": x, "y": y}, separators=(",", ":")).encode()).digest())
jwk = {"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": "ES256", "use": "sig"}


def sign(claims, header=None):
    header = header or {"alg": "ES256", "typ": "JWT", "kid": kid}
    signing_input = (b64(json.dumps(header, separators=(",", ":")).encode()) + "." +
                     b64(json.dumps(claims, separators=(",", ":")).encode()))
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", f.name], input=signing_input.encode(),
                         capture_output=True, check=True).stdout
    # DER ECDSA-Sig-Value → r || s, 32 bytes each
    i = 3 if sig[1] < 0x80 else 4
    rlen = sig[i]; r = sig[i + 1:i + 1 + rlen]; j = i + 1 + rlen + 1; slen = sig[j]; s = sig[j + 1:j + 1 + slen]
    raw = r.lstrip(b"\x00").rjust(32, b"\x00") + s.lstrip(b"\x00").rjust(32, b"\x00")
    return signing_input + "." + b64(raw)


claims = {"iss": "bff-identity", "aud": "bffd", "sub": "u-1002", "name": "bob", "exp": 4102444800, "iat": 1790000000}
valid = sign(claims)
h, p, s = valid.split(".")
jwt_seeds = {
    "token-valid": b"\x00" + valid.encode(),
    "token-expired": b"\x00" + sign(dict(claims, exp=1000)).encode(),
    "token-aud-array": b"\x00" + sign(dict(claims, aud=["x", "bffd"])).encode(),
    "token-wrong-issuer": b"\x00" + sign(dict(claims, iss="evil")).encode(),
    "token-alg-none": b"\x00" + (b64(b'{"alg":"none","kid":"' + kid.encode() + b'"}') + "." + p + ".").encode(),
    "token-unknown-kid": b"\x00" + sign(claims, {"alg": "ES256", "kid": "nope"}).encode(),
    "token-padded": b"\x00" + (h + "=." + p + "." + s).encode(),
    "token-bad-signature": b"\x00" + (h + "." + p + "." + s[::-1]).encode(),
    "token-four-segments": b"\x00" + (valid + ".x").encode(),
    "token-huge": b"\x00" + (h + "." + "A" * 17000 + "." + s).encode(),
    "token-invalid-utf8-claims": b"\x00" + (h + "." + b64(b'{"sub":"\xff\xfe"}') + "." + s).encode(),
    "claims-valid": b"\x01" + json.dumps(claims).encode(),
    "claims-nbf-future": b"\x01" + json.dumps(dict(claims, nbf=4102444800)).encode(),
    "claims-exp-huge": b"\x01" + b'{"iss":"bff-identity","aud":"bffd","sub":"u","exp":1e308,"nbf":-1e308}',
    "claims-exp-string": b"\x01" + b'{"iss":"bff-identity","aud":"bffd","sub":"u","exp":"1790000600"}',
    "claims-sub-empty": b"\x01" + b'{"iss":"bff-identity","aud":"bffd","sub":"","exp":1790000600}',
    "jwks-valid": b"\x02" + json.dumps({"keys": [jwk]}).encode(),
    "jwks-missing-y": b"\x02" + json.dumps({"keys": [{k: v for k, v in jwk.items() if k != "y"}]}).encode(),
    "jwks-wrong-curve": b"\x02" + json.dumps({"keys": [dict(jwk, crv="P-384")]}).encode(),
    "jwks-x-number": b"\x02" + json.dumps({"keys": [dict(jwk, x=12)]}).encode(),
    "jwks-point-off-curve": b"\x02" + json.dumps({"keys": [dict(jwk, y=b64(b"\x01" * 32))]}).encode(),
    "jwks-long-x": b"\x02" + json.dumps({"keys": [dict(jwk, x=b64(b"\x01" * 64))]}).encode(),
    "jwks-not-list": b"\x02" + json.dumps({"keys": jwk}).encode(),
}
os.unlink(f.name)
for name, data in jwt_seeds.items():
    write("fuzz_jwt", name, data)

# --- config ---------------------------------------------------------------------------------------------
config_seeds = {
    "shipped-bffd.toml": open(os.path.join(HERE, "..", "..", "config", "bffd.toml")).read(),
    "wrong-types.toml": '[server]\nthreads = "four"\nadmin = 9464\n[iot]\ndemo_fleet = -1\n',
    "huge-ints.toml": "[server]\nthreads = 9223372036854775807\nmax_body_bytes = -9223372036854775808\n"
                      "request_timeout_ms = 0x7fffffffffffffff\n",
    "bad-addresses.toml": '[server]\nhttp = "[::1"\nadmin = "host:99999"\ncoap = ":"\n',
    "deep-tables.toml": "[domain.faults.reviews]\nlatency_ms = 1e400\nerror_rate = nan\n[a.b.c.d.e.f.g.h]\nx = 1\n",
    "inline-arrays.toml": "x = " + "[" * 300 + "]" * 300 + "\n",
    "invalid-utf8.toml": '[server]\nhttp = "\xff\xfe"\n',
    "duplicate-keys.toml": "[server]\nthreads = 1\nthreads = 2\n",
}
for name, data in config_seeds.items():
    write("fuzz_config", name, data.encode("latin-1"))
print("seed corpora written under", os.path.join(HERE, "corpus"))
