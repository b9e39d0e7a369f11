// The provenance promote attaches beside the verification record and the
// SBOM: an in-toto Statement v1 whose predicate is SLSA provenance v1
// (https://slsa.dev/provenance/v1), made from what kiln recorded -- the
// matrix, the catalog, the rendered Dockerfile, the bases, the engine, the
// ledger's build times and the verdicts. docs/sbom.md says where each
// field comes from.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kiln::promote {

inline constexpr const char* intoto_media_type = "application/vnd.in-toto+json";
inline constexpr const char* slsa_provenance_v1 = "https://slsa.dev/provenance/v1";
inline constexpr const char* kiln_build_type = "https://kiln.invalid/buildtypes/matrix/v1";

struct BaseImage {
  std::string name;      // as the Dockerfile's FROM names it
  std::string image_id;  // the engine's image id (config digest), "sha256:..."
  std::vector<std::string> repo_digests;  // "repo@sha256:..." when it came from a registry
};

struct VerdictRun {
  std::string check, runner, status;
};

struct ProvenanceInputs {
  std::string subject_name;    // "HOST/REPO" the image is promoted to
  std::string subject_digest;  // its manifest digest, "sha256:..."
  std::string image_id;        // the verified image id (config digest)
  std::string combination;
  std::string matrix_name, matrix_path, matrix_digest;  // digest: "sha256:..." of the matrix file
  std::string lock_path, lock_digest;  // MATRIX.lock when the plan was locked ("sha256:..."); empty otherwise
  std::string catalog_version;
  std::string dockerfile_digest;  // "sha256:..." of the rendered Dockerfile; empty: not rendered here
  std::string input_hash;         // the build's input hash (what decides a rebuild)
  std::vector<BaseImage> bases;
  std::string engine, backend;    // where it was built: "unix:///var/run/docker.sock", "engine"
  std::string kiln_version;
  std::optional<std::int64_t> started_ms, finished_ms;  // the ledger's build attempt, unix ms
  std::vector<VerdictRun> verdicts;
  std::string record_digest;  // the attached verification record's manifest, when attached
};

// {"_type": "https://in-toto.io/Statement/v1", "subject", "predicateType", "predicate"}
nlohmann::json provenance_statement(const ProvenanceInputs& in);

}  // namespace kiln::promote
