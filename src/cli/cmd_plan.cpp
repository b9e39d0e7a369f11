// kiln plan MATRIX: expand and resolve a matrix; answer "does it run on this
// driver and GPU" with --driver/--gpu; --valid and --only narrow what is shown.
#include <fmt/format.h>

#include "cli/commands.h"
#include "util/diag.h"
#include "util/json_out.h"
#include "util/select.h"
#include "util/version.h"

namespace kiln::cli {

namespace {

struct PlanArgs {
  std::string matrix;
  std::string format = "table";
  plan::Query query;
  plan::TableOptions show;
};

int run_plan(const Common& common, const PlanArgs& a) {
  if (!a.query.driver.empty() && !Version::parse(a.query.driver))
    throw InputError({"--driver"}, "driver must be a version such as 535.104.05");
  Loaded l = load_plan(common, a.matrix, a.query);
  std::vector<std::string> ids;  // plan --only may name excluded combinations too
  for (const auto& c : l.p.combos) ids.push_back(c.id);
  for (const auto& pattern : unmatched_patterns(a.show.only, ids))
    throw InputError({"--only"}, fmt::format("'{}' matches no combination of matrix '{}'", pattern, l.p.matrix_name));
  if (a.format != "json") {
    emit(common, plan::to_table(l.p, a.show), false);
    return 0;
  }
  nlohmann::json j = plan::to_json(l.p);
  nlohmann::json shown = nlohmann::json::array();  // summary keeps the whole plan's counts
  for (const auto& c : j["combos"])
    if ((!a.show.valid_only || c["status"] == "valid") && selected(c["id"].get<std::string>(), a.show.only)) shown.push_back(c);
  j["combos"] = std::move(shown);
  emit(common, json_text(j, 2) + '\n', true);
  return 0;
}

}  // namespace

void register_plan(CLI::App& app, Common& common) {
  auto args = std::make_shared<PlanArgs>();
  CLI::App* sub = app.add_subcommand("plan", "Resolve every combination of a matrix against the catalog");
  sub->add_option("matrix", args->matrix, "Matrix TOML (default: matrices/offline.toml)");
  sub->add_option("--format", args->format, "table or json")->check(CLI::IsMember({"table", "json"}));
  sub->add_option("--driver", args->query.driver, "Driver version to check against, e.g. 535.104.05");
  sub->add_option("--gpu", args->query.gpus, "GPU name or sm_XY to check against (repeatable; a column each)");
  sub->add_flag("--valid", args->show.valid_only, "Show only valid combinations");
  sub->add_option("--only", args->show.only, "Show only these combination ids or globs (repeatable)");
  add_output_flag(sub, common);
  set_action(sub, [&common, args] { return run_plan(common, *args); });
}

}  // namespace kiln::cli
