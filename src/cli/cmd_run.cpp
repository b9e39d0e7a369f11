// kiln run MATRIX: plan -> generate -> build -> verify -> promote -> report.
#include <cstdlib>
#include <unistd.h>

#include <algorithm>
#include <iostream>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/progress.h"
#include "cli/promote_options.h"
#include "report/report.h"
#include "util/json_out.h"

namespace kiln::cli {

namespace {

// The exit status the promotion decides, combination by combination: 0 only
// when every selected combination was tagged with its record attached (the
// same rule as `kiln promote`, never a recount of the report's words).
int promotion_status(const promote::Report& pr) {
  return std::all_of(pr.combos.begin(), pr.combos.end(), [](const auto& c) { return c.complete(); }) ? 0 : 1;
}

int run_all(const Common& common, const PromoteArgs& a) {
  Loaded l = load_plan(common, a.matrix);
  require_matches(l.p, a.only);
  render::Renderer renderer(common.templates());
  bool json = a.format == "json";
  bool talk = !json && !common.quiet;
  auto lock = lock_state_dir(a.state_dir, "run");  // build, verify and the reports write the state directory
  if (talk)
    std::cerr << fmt::format("kiln run {}: {} valid combinations ({} excluded by the plan)\n", l.p.matrix_name,
                             l.p.count(plan::Status::valid), l.p.count(plan::Status::excluded));
  build::Options bo{engines_for(l.m, {}), a.jobs, false, false, a.state_dir, a.only};
  Progress progress(!talk ? Progress::Mode::quiet : (isatty(STDERR_FILENO) ? Progress::Mode::live : Progress::Mode::plain),
                    past_build_times(a.state_dir));
  build::Report b = build::build_plan(l.p, renderer, bo, [&](const build::Event& e) { progress.on(e); });

  if (talk) std::cerr << "verify: static checks and the smoke suite on the runners\n";
  verify::Options vo = verify_options(l.m, a.runners, a.state_dir, a.only, common.data_dir, &l.cat);
  vo.smoke_on_cpu = a.smoke_on_cpu;
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
  emit(common,
       json ? json_text(report::to_json(rr), 2) + '\n'
            : report::table(rr) + fmt::format("reports: {}, {}, {}\n", files[0], files[1], files[2]),
       json);
  for (const std::string& env : {b.environment_error(), pr.environment_error})
    if (!env.empty()) {
      std::cerr << "kiln: error: " << env << '\n';
      return 2;
    }
  return promotion_status(pr);
}

}  // namespace

void register_run(CLI::App& app, Common& common) {
  auto r = std::make_shared<PromoteArgs>();
  CLI::App* run = app.add_subcommand("run", "plan, build, verify and promote a matrix, then report");
  add_promote_flags(run, *r);
  run->add_option("-j,--jobs", r->jobs, "Builds at a time")->capture_default_str();
  run->add_flag("--smoke-on-cpu", r->smoke_on_cpu, "Run the smoke suite on runners without GPUs too");
  run->add_flag("--force", r->force, "Move a tag that names another image");
  add_output_flag(run, common);
  set_action(run, [&common, r] { return run_all(common, *r); });
}

}  // namespace kiln::cli
