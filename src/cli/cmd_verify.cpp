// kiln verify MATRIX: static checks and the smoke suite on runners; the
// matrix policy decides which combinations are verified.
#include <iostream>

#include <unistd.h>

#include <fmt/format.h>

#include "catalog/catalog.h"
#include "cli/commands.h"
#include "cli/progress.h"
#include "matrix/matrix.h"
#include "util/diag.h"
#include "cli/runners.h"
#include "verify/verify.h"
#include "util/json_out.h"

namespace kiln::cli {

namespace {

struct VerifyArgs {
  std::string matrix;
  std::vector<std::string> runners;
  std::vector<std::string> only;
  bool force = false;
  bool smoke_on_cpu = false;
  int timeout_s = 300;
  std::string state_dir = ".kiln";
  std::string format = "table";
};

std::string table(const verify::Report& r) {
  std::string out = fmt::format("{:<34} {:<9} {:<19} {}\n", "COMBINATION", "VERIFIED", "IMAGE", "CHECKS / WHY NOT");
  for (const auto& v : r.combos) {
    std::string checks;
    for (const auto& c : v.checks) checks += fmt::format("{}@{}={}{} ", c.check, c.runner, c.status, c.reused ? "(ledger)" : "");
    out += fmt::format("{:<34} {:<9} {:<19} {}\n", v.id, v.verified ? "yes" : "no", v.image_id.substr(0, 19), checks);
    if (!v.verified) out += fmt::format("    not verified: {}\n", v.reason);
    for (const auto& c : v.checks) {
      for (const auto& problem : c.problems) out += fmt::format("    {} on {}: {}\n", c.check, c.runner, problem);
      if (c.detail.contains("summary") && c.detail["summary"].contains("line") && c.detail["summary"]["line"].is_string())
        out += fmt::format("    {} on {}: {}\n", c.check, c.runner, c.detail["summary"]["line"].get<std::string>());
    }
  }
  out += fmt::format("\n{} of {} verified\n", r.verified(), r.combos.size());
  return out;
}

int run_verify(const Common& common, const VerifyArgs& a) {
  catalog::Catalog cat = catalog::Catalog::load(common.recipes());
  matrix::Matrix m = load_matrix(common, a.matrix);
  plan::Plan p = plan::make_plan(m, cat);
  render::Renderer renderer(common.templates());
  verify::Options o;
  o.runners = runners_for(m, a.runners);
  o.state_dir = a.state_dir;
  o.only = a.only;
  o.force = a.force;
  o.smoke_on_cpu = a.smoke_on_cpu;
  o.timeout_s = a.timeout_s;
  o.kernels_dir = common.data_dir + "/kernels";
  o.catalog = &cat;
  auto lock = lock_state_dir(a.state_dir, "verify");  // it records verdicts
  Progress progress(a.format == "json" ? Progress::Mode::quiet
                                       : (isatty(STDERR_FILENO) ? Progress::Mode::live : Progress::Mode::plain));
  o.on_step = [&](const std::string& what) { progress.step(what); };
  verify::Report report;
  try {
    report = verify::verify_plan(p, renderer, o);
  } catch (const build::EnvironmentError& e) {
    progress.close();
    std::cerr << "kiln: error: " << e.what() << '\n';
    return 2;
  }
  progress.close();
  if (a.format == "json") std::cout << json_text(verify::to_json(report), 2) << '\n';
  else std::cout << table(report);
  return report.verified() == report.combos.size() ? 0 : 1;
}

}  // namespace

void register_verify(CLI::App& app, Common& common) {
  auto a = std::make_shared<VerifyArgs>();
  CLI::App* sub = app.add_subcommand("verify", "Check built images against their plan and run the smoke suite on GPUs");
  sub->add_option("matrix", a->matrix, "Matrix TOML (default: matrices/offline.toml)");
  sub->add_option("--runner", a->runners, "Matrix runner to verify on (repeatable; default: all)");
  sub->add_option("--only", a->only, "Combination id or glob (repeatable)");
  sub->add_flag("--force", a->force, "Rerun checks that already passed on the same image");
  sub->add_flag("--smoke-on-cpu", a->smoke_on_cpu, "Run the smoke suite on runners without GPUs too (it must report no GPU)");
  sub->add_option("--timeout", a->timeout_s, "Seconds before a smoke container is killed")->capture_default_str();
  sub->add_option("--state-dir", a->state_dir, "Ledger location")->capture_default_str();
  sub->add_option("--format", a->format, "table or json")->check(CLI::IsMember({"table", "json"}));
  set_action(sub, [&common, a] { return run_verify(common, *a); });
}

}  // namespace kiln::cli
