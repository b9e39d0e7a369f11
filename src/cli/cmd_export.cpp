// kiln export {units,k8s,github-matrix,gitlab-matrix} MATRIX: the smoke
// units of the plan's built images (smoke images pushed by digest to the
// staging registry) as what a scheduler reads; results come back with
// `kiln verify --ingest`.
#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/runners.h"
#include "export/export.h"
#include "util/json_out.h"
#include "verify/verify.h"

namespace kiln::cli {

namespace {

struct ExportArgs {
  std::string kind;  // units | k8s | github-matrix | gitlab-matrix
  std::string matrix;
  std::string staging;
  std::vector<std::string> runners;
  std::vector<std::string> only;
  int timeout_s = 300;
  std::string state_dir = ".kiln";
  std::string format;  // k8s: yaml|json; matrices: json|yaml
  std::string queue, k8s_namespace;
  std::string engine = "docker";
  size_t chunk = 256;
};

int run_export(const Common& common, const ExportArgs& a) {
  Loaded l = load_plan(common, a.matrix);
  require_matches(l.p, a.only);
  render::Renderer renderer(common.templates());
  verify::Options o = verify_options(l.m, a.runners, a.state_dir, a.only, common.data_dir, nullptr);
  o.timeout_s = a.timeout_s;
  auto lock = lock_state_dir(a.state_dir, "export");  // it builds smoke images into the state dir
  std::string staging = a.staging.empty() ? verify::default_staging(l.p) : a.staging;
  verify::PreparedUnits prepared = verify::prepare_units(l.p, renderer, o, staging);
  for (const auto& [combo, why] : prepared.problems) fmt::print(stderr, "kiln export: {}: no unit: {}\n", combo, why);
  bool yaml = a.format == "yaml" || (a.format.empty() && a.kind == "k8s") ||
              (a.format.empty() && a.kind == "gitlab-matrix");
  std::string text;
  if (a.kind == "units") {
    text = json_text(verify::to_json(prepared), 2) + "\n";
  } else if (a.kind == "k8s") {
    std::vector<nlohmann::json> jobs;
    for (const auto& u : prepared.units) jobs.push_back(exporter::k8s_job(u, {l.p.matrix_name, a.queue, a.k8s_namespace}));
    if (yaml) text = exporter::yaml_documents(jobs);
    else text = json_text(nlohmann::json{{"apiVersion", "v1"}, {"kind", "List"}, {"items", jobs}}, 2) + "\n";
  } else {
    exporter::CiOptions co;
    co.matrix_path = a.matrix.empty() ? common.default_matrix() : a.matrix;
    co.engine = *verify::parse_unit_engine(a.engine);
    co.chunk = a.chunk;
    if (a.kind == "github-matrix") {
      // One {"include": [...]} per line: each fits one job's strategy.matrix
      // (fromJSON), GitHub's 256-job limit per matrix kept.
      auto docs = exporter::github_matrices(prepared.units, co);
      if (yaml) text = exporter::yaml_documents(docs);
      else
        for (const auto& d : docs) text += json_text(d) + "\n";
    } else {
      auto pipeline = exporter::gitlab_pipeline(prepared.units, co);
      text = yaml ? exporter::yaml_documents({pipeline}) : json_text(pipeline, 2) + "\n";
    }
  }
  emit(common, text, !yaml);
  return prepared.problems.empty() ? 0 : 1;
}

}  // namespace

void register_export(CLI::App& app, Common& common) {
  CLI::App* cmd = app.add_subcommand("export", "Smoke units for schedulers kiln does not drive: Kubernetes Jobs, CI matrices");
  cmd->require_subcommand(1);
  auto kinds = std::make_shared<std::vector<std::pair<CLI::App*, std::shared_ptr<ExportArgs>>>>();
  struct Kind {
    const char* name;
    const char* help;
  };
  for (Kind k : {Kind{"units", "The smoke units as JSON, with their docker/podman/pyxis command lines"},
                 Kind{"k8s", "One batch/v1 Job per (image, runner class), YAML documents (or --format json: a List)"},
                 Kind{"github-matrix", "GitHub Actions strategy.matrix {\"include\": [...]} documents, 256 entries each"},
                 Kind{"gitlab-matrix", "A GitLab CI pipeline fragment: parallel:matrix jobs, 200 entries each"}}) {
    auto a = std::make_shared<ExportArgs>();
    a->kind = k.name;
    CLI::App* sub = cmd->add_subcommand(k.name, k.help);
    sub->add_option("matrix", a->matrix, "Matrix TOML (default: matrices/offline.toml)");
    sub->add_option("--staging", a->staging, "REGISTRY/REPO the images are pushed to by digest (default: the matrix's [registry])");
    sub->add_option("--runner", a->runners, "Runner (class) to export for (repeatable; default: all with gpu_classes)");
    sub->add_option("--only", a->only, "Combination id or glob (repeatable)");
    sub->add_option("--timeout", a->timeout_s, "Seconds a unit may run (activeDeadlineSeconds, timeout, --time)")->capture_default_str();
    sub->add_option("--state-dir", a->state_dir, "Ledger location")->capture_default_str();
    if (std::string(k.name) == "k8s") {
      sub->add_option("--queue", a->queue, "Kueue LocalQueue (label kueue.x-k8s.io/queue-name)");
      sub->add_option("--namespace", a->k8s_namespace, "metadata.namespace of the Jobs");
      sub->add_option("--format", a->format, "yaml or json")->check(CLI::IsMember({"yaml", "json"}));
    } else if (std::string(k.name) != "units") {
      sub->add_option("--engine", a->engine, "How a CI job runs the unit: docker, podman or pyxis")
          ->check(CLI::IsMember({"docker", "podman", "pyxis"}))->capture_default_str();
      sub->add_option("--chunk", a->chunk, "Entries per matrix (GitHub allows 256, GitLab 200)")->capture_default_str();
      sub->add_option("--format", a->format, "json or yaml")->check(CLI::IsMember({"yaml", "json"}));
    }
    add_output_flag(sub, common);
    kinds->push_back({sub, a});
  }
  // The verb's action runs the kind that was parsed (run_selected looks one level down).
  set_action(cmd, [&common, kinds] {
    for (const auto& [sub, a] : *kinds)
      if (sub->parsed()) return run_export(common, *a);
    return 2;
  });
}

}  // namespace kiln::cli
