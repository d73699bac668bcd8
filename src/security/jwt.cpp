// ES256 JWTs with OpenSSL 3 EVP: P-256 key handling, JWS signing, JWK export and JWKS-based verification.
#include "security/jwt.h"

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/params.h>
#include <openssl/pem.h>

#include <cstring>
#include <filesystem>
#include <memory>
#include <vector>

#include "common/crypto.h"
#include "security/compact_jws.h"
#include "security/internal_credential.h"
#include "security/secret_file.h"

namespace bff {
namespace {

// P-256 field elements and scalars: JWS (RFC 7518 3.4) and JWK coordinates use exactly this many bytes.
constexpr size_t kCoordinateBytes = 32;
constexpr char kCurveGroupName[] = "prime256v1";

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
struct BioFree {
  void operator()(BIO* p) const { BIO_free(p); }
};
struct BnFree {
  void operator()(BIGNUM* p) const { BN_free(p); }
};
struct EcdsaSigFree {
  void operator()(ECDSA_SIG* p) const { ECDSA_SIG_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;
using BioPtr = std::unique_ptr<BIO, BioFree>;
using BnPtr = std::unique_ptr<BIGNUM, BnFree>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, EcdsaSigFree>;

// Failed OpenSSL calls leave entries on the thread's error queue; later TLS code on the same thread
// would misread them, so every failure path drains the queue.
template <typename T>
T Fail(T value) {
  ERR_clear_error();
  return value;
}

bool IsP256(const EVP_PKEY* pkey) {
  if (EVP_PKEY_is_a(pkey, "EC") != 1) return false;
  char name[64] = {0};
  size_t len = 0;
  if (EVP_PKEY_get_group_name(pkey, name, sizeof(name), &len) != 1) return Fail(false);
  int nid = OBJ_sn2nid(name);
  if (nid == NID_undef) nid = EC_curve_nist2nid(name);
  return nid == NID_X9_62_prime256v1;
}

bool CoordinateBytes(const EVP_PKEY* pkey, const char* param, std::string* out) {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(pkey, param, &raw) != 1) return Fail(false);
  BnPtr bn(raw);
  unsigned char buf[kCoordinateBytes];
  if (BN_bn2binpad(bn.get(), buf, sizeof(buf)) != static_cast<int>(sizeof(buf))) return Fail(false);
  out->assign(reinterpret_cast<const char*>(buf), sizeof(buf));
  return true;
}

// PEM text must never trigger OpenSSL's interactive passphrase prompt: encrypted keys simply fail.
int NoPassphrase(char*, int, int, void*) { return 0; }

PkeyPtr ParsePrivateKeyPem(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return Fail(PkeyPtr());
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr));
  if (!key) return Fail(PkeyPtr());
  return key;
}

std::string PrivateKeyPem(EVP_PKEY* pkey) {
  BioPtr bio(BIO_new(BIO_s_secmem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), pkey, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return Fail(std::string());
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  if (len <= 0 || data == nullptr) return Fail(std::string());
  return std::string(data, static_cast<size_t>(len));
}

PkeyPtr GenerateP256() {
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 || EVP_PKEY_CTX_set_group_name(ctx.get(), kCurveGroupName) != 1) {
    return Fail(PkeyPtr());
  }
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_generate(ctx.get(), &raw) != 1) return Fail(PkeyPtr());
  return PkeyPtr(raw);
}

// Builds a verification key from JWK coordinates; OpenSSL refuses points that are not on the curve.
PkeyPtr PublicKeyFromCoordinates(const std::string& x, const std::string& y) {
  unsigned char point[1 + 2 * kCoordinateBytes];
  point[0] = 0x04;  // SEC 1 uncompressed point
  std::memcpy(point + 1, x.data(), kCoordinateBytes);
  std::memcpy(point + 1 + kCoordinateBytes, y.data(), kCoordinateBytes);
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, const_cast<char*>(kCurveGroupName), 0),
      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)),
      OSSL_PARAM_construct_end(),
  };
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1) return Fail(PkeyPtr());
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params) != 1) return Fail(PkeyPtr());
  return PkeyPtr(raw);
}

// JWS carries ECDSA signatures as raw r||s; OpenSSL produces and expects DER.
std::string DerToRawSignature(const unsigned char* der, size_t len) {
  const unsigned char* p = der;
  EcdsaSigPtr sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(len)));
  if (!sig) return Fail(std::string());
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  unsigned char raw[2 * kCoordinateBytes];
  if (BN_bn2binpad(r, raw, kCoordinateBytes) != static_cast<int>(kCoordinateBytes) ||
      BN_bn2binpad(s, raw + kCoordinateBytes, kCoordinateBytes) != static_cast<int>(kCoordinateBytes)) {
    return Fail(std::string());
  }
  return std::string(reinterpret_cast<const char*>(raw), sizeof(raw));
}

