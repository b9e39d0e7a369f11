// Kubernetes Jobs and CI matrices of smoke units. The units are made here
// (as prepare_units makes them from a built plan; tests/export/units_e2e.sh
// exports real ones and loads the Jobs into the Kubernetes client).
#include <catch2/catch.hpp>

#include "export/export.h"

using namespace kiln;

namespace {

verify::SmokeUnit unit(int i) {
  verify::SmokeUnit u;
  u.combo_id = "pytorch2.11-cuda13.0-cudnn9-ubuntu24.04-runtime-" + std::to_string(i);
  u.runner = "h200x2";
  u.image_id = "sha256:" + std::string(64, 'a');
  u.image_ref = "127.0.0.1:5000/kiln/gpu-torch@sha256:" + std::string(64, 'b');
  u.smoke_ref = "127.0.0.1:5000/kiln/gpu-torch-smoke@sha256:" + std::string(64, 'c');
  u.suite_hash = std::string(64, 'd');
  u.gpu_classes = {"sm_90"};
  u.gpu_product = "NVIDIA-H200";
  u.gpus = 2;
  u.shm_size = 2LL << 30;
  u.timeout_s = 900;
  return u;
}

}  // namespace

TEST_CASE("k8s names and label values fit Kubernetes' rules") {
  CHECK(exporter::k8s_name("cuda12.4-Debian13_runtime") == "cuda12-4-debian13-runtime");
  CHECK(exporter::k8s_name(std::string(100, 'x') + "-y").size() == 63);
  CHECK(exporter::k8s_name("--a--", 63) == "a");
  CHECK(exporter::k8s_name("...", 63) == "x");
}

TEST_CASE("a Job: GPUs, node selector, shm, deadline, no retries, labels and annotations") {
  nlohmann::json job = exporter::k8s_job(unit(1), {"gpu-torch", "team-gpu", "ci"});
  CHECK(job["apiVersion"] == "batch/v1");
  CHECK(job["kind"] == "Job");
  CHECK(job["spec"]["backoffLimit"] == 0);
  CHECK(job["spec"]["activeDeadlineSeconds"] == 900);
  const auto& pod = job["spec"]["template"]["spec"];
  const auto& c = pod["containers"][0];
  CHECK(c["image"] == unit(1).smoke_ref);
  CHECK(c["resources"]["limits"]["nvidia.com/gpu"] == 2);
  CHECK(pod["nodeSelector"]["nvidia.com/gpu.product"] == "NVIDIA-H200");
  CHECK(pod["nodeSelector"]["nvidia.com/gpu.compute.major"] == "9");
  CHECK(pod["volumes"][0]["emptyDir"]["medium"] == "Memory");
  CHECK(pod["volumes"][0]["emptyDir"]["sizeLimit"] == std::to_string(2LL << 30));
  const auto& labels = job["metadata"]["labels"];
  CHECK(labels["kueue.x-k8s.io/queue-name"] == "team-gpu");
  for (const auto& [k, v] : labels.items()) CHECK(v.get<std::string>().size() <= 63);
  CHECK(job["metadata"]["annotations"]["kiln.dev/image-id"] == unit(1).image_id);
  CHECK(job["metadata"]["namespace"] == "ci");
  CHECK(job["metadata"]["name"].get<std::string>().size() <= 52);
}

TEST_CASE("YAML documents: one per Job, block style") {
  std::string y = exporter::yaml_documents({exporter::k8s_job(unit(1), {"m", "", ""}), exporter::k8s_job(unit(2), {"m", "", ""})});
  size_t docs = 0;
  for (size_t at = y.find("---\n"); at != std::string::npos; at = y.find("---\n", at + 1)) ++docs;
  CHECK(docs == 2);
  CHECK(y.find("apiVersion: \"batch/v1\"\n") != std::string::npos);
  CHECK(y.find("\n      nodeSelector:\n        nvidia.com/gpu.compute.major: \"9\"\n") != std::string::npos);
  CHECK(y.find("nvidia.com/gpu: 2\n") != std::string::npos);
  CHECK(y.find("- name: \"KILN_NODE\"\n") != std::string::npos);
}

TEST_CASE("github-matrix chunks at 256 entries, every entry with its exact commands") {
  std::vector<verify::SmokeUnit> units;
  for (int i = 0; i < 600; ++i) units.push_back(unit(i));
  exporter::CiOptions o;
  o.matrix_path = "matrices/gpu-torch.toml";
  auto docs = exporter::github_matrices(units, o);
  REQUIRE(docs.size() == 3);
  CHECK(docs[0]["include"].size() == 256);
  CHECK(docs[1]["include"].size() == 256);
  CHECK(docs[2]["include"].size() == 88);
  const auto& e = docs[2]["include"][87];
  CHECK(e["combination"] == units[599].combo_id);
  CHECK(e["run"] == verify::unit_command(units[599], verify::UnitEngine::docker) + " > " + e["result"].get<std::string>() + " || true");
  CHECK(e["ingest"] == "kiln verify matrices/gpu-torch.toml --ingest " + e["result"].get<std::string>());
  CHECK(e["image_digest"] == "sha256:" + std::string(64, 'b'));
  // GitLab: at most 200 per parallel:matrix.
  auto gl = exporter::gitlab_pipeline(units, o);
  CHECK(gl.size() == 3);
  CHECK(gl["kiln-smoke-1"]["parallel"]["matrix"].size() == 200);
  CHECK(gl["kiln-smoke-3"]["parallel"]["matrix"].size() == 200);
}
