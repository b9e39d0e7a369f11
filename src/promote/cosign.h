// cosign's key-based layout (issue 17 item 4), so `cosign verify --key` and
// `cosign verify-attestation --key` read what kiln signs. Where cosign
// defines it (github.com/sigstore/cosign):
// - pkg/oci/remote/remote.go `normalize`: the tags "sha256-<hex>.sig" and
//   "sha256-<hex>.att" of the image's repository;
// - pkg/oci/static/signature.go: each signature is one layer whose bytes
//   are the payload and whose annotation "dev.cosignproject.cosign/signature"
//   is the base64 signature over those bytes (an attestation's is "", its
//   signature being inside the DSSE envelope);
// - pkg/oci/static/options.go, pkg/types/media.go: layer media type
//   application/vnd.dev.cosign.simplesigning.v1+json (signatures),
//   application/vnd.dsse.envelope.v1+json (attestations, with the
//   "predicateType" annotation), config application/vnd.oci.image.config.v1+json;
// - the payload (sigstore/sigstore pkg/signature/payload): {"critical":
//   {"identity": {"docker-reference"}, "image": {"docker-manifest-digest"},
//   "type": "cosign container image signature"}, "optional": null}.
// No transparency-log entry is made: cosign 2.x needs --insecure-ignore-tlog.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "promote/provenance.h"  // slsa_provenance_v1
#include "registry/registry.h"

namespace kiln::promote {

inline constexpr const char* spdx_predicate = "https://spdx.dev/Document";
inline constexpr const char* kiln_verification_predicate = "https://kiln.invalid/verification/v1";

// The simple-signing payload for an image digest.
std::string simple_signing_payload(const std::string& docker_reference, const std::string& digest);

// An in-toto Statement v1 about the digest wrapping `predicate` (JSON text).
std::string statement_for(const std::string& subject_name, const std::string& digest, const std::string& predicate_type,
                          const std::string& predicate_json);

// Writes (appends to what is there) sha256-<hex>.sig with one signature and
// sha256-<hex>.att with one DSSE-signed statement per entry of
// `statements` (predicateType, statement JSON). Returns the two tags.
std::vector<std::string> attach_cosign(registry::Client& reg, const std::string& repo, const std::string& digest,
                                       const std::vector<std::pair<std::string, std::string>>& statements,
                                       const std::string& private_key_pem);

struct CosignCheck {
  std::string kind;  // "cosign-signature" | "cosign-attestation:<predicateType>"
  bool ok = false;
  std::string detail;
};
// Reads the .sig and .att tags back: a signature layer verifies over its
// payload with the key and names this digest; for each predicate type
// asked, an attestation layer's envelope verifies, is in-toto, its
// statement's subject is this digest and its predicateType the annotation's.
std::vector<CosignCheck> verify_cosign(registry::Client& reg, const std::string& repo, const std::string& digest,
                                       const std::vector<std::string>& predicate_types, const std::string& public_key_pem);

}  // namespace kiln::promote
