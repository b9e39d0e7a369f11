// kiln verify MATRIX: static checks and the smoke suite on runners; the
// matrix policy decides which combinations are verified.
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>

#include "cli/commands.h"
#include "cli/progress.h"
#include "cli/runners.h"
#include "util/json_out.h"
#include "util/table.h"
#include "util/text.h"
#include "verify/verify.h"

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
  std::vector<std::string> ingest;  // result files: record them, run nothing
};

// `--ingest`: results of units run elsewhere. Exit 0 when every file was
// accepted, 1 when one was refused (wrong image, suite, no GPU facts), 2
// when one could not be read as JSON at all.
int run_ingest(const Common& common, const VerifyArgs& a, const Loaded& l, const render::Renderer& renderer,
               const verify::Options& o) {
  auto results = verify::ingest_results(l.p, renderer, o, a.ingest);
  bool json = a.format == "json";
  std::string text;
  if (json) {
    text = json_text(verify::to_json(results), 2) + "\n";
  } else {
    Table t({"FILE", "ACCEPTED", "COMBINATION", "STATUS", "WHERE"});
    for (const auto& r : results) {
      std::string where = r.accepted ? fmt::format("{} {} on {}: {} x {} ({}), driver {}", r.placement.scheduler, r.placement.runner,
                                                   r.placement.node, r.placement.gpu_count, r.placement.gpu_model.empty() ? "-" : r.placement.gpu_model,
                                                   r.placement.gpu_class.empty() ? "-" : r.placement.gpu_class,
                                                   r.placement.driver.empty() ? "-" : r.placement.driver)
                                     : "";
      t.add_row({r.file, r.accepted ? "yes" : "no", r.combo.empty() ? "-" : r.combo, r.accepted ? r.status : "-", where});
      if (!r.accepted) t.add_note(fmt::format("{}: refused: {}", r.file, r.reason));
    }
    text = t.str();
  }
  emit(common, text, json);
  bool unreadable = std::any_of(results.begin(), results.end(), [](const auto& r) { return r.unreadable; });
  bool refused = std::any_of(results.begin(), results.end(), [](const auto& r) { return !r.accepted; });
  return unreadable ? 2 : refused ? 1 : 0;
}

std::string table(const verify::Report& r, bool colour) {
  Table t({"COMBINATION", "VERIFIED", "IMAGE", "CHECKS"});
  for (const auto& v : r.combos) {
    std::vector<std::string> checks;
    for (const auto& c : v.checks) checks.push_back(fmt::format("{}@{}={}{}", c.check, c.runner, verify::to_string(c.status), c.reused ? "*" : ""));
    t.add_row({v.id, v.verified ? paint("yes", Colour::green, colour) : paint("no", Colour::red, colour), v.image_id.substr(0, 19), join(checks, " ")});
    if (!v.verified) t.add_note("not verified: " + v.reason);
    for (const auto& c : v.checks) {
      for (const auto& problem : c.problems) t.add_note(fmt::format("{} on {}: {}", c.check, c.runner, problem));
      if (c.detail.contains("summary") && c.detail["summary"].contains("line") && c.detail["summary"]["line"].is_string())
        t.add_note(fmt::format("{} on {}: {}", c.check, c.runner, c.detail["summary"]["line"].get<std::string>()));
    }
  }
  bool reused = std::any_of(r.combos.begin(), r.combos.end(), [](const auto& v) {
    return std::any_of(v.checks.begin(), v.checks.end(), [](const auto& c) { return c.reused; });
  });
  return t.str() + (reused ? "\n*: a result the ledger already held for this exact image (--force reruns it)\n" : "") +
         fmt::format("\n{} of {} verified\n", r.verified(), r.combos.size());
}

int run_verify(const Common& common, const VerifyArgs& a) {
  Loaded l = load_plan(common, a.matrix);
  require_matches(l.p, a.only);
  render::Renderer renderer(common.templates());
  verify::Options o = verify_options(l.m, a.runners, a.state_dir, a.only, common.data_dir, &l.cat);
  o.force = a.force;
  o.smoke_on_cpu = a.smoke_on_cpu;
  o.timeout_s = a.timeout_s;
  auto lock = lock_state_dir(a.state_dir, "verify");  // it records verdicts
  if (!a.ingest.empty()) return run_ingest(common, a, l, renderer, o);
  Progress progress(a.format == "json" || common.quiet
                        ? Progress::Mode::quiet
                        : (isatty(STDERR_FILENO) ? Progress::Mode::live : Progress::Mode::plain));
  o.on_step = [&](const std::string& what) { progress.step(what); };
  verify::Report report = verify::verify_plan(l.p, renderer, o);
  progress.close();
  bool json = a.format == "json";
  emit(common, json ? json_text(verify::to_json(report), 2) + '\n' : table(report, colour(common)), json);
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
  sub->add_option("--ingest", a->ingest, "Record smoke-unit results (JSON files) run elsewhere; runs nothing")
      ->expected(1, -1);
  sub->add_option("--format", a->format, "table or json")->check(CLI::IsMember({"table", "json"}));
  add_output_flag(sub, common);
  set_action(sub, [&common, a] { return run_verify(common, *a); });
}

}  // namespace kiln::cli