std::string RawToDerSignature(const std::string& raw) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(raw.data());
  BnPtr r(BN_bin2bn(bytes, kCoordinateBytes, nullptr));
  BnPtr s(BN_bin2bn(bytes + kCoordinateBytes, kCoordinateBytes, nullptr));
  EcdsaSigPtr sig(ECDSA_SIG_new());
  if (!r || !s || !sig || ECDSA_SIG_set0(sig.get(), r.get(), s.get()) != 1) return Fail(std::string());
  r.release();  // owned by sig now
  s.release();
  int len = i2d_ECDSA_SIG(sig.get(), nullptr);
  if (len <= 0) return Fail(std::string());
  std::string der(static_cast<size_t>(len), '\0');
  auto* out = reinterpret_cast<unsigned char*>(der.data());
  if (i2d_ECDSA_SIG(sig.get(), &out) != len) return Fail(std::string());
  return der;
}

bool StringMember(const nlohmann::json& obj, const char* name, std::string* out) {
  auto it = obj.find(name);
  if (it == obj.end() || !it->is_string()) return false;
  *out = it->get<std::string>();
  return true;
}

// Everything derived once from a private key; the members of EcSigningKey are filled from it.
struct KeyParts {
  PkeyPtr pkey;
  nlohmann::json jwk;
  std::string kid;
  std::string header_segment;
};

StatusOr<KeyParts> DeriveKeyParts(PkeyPtr pkey, const std::string& origin) {
  if (!IsP256(pkey.get())) return InvalidArgument(origin + " is not a P-256 (ES256) key");
  std::string x, y;
  if (!CoordinateBytes(pkey.get(), OSSL_PKEY_PARAM_EC_PUB_X, &x) ||
      !CoordinateBytes(pkey.get(), OSSL_PKEY_PARAM_EC_PUB_Y, &y)) {
    return Internal("cannot read the public key of " + origin);
  }
  KeyParts parts;
  std::string x64 = Base64UrlEncode(x);
  std::string y64 = Base64UrlEncode(y);
  // RFC 7638: required members only, in lexicographic order, no whitespace.
  std::string canonical = R"({"crv":"P-256","kty":"EC","x":")" + x64 + R"(","y":")" + y64 + R"("})";
  parts.kid = Base64UrlEncode(Sha256(canonical));
  parts.jwk = {{"kty", "EC"},      {"crv", "P-256"}, {"x", x64},    {"y", y64},
               {"kid", parts.kid}, {"alg", "ES256"}, {"use", "sig"}};
  parts.header_segment = EncodeJsonSegment({{"alg", "ES256"}, {"typ", "JWT"}, {"kid", parts.kid}});
  parts.pkey = std::move(pkey);
  return parts;
}

}  // namespace

struct EcSigningKey::Impl {
  explicit Impl(KeyParts&& parts)
      : pkey(std::move(parts.pkey)), jwk(std::move(parts.jwk)), header_segment(std::move(parts.header_segment)) {}
  PkeyPtr pkey;
  nlohmann::json jwk;
  std::string header_segment;  // fixed per key: alg, kid, typ
};

StatusOr<EcSigningKey> EcSigningKey::Generate() {
  PkeyPtr pkey = GenerateP256();
  if (!pkey) return Internal("cannot generate a P-256 key");
  StatusOr<KeyParts> parts = DeriveKeyParts(std::move(pkey), "generated key");
  if (!parts.ok()) return parts.status();
  EcSigningKey key;
  key.kid_ = parts->kid;
  key.impl_ = std::make_shared<Impl>(std::move(*parts));
  return key;
}

StatusOr<EcSigningKey> EcSigningKey::LoadOrCreate(const std::string& pem_path) {
  std::error_code ec;
  std::string fresh_pem;
  if (!std::filesystem::exists(pem_path, ec)) {
    PkeyPtr fresh = GenerateP256();
    if (!fresh) return Internal("cannot generate a P-256 key");
    fresh_pem = PrivateKeyPem(fresh.get());
    if (fresh_pem.empty()) return Internal("cannot encode a P-256 key as PEM");
  }
  // Another process may create the file first; then its key is the one everybody uses.
  StatusOr<std::string> pem = LoadOrCreateSecretFile(pem_path, [&] { return fresh_pem; });
  OPENSSL_cleanse(fresh_pem.data(), fresh_pem.size());
  if (!pem.ok()) return pem.status();
  PkeyPtr pkey = ParsePrivateKeyPem(*pem);
  OPENSSL_cleanse(pem->data(), pem->size());
  if (!pkey) return InvalidArgument(pem_path + " does not hold an unencrypted PEM private key");
  StatusOr<KeyParts> parts = DeriveKeyParts(std::move(pkey), pem_path);
  if (!parts.ok()) return parts.status();
  EcSigningKey key;
  key.kid_ = parts->kid;
  key.impl_ = std::make_shared<Impl>(std::move(*parts));
  return key;
}

