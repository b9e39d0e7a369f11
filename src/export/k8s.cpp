// Kubernetes batch/v1 Jobs of the smoke units.
#include <algorithm>
#include <cctype>

#include <fmt/format.h>

#include "export/export.h"
#include "util/cc.h"

namespace kiln::exporter {

std::string k8s_name(const std::string& text, size_t max) {
  std::string out;
  for (unsigned char c : text) {
    char l = static_cast<char>(std::tolower(c));
    bool ok = std::isalnum(static_cast<unsigned char>(l));
    if (ok) out += l;
    else if (!out.empty() && out.back() != '-') out += '-';
  }
  if (out.size() > max) out.resize(max);
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out.empty() ? "x" : out;
}

namespace {

std::string hex12(const std::string& digest) { return digest.substr(digest.find(':') + 1, 12); }

std::string digest_of(const std::string& ref) {
  auto r = verify::split_digest_ref(ref);
  return r ? r->digest : "";
}

// The node selector: the product when the runner names it, and the compute
// capability of its (first) class, as GPU feature discovery labels nodes.
nlohmann::json node_selector(const verify::SmokeUnit& u) {
  nlohmann::json sel = nlohmann::json::object();
  if (!u.gpu_product.empty()) sel["nvidia.com/gpu.product"] = u.gpu_product;
  if (!u.gpu_classes.empty())
    if (auto cc = ComputeCapability::parse(u.gpu_classes.front())) {
      sel["nvidia.com/gpu.compute.major"] = std::to_string(cc->major);
      sel["nvidia.com/gpu.compute.minor"] = std::to_string(cc->minor);
    }
  return sel;
}

}  // namespace

nlohmann::json k8s_job(const verify::SmokeUnit& u, const K8sOptions& o) {
  // "kiln-smoke-<combination>-<runner>-<image hex 8>", within 63 characters
  // (a Job's pods get a suffix: keep the name short enough for them).
  std::string tail = "-" + k8s_name(u.runner, 16) + "-" + hex12(u.image_id).substr(0, 8);
  std::string name = k8s_name("kiln-smoke-" + u.combo_id, 52 - tail.size()) + tail;
  nlohmann::json labels{{"app.kubernetes.io/name", "kiln-smoke"},
                        {"app.kubernetes.io/managed-by", "kiln"},
                        {"kiln.dev/matrix", k8s_name(o.matrix)},
                        {"kiln.dev/combination", k8s_name(u.combo_id)},
                        {"kiln.dev/runner", k8s_name(u.runner)},
                        {"kiln.dev/image-id", "sha256-" + hex12(u.image_id)}};
  if (!o.queue.empty()) labels["kueue.x-k8s.io/queue-name"] = o.queue;
  nlohmann::json annotations{{"kiln.dev/combination", u.combo_id},        {"kiln.dev/image-id", u.image_id},
                             {"kiln.dev/image", u.image_ref},             {"kiln.dev/image-digest", digest_of(u.image_ref)},
                             {"kiln.dev/smoke-image", u.smoke_ref},       {"kiln.dev/suite-hash", u.suite_hash},
                             {"kiln.dev/gpu-classes", fmt::format("{}", fmt::join(u.gpu_classes, ","))}};
  nlohmann::json metadata{{"name", name}, {"labels", labels}, {"annotations", annotations}};
  if (!o.k8s_namespace.empty()) metadata["namespace"] = o.k8s_namespace;
  nlohmann::json env = nlohmann::json::array({
      {{"name", "KILN_NODE"}, {"valueFrom", {{"fieldRef", {{"fieldPath", "spec.nodeName"}}}}}},
      {{"name", "KILN_JOB"}, {"valueFrom", {{"fieldRef", {{"fieldPath", "metadata.name"}}}}}},
      {{"name", "KILN_RUNNER"}, {"value", u.runner}},
      {{"name", "KILN_SCHEDULER"}, {"value", "kubernetes"}},
      {{"name", "NCCL_NVLS_ENABLE"}, {"value", "0"}},
      {{"name", "TORCH_SYMM_MEM_DISABLE_MULTICAST"}, {"value", "1"}},
      {{"name", "NVSHMEM_DISABLE_NVLS"}, {"value", "1"}},
  });
  nlohmann::json container{
      {"name", "smoke"},
      {"image", u.smoke_ref},
      {"imagePullPolicy", "IfNotPresent"},
      {"command", {verify::kUnitProgram}},
      {"env", env},
      {"resources", {{"limits", {{"nvidia.com/gpu", u.gpus}}}}},
      {"securityContext", {{"readOnlyRootFilesystem", true}, {"allowPrivilegeEscalation", false}}},
      {"volumeMounts", nlohmann::json::array({{{"name", "dshm"}, {"mountPath", "/dev/shm"}},
                                              {{"name", "tmp"}, {"mountPath", "/tmp"}}})},
  };
  nlohmann::json volumes = nlohmann::json::array(
      {{{"name", "dshm"}, {"emptyDir", {{"medium", "Memory"}, {"sizeLimit", std::to_string(u.shm_size)}}}},
       {{"name", "tmp"}, {"emptyDir", {{"sizeLimit", "256Mi"}}}}});
  nlohmann::json pod_spec{{"restartPolicy", "Never"},
                          {"nodeSelector", node_selector(u)},
                          {"containers", nlohmann::json::array({container})},
                          {"volumes", volumes}};
  return {{"apiVersion", "batch/v1"},
          {"kind", "Job"},
          {"metadata", metadata},
          {"spec",
           {{"backoffLimit", 0},
            {"activeDeadlineSeconds", u.timeout_s},
            {"ttlSecondsAfterFinished", 86400},
            {"template", {{"metadata", {{"labels", labels}, {"annotations", annotations}}}, {"spec", pod_spec}}}}}};
}

}  // namespace kiln::exporter
