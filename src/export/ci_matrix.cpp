// CI matrices of the smoke units: GitHub Actions' strategy.matrix include
// lists and GitLab CI's parallel:matrix.
#include <algorithm>

#include <fmt/format.h>

#include "export/export.h"
#include "util/text.h"

namespace kiln::exporter {

namespace {

std::string result_file(const verify::SmokeUnit& u) {
  return "kiln-result-" + k8s_name(u.combo_id, 100) + "-" + k8s_name(u.runner, 40) + ".json";
}

// GitLab creates at most 200 jobs from one parallel:matrix.
constexpr size_t kGitlabMatrixLimit = 200;

}  // namespace

nlohmann::json ci_entry(const verify::SmokeUnit& u, const CiOptions& o) {
  auto ref = verify::split_digest_ref(u.image_ref);
  std::string result = result_file(u);
  return {{"combination", u.combo_id},
          {"runner", u.runner},
          {"gpu_classes", join(u.gpu_classes, ",")},
          {"gpus", u.gpus},
          {"image_id", u.image_id},
          {"image", u.image_ref},
          {"image_digest", ref ? ref->digest : ""},
          {"smoke_image", u.smoke_ref},
          {"suite_hash", u.suite_hash},
          {"result", result},
          // The unit's exit code says pass (0), fail (1) or no GPU (3); the
          // job keeps the JSON either way, and ingest records the verdict.
          {"run", verify::unit_command(u, o.engine) + " > " + result + " || true"},
          {"ingest", verify::shell_line({"kiln", "verify", o.matrix_path, "--ingest", result})}};
}

std::vector<nlohmann::json> github_matrices(const std::vector<verify::SmokeUnit>& units, const CiOptions& o) {
  std::vector<nlohmann::json> out;
  size_t chunk = std::max<size_t>(1, o.chunk);
  for (size_t i = 0; i < units.size(); i += chunk) {
    nlohmann::json include = nlohmann::json::array();
    for (size_t k = i; k < std::min(units.size(), i + chunk); ++k) include.push_back(ci_entry(units[k], o));
    out.push_back({{"include", include}});
  }
  if (out.empty()) out.push_back({{"include", nlohmann::json::array()}});
  return out;
}

nlohmann::json gitlab_pipeline(const std::vector<verify::SmokeUnit>& units, const CiOptions& o) {
  nlohmann::json pipeline = nlohmann::json::object();
  size_t chunk = std::clamp<size_t>(o.chunk, 1, kGitlabMatrixLimit);
  for (size_t i = 0, n = 1; i < units.size(); i += chunk, ++n) {
    nlohmann::json matrix = nlohmann::json::array();
    for (size_t k = i; k < std::min(units.size(), i + chunk); ++k) {
      nlohmann::json e = ci_entry(units[k], o);
      matrix.push_back({{"KILN_COMBO", e["combination"]},
                        {"KILN_RUNNER", e["runner"]},
                        {"KILN_IMAGE_DIGEST", e["image_digest"]},
                        {"KILN_RESULT", e["result"]},
                        {"KILN_RUN", e["run"]},
                        {"KILN_INGEST", e["ingest"]}});
    }
    pipeline[fmt::format("kiln-smoke-{}", n)] = {
        {"stage", "test"},
        {"tags", {"$KILN_RUNNER"}},  // a GPU runner registered with its class as a tag
        {"parallel", {{"matrix", matrix}}},
        {"script", {"eval \"$KILN_RUN\"", "cat \"$KILN_RESULT\""}},
        {"artifacts", {{"when", "always"}, {"paths", {"kiln-result-*.json"}}}}};
  }
  return pipeline;
}

}  // namespace kiln::exporter
