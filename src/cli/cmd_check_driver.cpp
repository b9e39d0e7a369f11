// kiln check-driver --driver V [--gpu G...] (IMAGE...|MATRIX.toml): the
// release pipeline's gate. Exit 0 only if everything runs on that driver and
// those GPUs; 1 with a table of why not; 2 for bad input.
#include <iostream>

#include <fmt/format.h>

#include "cli/audit_input.h"
#include "cli/commands.h"
#include "matrix/matrix.h"
#include "plan/plan.h"
#include "util/diag.h"
#include "util/json_out.h"

namespace kiln::cli {

namespace {

struct CheckArgs {
  std::string driver;
  std::vector<std::string> gpus;
  std::vector<std::string> inputs;
  std::string format = "table";
  InputOptions input;
};

struct Row {
  std::string name;
  bool ok = false;
  std::string min_driver;
  std::vector<std::string> why;
  std::vector<std::string> conditions;  // ok, but only where these hold (GPU brands)
};

std::vector<Row> check_matrix(const Common& common, const CheckArgs& a, const catalog::Catalog& cat) {
  matrix::Matrix m = load_matrix(common, a.inputs.front());
  plan::Plan p = plan::make_plan(m, cat, plan::Query{a.driver, a.gpus});
  (void)common;
  std::vector<Row> rows;
  for (const auto& c : p.combos)
    if (c.status == plan::Status::valid) rows.push_back({c.id, c.usable.value_or(false), c.min_driver, c.why_not, c.conditions});
  if (rows.empty()) rows.push_back({m.name, false, "", {"the matrix has no valid combination to check"}});
  return rows;
}

std::vector<Row> check_images(const CheckArgs& a, const catalog::Catalog& cat) {
  const auto gpus = audit::resolve_gpus(a.gpus, cat);
  const Version driver = Version::must(a.driver);
  std::vector<Row> rows;
  for (const auto& image : a.inputs) {
    audit::ImageAudit au = audit_input(image, gpus, cat, a.input);
    Row r{image, false, au.verdict.min_driver, audit::why_not_on_driver(au.verdict, driver),
          audit::conditions_on_driver(au.verdict, driver)};
    r.ok = r.why.empty();
    rows.push_back(std::move(r));
  }
  return rows;
}

void print(const std::vector<Row>& rows, const CheckArgs& a) {
  if (a.format == "json") {
    nlohmann::json j = {{"schema", "kiln.check-driver/v1"}, {"driver", a.driver}, {"gpus", a.gpus}, {"results", nlohmann::json::array()}};
    for (const auto& r : rows)
      j["results"].push_back({{"name", r.name}, {"ok", r.ok}, {"min_driver", r.min_driver.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.min_driver)},
                              {"why_not", r.why}, {"conditions", r.conditions}});
    j["ok"] = std::all_of(rows.begin(), rows.end(), [](const Row& r) { return r.ok; });
    std::cout << json_text(j, 2) << '\n';
    return;
  }
  std::cout << fmt::format("driver {}{}\n", a.driver, a.gpus.empty() ? " (no --gpu: GPU support not checked)" : ", GPUs " + fmt::format("{}", fmt::join(a.gpus, " ")));
  std::cout << fmt::format("{:<56} {:<6} {:<11} {}\n", "IMAGE", "RESULT", "MIN DRIVER", "WHY NOT");
  for (const auto& r : rows) {
    std::cout << fmt::format("{:<56} {:<6} {:<11} {}\n", r.name, r.ok ? "ok" : "FAIL", r.min_driver.empty() ? "-" : r.min_driver,
                             r.why.empty() ? "" : r.why.front());
    for (size_t i = 1; i < r.why.size(); ++i) std::cout << fmt::format("{:<76}{}\n", "", r.why[i]);
    if (r.ok)
      for (const auto& only : r.conditions) std::cout << fmt::format("{:<76}only if: {}\n", "", only);
  }
}

int run_check_driver(const Common& common, const CheckArgs& a) {
  if (!Version::parse(a.driver)) throw InputError({"--driver"}, "driver must be a version such as 535.104.05");
  catalog::Catalog cat = catalog::Catalog::load(common.recipes());
  const bool matrix = a.inputs.size() == 1 && a.inputs.front().ends_with(".toml");
  std::vector<Row> rows = matrix ? check_matrix(common, a, cat) : check_images(a, cat);
  print(rows, a);
  return std::all_of(rows.begin(), rows.end(), [](const Row& r) { return r.ok; }) ? 0 : 1;
}

}  // namespace

void register_check_driver(CLI::App& app, Common& common) {
  auto args = std::make_shared<CheckArgs>();
  CLI::App* sub = app.add_subcommand("check-driver", "Exit 0 only if every image (or valid matrix combination) runs on this driver and GPU");
  sub->add_option("--driver", args->driver, "Driver version, e.g. 535.104.05")->required();
  sub->add_option("--gpu", args->gpus, "GPU name or sm_XY that must be served (repeatable)");
  sub->add_option("inputs", args->inputs, "IMAGE... (as for kiln audit) or one MATRIX.toml")->required();
  sub->add_option("--format", args->format, "table or json")->check(CLI::IsMember({"table", "json"}));
  add_input_flags(sub, args->input);
  set_action(sub, [&common, args] { return run_check_driver(common, *args); });
}

}  // namespace kiln::cli
