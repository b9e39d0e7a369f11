// kiln export: the smoke units (verify/smoke_unit.h) as what schedulers
// read. Submitting is the user's (`kubectl apply -f`, a workflow's
// strategy.matrix); the results come back with `kiln verify --ingest`.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "verify/smoke_unit.h"

namespace kiln::exporter {

struct K8sOptions {
  std::string matrix;      // the matrix name: labels and Job names
  std::string queue;       // Kueue LocalQueue: kueue.x-k8s.io/queue-name; "" none
  std::string k8s_namespace;  // metadata.namespace; "" the user's current one
};

// One batch/v1 Job per unit: the smoke image by digest running
// kiln-smoke-unit, resources.limits nvidia.com/gpu: N, a node selector on
// GPU feature discovery's labels (nvidia.com/gpu.product when the runner
// names its product, nvidia.com/gpu.compute.major/minor from its class),
// /dev/shm as a memory emptyDir of the runner's shm_size, /tmp an emptyDir,
// a read-only root, activeDeadlineSeconds = the unit's timeout,
// backoffLimit 0, labels naming the combination, runner and digest (label
// values are at most 63 characters: the digest's first 12 hex) and
// annotations with the full image id, digests and suite hash.
nlohmann::json k8s_job(const verify::SmokeUnit& u, const K8sOptions& o);

// A Kubernetes object name / label value: lower case, [a-z0-9-], at most
// `max` characters, starting and ending alphanumeric.
std::string k8s_name(const std::string& text, size_t max = 63);

// Block-style YAML of JSON documents, each after "---" (strings double-quoted
// as JSON writes them, which YAML reads the same).
std::string yaml_documents(const std::vector<nlohmann::json>& docs);

// CI matrices. Each entry: combination id, runner class, image id and
// digests, suite hash, and the exact commands: `run` (the unit's command
// line, with `engine`, printing the JSON into RESULT) and `ingest`.
struct CiOptions {
  std::string matrix_path;        // what `kiln verify` is given in the ingest command
  verify::UnitEngine engine = verify::UnitEngine::docker;
  size_t chunk = 256;             // GitHub's limit of jobs per matrix
};
nlohmann::json ci_entry(const verify::SmokeUnit& u, const CiOptions& o);
// {"include": [...]} documents of at most o.chunk entries each.
std::vector<nlohmann::json> github_matrices(const std::vector<verify::SmokeUnit>& units, const CiOptions& o);
// A GitLab CI job per chunk: `parallel: matrix:` of the entries' variables
// (KILN_COMBO, KILN_RUNNER, KILN_RUN, KILN_INGEST), script running them.
// GitLab allows 200 jobs per parallel:matrix: chunked at min(o.chunk, 200).
nlohmann::json gitlab_pipeline(const std::vector<verify::SmokeUnit>& units, const CiOptions& o);

}  // namespace kiln::exporter