std::string EcSigningKey::Sign(const nlohmann::json& claims) const {
  if (!impl_) return {};
  std::string signing_input = impl_->header_segment + "." + EncodeJsonSegment(claims);
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, impl_->pkey.get()) != 1) {
    return Fail(std::string());
  }
  const auto* data = reinterpret_cast<const unsigned char*>(signing_input.data());
  size_t der_len = 0;
  if (EVP_DigestSign(ctx.get(), nullptr, &der_len, data, signing_input.size()) != 1) return Fail(std::string());
  std::vector<unsigned char> der(der_len);
  if (EVP_DigestSign(ctx.get(), der.data(), &der_len, data, signing_input.size()) != 1) return Fail(std::string());
  std::string raw = DerToRawSignature(der.data(), der_len);
  if (raw.empty()) return {};
  return signing_input + "." + Base64UrlEncode(raw);
}

nlohmann::json EcSigningKey::PublicJwk() const {
  if (!impl_) return nlohmann::json::object();
  return impl_->jwk;
}

StatusOr<nlohmann::json> VerifyJwtEs256(std::string_view token, const nlohmann::json& jwks,
                                        const JwtExpectations& expect) {
  try {
    StatusOr<CompactJws> parsed = ParseCompactJws(token);
    if (!parsed.ok()) return parsed.status();
    const CompactJws& jws = *parsed;

    // Only the algorithm we issue: "none", HS256 with the public key as secret and the like are refused.
    std::string alg, kid;
    if (!StringMember(jws.header, "alg", &alg) || alg != "ES256") {
      return Unauthenticated("token algorithm must be ES256");
    }
    if (!StringMember(jws.header, "kid", &kid)) return Unauthenticated("token header names no key (kid)");
    if (jws.signature.size() != 2 * kCoordinateBytes) return Unauthenticated("bad token signature");

    auto keys = jwks.is_object() ? jwks.find("keys") : jwks.end();
    if (keys == jwks.end() || !keys->is_array()) return Unauthenticated("no usable key set");
    const nlohmann::json* jwk = nullptr;
    for (const auto& candidate : *keys) {
      std::string candidate_kid;
      if (candidate.is_object() && StringMember(candidate, "kid", &candidate_kid) && candidate_kid == kid) {
        jwk = &candidate;
        break;
      }
    }
    if (jwk == nullptr) return Unauthenticated("unknown signing key");

    std::string kty, crv, key_alg, use, x64, y64, x, y;
    if (!StringMember(*jwk, "kty", &kty) || kty != "EC" || !StringMember(*jwk, "crv", &crv) || crv != "P-256") {
      return Unauthenticated("signing key is not a P-256 key");
    }
    if ((StringMember(*jwk, "alg", &key_alg) && key_alg != "ES256") ||
        (StringMember(*jwk, "use", &use) && use != "sig")) {
      return Unauthenticated("signing key is not for ES256 signatures");
    }
    if (!StringMember(*jwk, "x", &x64) || !StringMember(*jwk, "y", &y64) || !DecodeBase64UrlStrict(x64, &x) ||
        !DecodeBase64UrlStrict(y64, &y) || x.size() != kCoordinateBytes || y.size() != kCoordinateBytes) {
      return Unauthenticated("malformed signing key");
    }
    PkeyPtr pkey = PublicKeyFromCoordinates(x, y);
    if (!pkey) return Unauthenticated("invalid signing key");

    std::string der = RawToDerSignature(jws.signature);
    if (der.empty()) return Unauthenticated("bad token signature");
    MdCtxPtr ctx(EVP_MD_CTX_new());
    if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, pkey.get()) != 1) {
      return Fail(Status(Internal("cannot initialise signature verification")));
    }
    int verified =
        EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(der.data()), der.size(),
                         reinterpret_cast<const unsigned char*>(jws.signing_input.data()), jws.signing_input.size());
    if (verified != 1) return Fail(Status(Unauthenticated("bad token signature")));

    const nlohmann::json& claims = jws.claims;
    int64_t now = expect.now_unix != 0 ? expect.now_unix : UnixNow();
    double exp = 0, nbf = 0;
    // Compared as doubles: NumericDate may be fractional, and no conversion can overflow.
    if (!NumericClaim(claims, "exp", &exp)) return Unauthenticated("token has no expiry");
    if (static_cast<double>(now) > exp + static_cast<double>(expect.leeway_s)) return Unauthenticated("token expired");
    if (NumericClaim(claims, "nbf", &nbf) && nbf > static_cast<double>(now + expect.leeway_s)) {
      return Unauthenticated("token not yet valid");
    }
    if (!expect.issuer.empty()) {
      std::string iss;
      if (!StringMember(claims, "iss", &iss) || iss != expect.issuer) return Unauthenticated("wrong token issuer");
    }
    if (!expect.audience.empty() && !AudienceMatches(claims, expect.audience)) {
      return Unauthenticated("wrong token audience");
    }
    return claims;
  } catch (...) {
    ERR_clear_error();
    return Unauthenticated("malformed token");
  }
}

StatusOr<std::pair<nlohmann::json, nlohmann::json>> DecodeJwtUnverified(std::string_view token) {
  StatusOr<CompactJws> parsed = ParseCompactJws(token);
  if (!parsed.ok()) return parsed.status();
  return std::make_pair(std::move(parsed->header), std::move(parsed->claims));
}

}  // namespace bff
