// kiln promote MATRIX: release tags for verified combinations only.
// kiln run MATRIX: plan -> generate -> build -> verify -> promote -> report.
#include <cstdlib>
#include <unistd.h>

#include <iostream>

#include <fmt/format.h>

#include "catalog/catalog.h"
#include "cli/commands.h"
#include "cli/progress.h"
#include "cli/runners.h"
#include "matrix/matrix.h"
#include "promote/promote.h"
#include "report/report.h"
#include "util/diag.h"
#include "util/json_out.h"

namespace kiln::cli {

namespace {

struct RunArgs {
  std::string matrix;
  std::vector<std::string> runners;
  std::vector<std::string> only;
  int jobs = 2;
  bool dry_run = false;
  bool force = false;
  bool smoke_on_cpu = false;
  std::string state_dir = ".kiln";
  std::string format = "table";
};

struct Loaded {
  catalog::Catalog cat;
  matrix::Matrix m;
  plan::Plan p;
};

Loaded load(const Common& common, const std::string& path) {
  catalog::Catalog cat = catalog::Catalog::load(common.recipes());
  matrix::Matrix m = matrix::parse_matrix_file(path.empty() ? common.default_matrix() : path);
  plan::Plan p = plan::make_plan(m, cat);
  return {std::move(cat), std::move(m), std::move(p)};
}

promote::Options promote_options(const Common& common, const matrix::Matrix& m, const RunArgs& a) {
  promote::Options o;
  o.templates_dir = common.templates();  // the provenance names the rendered Dockerfile
  // The signing key: a path in the environment, never an argument (argv is public).
  if (const char* key = std::getenv("KILN_SIGNING_KEY"); key && *key) o.signing_key = key;
  o.runners = runners_for(m, a.runners);
  o.state_dir = a.state_dir;
  o.dry_run = a.dry_run;
  o.force = a.force;
  o.only = a.only;
  o.kiln_version = KILN_VERSION;
  return o;
}

std::string promote_table(const promote::Report& r) {
  std::string out;
  for (const auto& c : r.combos) {
    out += fmt::format("{:<34} {}\n", c.id, c.tagged ? "tagged " + c.digest : "not tagged: " + c.reason);
    for (const auto& t : c.tags)
      out += fmt::format("    {:<12} {}{}\n", t.action, t.tag, t.error.empty() ? "" : "  (" + t.error + ")");
    if (!c.record.empty()) out += fmt::format("    record       attached ({})\n", c.record);
    if (c.tagged && !c.recorded) out += fmt::format("    record       NOT attached: {}\n", c.record_error);
  }
  out += fmt::format("\n{} of {} tagged\n", r.tagged(), r.combos.size());
  return out;
}

int run_promote(const Common& common, const RunArgs& a) {
  Loaded l = load(common, a.matrix);
  promote::Report r;
  try {
    r = promote::promote_plan(l.p, promote_options(common, l.m, a));
  } catch (const build::EnvironmentError& e) {
    std::cerr << "kiln: error: " << e.what() << '\n';
    return 2;
  }
  if (a.format == "json") std::cout << json_text(promote::to_json(r), 2) << '\n';
  else std::cout << promote_table(r);
  if (!r.environment_error.empty()) {
    std::cerr << "kiln: error: " << r.environment_error << '\n';
    return 2;
  }
  if (a.dry_run) return 0;
  bool all = std::all_of(r.combos.begin(), r.combos.end(), [](const auto& c) { return c.complete(); });
  return all ? 0 : 1;
}

int run_all(const Common& common, const RunArgs& a) {
  Loaded l = load(common, a.matrix);
  render::Renderer renderer(common.templates());
  bool json = a.format == "json";
  auto lock = lock_state_dir(a.state_dir, "run");  // build, verify and the reports write the state directory
  try {
    std::cerr << fmt::format("kiln run {}: {} valid combinations ({} excluded by the plan)\n", l.p.matrix_name,
                             l.p.count(plan::Status::valid), l.p.count(plan::Status::excluded));
    build::Options bo{engines_for(l.m, {}), a.jobs, false, false, a.state_dir, a.only};
    Progress progress(json ? Progress::Mode::quiet : (isatty(STDERR_FILENO) ? Progress::Mode::live : Progress::Mode::plain),
                      past_build_times(a.state_dir));
    build::Report b = build::build_plan(l.p, renderer, bo, [&](const build::Event& e) { progress.on(e); });

    std::cerr << "verify: static checks and the smoke suite on the runners\n";
    verify::Options vo;
    vo.runners = runners_for(l.m, a.runners);
    vo.state_dir = a.state_dir;
    vo.only = a.only;
    vo.smoke_on_cpu = a.smoke_on_cpu;
    vo.kernels_dir = common.data_dir + "/kernels";
    vo.catalog = &l.cat;
    vo.on_step = [&](const std::string& what) { progress.step(what); };
    verify::Report v = verify::verify_plan(l.p, renderer, vo);

    progress.step("promote: release tags for verified combinations");
    promote::Options po = promote_options(common, l.m, a);
    po.on_step = [&](const std::string& what) { progress.step(what); };
    promote::Report pr = promote::promote_plan(l.p, po);
    progress.close();

    report::RunReport rr = report::assemble(l.p, &b, &v, &pr);
    rr.kiln_version = KILN_VERSION;
    auto files = report::write(rr, a.state_dir + "/reports", common.templates());
    if (json) std::cout << json_text(report::to_json(rr), 2) << '\n';
    else std::cout << report::table(rr) << "reports: " << files[0] << ", " << files[1] << ", " << files[2] << '\n';
    for (const std::string& env : {b.environment_error(), pr.environment_error})
      if (!env.empty()) {
        std::cerr << "kiln: error: " << env << '\n';
        return 2;
      }
    bool recorded = std::all_of(pr.combos.begin(), pr.combos.end(), [](const auto& c) { return !c.tagged || c.recorded; });
    return rr.tagged == rr.valid && recorded ? 0 : 1;
  } catch (const build::EnvironmentError& e) {
    std::cerr << "kiln: error: " << e.what() << '\n';
    return 2;
  }
}

void common_flags(CLI::App* sub, RunArgs& a) {
  sub->add_option("matrix", a.matrix, "Matrix TOML (default: matrices/offline.toml)");
  sub->add_option("--runner", a.runners, "Matrix runner whose verdicts count (repeatable; default: all)");
  sub->add_option("--only", a.only, "Combination id or glob (repeatable)");
  sub->add_option("--state-dir", a.state_dir, "Ledger, logs, reports")->capture_default_str();
  sub->add_option("--format", a.format, "table or json")->check(CLI::IsMember({"table", "json"}));
}

}  // namespace

void register_run(CLI::App& app, Common& common) {
  auto p = std::make_shared<RunArgs>();
  CLI::App* promote = app.add_subcommand("promote", "Push release tags for verified combinations only");
  common_flags(promote, *p);
  promote->add_flag("--dry-run", p->dry_run, "Show what would be tagged; write nothing");
  promote->add_flag("--force", p->force, "Move a tag that names another image");
  set_action(promote, [&common, p] { return run_promote(common, *p); });

  auto r = std::make_shared<RunArgs>();
  CLI::App* run = app.add_subcommand("run", "plan, build, verify and promote a matrix, then report");
  common_flags(run, *r);
  run->add_option("-j,--jobs", r->jobs, "Builds at a time")->capture_default_str();
  run->add_flag("--smoke-on-cpu", r->smoke_on_cpu, "Run the smoke suite on runners without GPUs too");
  run->add_flag("--force", r->force, "Move a tag that names another image");
  set_action(run, [&common, r] { return run_all(common, *r); });
}

}  // namespace kiln::cli
