// kiln build MATRIX: build every valid combination on the matrix's engines.
// kiln status MATRIX: what the ledger knows about each combination.
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <map>

#include <fmt/format.h>

#include "build/build.h"
#include "catalog/catalog.h"
#include "cli/commands.h"
#include "cli/progress.h"
#include "cli/runners.h"
#include "matrix/matrix.h"
#include "state/ledger.h"
#include "util/diag.h"
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
  nlohmann::json stages = nlohmann::json::array();
  for (const auto& s : r.stages) {
    stages.push_back({{"id", s.id}, {"outcome", build::to_string(s.outcome)}, {"engine", s.engine},
                      {"image_id", s.image_id}, {"local_image", s.local_image}, {"input_hash", s.input_hash},
                      {"failed_step", s.failed_step}, {"error", s.error}, {"log", s.log_path}, {"seconds", s.seconds}});
    build::add_size_json(s, stages.back());
  }
  return {{"schema", "kiln.build/v1"},
          {"summary", {{"built", r.count(build::Outcome::built)}, {"cached", r.count(build::Outcome::cached)},
                       {"failed", r.count(build::Outcome::failed)}, {"skipped", r.count(build::Outcome::skipped)}}},
          {"stages", stages}};
}

int run_build(const Common& common, const BuildArgs& a) {
  catalog::Catalog cat = catalog::Catalog::load(common.recipes());
  matrix::Matrix m = matrix::parse_matrix_file(a.matrix.empty() ? common.default_matrix() : a.matrix);
  plan::Plan p = plan::make_plan(m, cat);
  render::Renderer renderer(common.templates());
  build::Options o{engines_for(m, a.builders), a.jobs, a.fail_fast, a.no_cache, a.state_dir, a.only};
  auto lock = lock_state_dir(a.state_dir, "build");  // input read: now the ledger is ours alone
  bool json = a.format == "json";
  Progress progress(json ? Progress::Mode::quiet : (isatty(STDERR_FILENO) ? Progress::Mode::live : Progress::Mode::plain));
  build::Report report;
  try {
    report = build::build_plan(p, renderer, o, [&](const build::Event& e) { progress.on(e); });
  } catch (const build::EnvironmentError& e) {
    std::cerr << "kiln: error: " << e.what() << '\n';
    return 2;
  }
  progress.close();
  if (json) std::cout << json_text(report_json(report), 2) << '\n';
  else std::cout << summary_table(report);
  if (auto env = report.environment_error(); !env.empty()) {  // the engine failed, not a build
    std::cerr << "kiln: error: " << env << '\n';
    return 2;
  }
  return report.ok() ? 0 : 1;
}

std::string age(std::int64_t unix_ms) {
  using namespace std::chrono;
  auto now = duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
  auto s = (now - unix_ms) / 1000;
  if (s < 120) return fmt::format("{}s ago", s);
  if (s < 7200) return fmt::format("{}m ago", s / 60);
  return fmt::format("{}h ago", s / 3600);
}

int run_status(const Common& common, const std::string& matrix_path, const std::string& state_dir, const std::string& format) {
  matrix::Matrix m = matrix::parse_matrix_file(matrix_path.empty() ? common.default_matrix() : matrix_path);
  state::Ledger ledger(state_dir + "/state.db");
  ledger.recover();  // a killed kiln's attempts show as interrupted, not building
  auto combos = ledger.combos(m.name);
  if (format == "json") {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& c : combos) {
      nlohmann::json j{{"id", c.combo_id}, {"status", std::string(state::to_string(c.status))}, {"stages", c.stage_ids}};
      if (c.final_build)
        j["build"] = {{"image_id", c.final_build->image_id}, {"engine", c.final_build->engine},
                      {"input_hash", c.final_build->input_hash}, {"log", c.final_build->log_path},
                      {"error", c.final_build->error}, {"seconds", c.final_build->seconds.value_or(0)}};
      if (!c.blocked_by.empty()) j["blocked_by"] = c.blocked_by;
      for (const auto& v : c.final_build ? ledger.verdicts(c.final_build->image_id) : std::vector<state::Verdict>{})
        j["verdicts"].push_back({{"runner", v.runner}, {"check", v.check}, {"status", v.status}});
      out.push_back(j);
    }
    std::cout << json_text(nlohmann::json{{"schema", "kiln.status/v1"}, {"matrix", m.name}, {"combos", out}}, 2) << '\n';
    return 0;
  }
  std::cout << fmt::format("{}: {} combinations in {}\n\n", m.name, combos.size(), ledger.path());
  std::cout << fmt::format("{:<34} {:<12} {:<19} {:>8}  {}\n", "COMBINATION", "STATUS", "IMAGE", "SECONDS", "WHEN / WHY");
  for (const auto& c : combos) {
    const auto& b = c.final_build;
    std::string image = b && !b->image_id.empty() ? b->image_id.substr(0, 19) : "-";
    std::string why = b ? age(b->started_at) : "";
    if (!c.blocked_by.empty()) why = "blocked by " + c.blocked_by;
    if (b && !b->error.empty()) why += (why.empty() ? "" : "; ") + b->error + (b->log_path.empty() ? "" : " (log: " + b->log_path + ")");
    if (b && !b->image_id.empty())  // verdicts belong to this exact image
      for (const auto& v : ledger.verdicts(b->image_id)) why += fmt::format("; {}@{}={}", v.check, v.runner, v.status);
    std::cout << fmt::format("{:<34} {:<12} {:<19} {:>8.1f}  {}\n", c.combo_id, state::to_string(c.status), image,
                             b ? b->seconds.value_or(0) : 0.0, why);
  }
  return 0;
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
  set_action(sub, [&common, a] { return run_build(common, *a); });

  auto s = std::make_shared<BuildArgs>();
  CLI::App* st = app.add_subcommand("status", "Show what the ledger knows about each combination");
  st->add_option("matrix", s->matrix, "Matrix TOML (default: matrices/offline.toml)");
  st->add_option("--state-dir", s->state_dir, "Ledger location")->capture_default_str();
  st->add_option("--format", s->format, "table or json")->check(CLI::IsMember({"table", "json"}));
  set_action(st, [&common, s] { return run_status(common, s->matrix, s->state_dir, s->format); });
}

}  // namespace kiln::cli
