// kiln build MATRIX: build every valid combination on the matrix's engines.
#include <unistd.h>

#include <iostream>

#include "build/build.h"
#include "cli/commands.h"
#include "cli/progress.h"
#include "cli/runners.h"
#include "util/json_out.h"

namespace kiln::cli {

namespace {

struct BuildArgs {
  std::string matrix;
  std::vector<std::string> builders;
  std::vector<std::string> only;
  int jobs = 2;
  bool fail_fast = false;
  bool no_cache = false;
  std::string state_dir = ".kiln";
  std::string format = "table";
};

nlohmann::json report_json(const build::Report& r) {
  nlohmann::json combos = nlohmann::json::array();  // one stage per combination (devel builds on its runtime)
  for (const auto& s : r.stages) {
    combos.push_back({{"id", s.id}, {"outcome", build::to_string(s.outcome)}, {"engine", s.engine},
                      {"image_id", s.image_id}, {"local_image", s.local_image}, {"input_hash", s.input_hash},
                      {"failed_step", s.failed_step}, {"error", s.error}, {"log", s.log_path}, {"seconds", s.seconds},
                      {"attempts", s.attempts}});
    build::add_size_json(s, combos.back());
    if (!s.image_ref.empty()) combos.back()["image_ref"] = s.image_ref;  // pushed by a builder that is not the engine
  }
  return {{"schema", "kiln.build/v2"},
          {"summary", {{"built", r.count(build::Outcome::built)}, {"cached", r.count(build::Outcome::cached)},
                       {"failed", r.count(build::Outcome::failed)}, {"skipped", r.count(build::Outcome::skipped)}}},
          {"combos", combos}};
}

int run_build(const Common& common, const BuildArgs& a) {
  Loaded l = load_plan(common, a.matrix);
  require_matches(l.p, a.only);
  render::Renderer renderer(common.templates());
  build::Options o{engines_for(l.m, a.builders), a.jobs, a.fail_fast, a.no_cache, a.state_dir, a.only};
  auto lock = lock_state_dir(a.state_dir, "build");  // input read: now the ledger is ours alone
  bool json = a.format == "json";
  Progress progress(json || common.quiet ? Progress::Mode::quiet
                                         : (isatty(STDERR_FILENO) ? Progress::Mode::live : Progress::Mode::plain),
                    past_build_times(a.state_dir));
  build::Report report = build::build_plan(l.p, renderer, o, [&](const build::Event& e) { progress.on(e); });
  progress.close();
  emit(common, json ? json_text(report_json(report), 2) + '\n' : summary_table(report), json);
  if (auto env = report.environment_error(); !env.empty()) {  // the engine failed, not a build; the document says which
    std::cerr << "kiln: error: " << env << '\n';
    return 2;
  }
  return report.ok() ? 0 : 1;
}

}  // namespace

void register_build(CLI::App& app, Common& common) {
  auto a = std::make_shared<BuildArgs>();
  CLI::App* sub = app.add_subcommand("build", "Build every valid combination on real engines (incremental)");
  sub->add_option("matrix", a->matrix, "Matrix TOML (default: matrices/offline.toml)");
  sub->add_option("--builder", a->builders, "Matrix runner to build on (repeatable; default: every runner with an engine, else DOCKER_HOST)");
  sub->add_option("--only", a->only, "Combination id or glob (repeatable); parents come along");
  sub->add_option("-j,--jobs", a->jobs, "Builds at a time")->capture_default_str()->check(CLI::Range(1, 64));
  sub->add_flag("--fail-fast", a->fail_fast, "Start nothing new after the first failure");
  sub->add_flag("--no-cache", a->no_cache, "Rebuild even unchanged stages, without the engine's layer cache");
  sub->add_option("--state-dir", a->state_dir, "Ledger, logs and contexts")->capture_default_str();
  sub->add_option("--format", a->format, "table or json")->check(CLI::IsMember({"table", "json"}));
  add_output_flag(sub, common);
  set_action(sub, [&common, a] { return run_build(common, *a); });
}

}  // namespace kiln::cli
