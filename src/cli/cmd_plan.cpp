// kiln plan MATRIX: expand and resolve a matrix; answer "does it run on this
// driver and GPU" with --driver/--gpu.
#include <iostream>

#include "catalog/catalog.h"
#include "cli/commands.h"
#include "matrix/matrix.h"
#include "plan/plan.h"
#include "util/diag.h"
#include "util/version.h"
#include "util/json_out.h"

namespace kiln::cli {

namespace {

struct PlanArgs {
  std::string matrix;
  std::string format = "table";
  plan::Query query;
};

int run_plan(const Common& common, const PlanArgs& a) {
  if (!a.query.driver.empty() && !Version::parse(a.query.driver))
    throw InputError({"--driver"}, "driver must be a version such as 535.104.05");
  catalog::Catalog cat = catalog::Catalog::load(common.recipes());
  matrix::Matrix m = load_matrix(common, a.matrix);
  plan::Plan p = plan::make_plan(m, cat, a.query);
  if (a.format == "json") std::cout << json_text(plan::to_json(p), 2) << '\n';
  else std::cout << plan::to_table(p);
  return 0;
}

}  // namespace

void register_plan(CLI::App& app, Common& common) {
  auto args = std::make_shared<PlanArgs>();
  CLI::App* sub = app.add_subcommand("plan", "Resolve every combination of a matrix against the catalog");
  sub->add_option("matrix", args->matrix, "Matrix TOML (default: matrices/offline.toml)");
  sub->add_option("--format", args->format, "table or json")->check(CLI::IsMember({"table", "json"}));
  sub->add_option("--driver", args->query.driver, "Driver version to check against, e.g. 535.104.05");
  sub->add_option("--gpu", args->query.gpus, "GPU name or sm_XY to check against (repeatable)");
  set_action(sub, [&common, args] { return run_plan(common, *args); });
}

}  // namespace kiln::cli
