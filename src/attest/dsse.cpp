// DSSE signing and verification with OpenSSL's EVP interface: one code path
// for ECDSA P-256 (SHA-256, DER signatures) and Ed25519 (no digest).
#include <cstdio>
#include <memory>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "attest/attest.h"
#include "util/base64.h"

namespace kiln::attest {

namespace {

using Key = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using MdCtx = std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)>;

// PEM from a file; private or public. Errors name the path only.
Key load_key(const std::filesystem::path& path, bool is_private) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), std::fclose);
  if (!f) throw KeyError("cannot open the key file " + path.string());
  EVP_PKEY* k = is_private ? PEM_read_PrivateKey(f.get(), nullptr, nullptr, nullptr)
                           : PEM_read_PUBKEY(f.get(), nullptr, nullptr, nullptr);
  if (!k) throw KeyError(path.string() + ": not a PEM " + (is_private ? "private" : "public") + " key (or one with a passphrase)");
  Key key(k, EVP_PKEY_free);
  const int id = EVP_PKEY_get_base_id(k);
  if (id == EVP_PKEY_ED25519) return key;
  if (id == EVP_PKEY_EC) {
    char group[64] = "";
    std::size_t len = 0;
    if (EVP_PKEY_get_utf8_string_param(k, "group", group, sizeof group, &len) == 1 && std::string(group) == "prime256v1")
      return key;
    throw KeyError(path.string() + ": an EC key not on P-256 (" + std::string(group) + ")");
  }
  throw KeyError(path.string() + ": neither an ECDSA P-256 nor an Ed25519 key");
}

// SHA-256 for ECDSA; none (the algorithm hashes itself) for Ed25519.
const EVP_MD* digest_for(EVP_PKEY* k) { return EVP_PKEY_get_base_id(k) == EVP_PKEY_ED25519 ? nullptr : EVP_sha256(); }

}  // namespace

std::string pae(std::string_view type, std::string_view payload) {
  return "DSSEv1 " + std::to_string(type.size()) + " " + std::string(type) + " " + std::to_string(payload.size()) + " " +
         std::string(payload);
}

nlohmann::json sign_envelope(std::string_view type, std::string_view payload, const std::filesystem::path& key_path,
                             const std::string& keyid) {
  Key key = load_key(key_path, true);
  const std::string msg = pae(type, payload);
  MdCtx ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  std::size_t len = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, digest_for(key.get()), nullptr, key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(msg.data()), msg.size()) != 1)
    throw KeyError("OpenSSL cannot sign with " + key_path.string());
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                     reinterpret_cast<const unsigned char*>(msg.data()), msg.size()) != 1)
    throw KeyError("OpenSSL cannot sign with " + key_path.string());
  sig.resize(len);
  return {{"payloadType", type},
          {"payload", base64_encode(payload)},
          {"signatures", nlohmann::json::array({{{"keyid", keyid}, {"sig", base64_encode(sig)}}})}};
}

Verified verify_envelope(const nlohmann::json& env, const std::filesystem::path& pub_path) {
  Verified out;
  if (!env.is_object() || !env.contains("payloadType") || !env["payloadType"].is_string() || !env.contains("payload") ||
      !env["payload"].is_string() || !env.contains("signatures") || !env["signatures"].is_array()) {
    out.error = "not a DSSE envelope (payloadType, payload and signatures)";
    return out;
  }
  auto payload = base64_decode(env["payload"].get<std::string>());
  if (!payload) {
    out.error = "the payload is not base64";
    return out;
  }
  const std::string type = env["payloadType"];
  Key key = load_key(pub_path, false);
  const std::string msg = pae(type, *payload);
  for (const auto& s : env["signatures"]) {
    if (!s.is_object() || !s.contains("sig") || !s["sig"].is_string()) continue;
    auto sig = base64_decode(s["sig"].get<std::string>());
    if (!sig) continue;
    MdCtx ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    if (ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, digest_for(key.get()), nullptr, key.get()) == 1 &&
        EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig->data()), sig->size(),
                         reinterpret_cast<const unsigned char*>(msg.data()), msg.size()) == 1) {
      out.ok = true;
      out.payload_type = type;
      out.payload = std::move(*payload);
      return out;
    }
  }
  out.error = "no signature verifies with " + pub_path.string() + " (a changed payload or type, or another key)";
  return out;
}

}  // namespace kiln::attest

namespace kiln::attest {

// cosign's simple signing: the signature is over the payload's bytes
// themselves (no PAE), SHA-256 for ECDSA, the message itself for Ed25519.
std::string sign_bytes(std::string_view message, const std::filesystem::path& key_path) {
  Key key = load_key(key_path, true);
  MdCtx ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  std::size_t len = 0;
  const auto* data = reinterpret_cast<const unsigned char*>(message.data());
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, digest_for(key.get()), nullptr, key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, data, message.size()) != 1)
    throw KeyError("OpenSSL cannot sign with " + key_path.string());
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, data, message.size()) != 1)
    throw KeyError("OpenSSL cannot sign with " + key_path.string());
  sig.resize(len);
  return sig;
}

bool verify_bytes(std::string_view message, std::string_view signature, const std::filesystem::path& public_key_pem) {
  Key key = load_key(public_key_pem, false);
  MdCtx ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  return ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, digest_for(key.get()), nullptr, key.get()) == 1 &&
         EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                          reinterpret_cast<const unsigned char*>(message.data()), message.size()) == 1;
}

}  // namespace kiln::attest
