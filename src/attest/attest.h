// DSSE envelopes (github.com/secure-systems-lab/dsse, v1): a payload and
// its type signed together through the pre-authentication encoding, with a
// key the user provides as a PEM file (ECDSA P-256 with SHA-256, or
// Ed25519), through OpenSSL. The key is named by a path (config or
// environment), never by a command-line argument, and never logged.
// promote signs its attachments with it (KILN_SIGNING_KEY) and `kiln
// verify-release` checks them (docs/sbom.md).
#pragma once
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace kiln::attest {

inline constexpr const char* dsse_media_type = "application/vnd.dsse.envelope.v1+json";

// A key that cannot be read, is not ECDSA P-256 or Ed25519, or a signature
// OpenSSL refuses to make. what() names the file, never its bytes.
struct KeyError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// "DSSEv1 <len(type)> <type> <len(payload)> <payload>": what is signed.
std::string pae(std::string_view payload_type, std::string_view payload);

// {"payloadType", "payload": base64, "signatures": [{"keyid", "sig": base64}]}.
// ECDSA signatures are ASN.1 DER, as cosign writes them.
nlohmann::json sign_envelope(std::string_view payload_type, std::string_view payload,
                             const std::filesystem::path& private_key_pem, const std::string& keyid = "");

struct Verified {
  bool ok = false;
  std::string payload_type, payload;  // set when ok
  std::string error;                  // why not, in words
};
// ok when one signature verifies over PAE(payloadType, payload) with the
// public key (PEM, SubjectPublicKeyInfo); a malformed envelope, a changed
// payload or type, or another key: not ok, with the reason.
Verified verify_envelope(const nlohmann::json& envelope, const std::filesystem::path& public_key_pem);

// A signature over `message` itself (cosign's simple-signing layout signs
// the payload's bytes, not a PAE): ECDSA P-256 over SHA-256 (ASN.1 DER), or
// Ed25519. Raw bytes out; KeyError as for sign_envelope.
std::string sign_bytes(std::string_view message, const std::filesystem::path& private_key_pem);
bool verify_bytes(std::string_view message, std::string_view signature, const std::filesystem::path& public_key_pem);

// cosign's key-based layout (sigstore/cosign pkg/oci/static/signature.go,
// pkg/types/media.go, pkg/oci/remote/remote.go): media types and annotations.
inline constexpr const char* cosign_simplesigning_media_type = "application/vnd.dev.cosign.simplesigning.v1+json";
inline constexpr const char* cosign_signature_annotation = "dev.cosignproject.cosign/signature";
inline constexpr const char* in_toto_payload_type = "application/vnd.in-toto+json";

}  // namespace kiln::attest
