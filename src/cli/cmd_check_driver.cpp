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
#include "util/table.h"

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

// Combinations (a matrix) are "combos" keyed by "id", images are "images"
// keyed by "image": the words every verb's JSON uses (docs/json.md).
std::string document(const std::vector<Row>& rows, const CheckArgs& a, bool matrix, bool colour) {
  if (a.format == "json") {
    const char* list = matrix ? "combos" : "images";
    nlohmann::json j = {{"schema", "kiln.check-driver/v3"}, {"driver", a.driver}, {"gpus", a.gpus}, {list, nlohmann::json::array()}};
    for (const auto& r : rows)
      j[list].push_back({{matrix ? "id" : "image", r.name}, {"ok", r.ok}, {"min_driver", r.min_driver.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.min_driver)},
                         {"reason", reason_json(r.why)}, {"conditions", r.conditions}});
    j["ok"] = std::all_of(rows.begin(), rows.end(), [](const Row& r) { return r.ok; });
    return json_text(j, 2) + '\n';
  }
  std::string out = fmt::format("driver {}{}\n\n", a.driver, a.gpus.empty() ? " (no --gpu: GPU support not checked)" : ", GPUs " + fmt::format("{}", fmt::join(a.gpus, " ")));
  Table t({matrix ? "COMBINATION" : "IMAGE", "RESULT", "MIN DRIVER"});
  for (const auto& r : rows) {
    t.add_row({r.name, r.ok ? paint("ok", Colour::green, colour) : paint("FAIL", Colour::red, colour), r.min_driver.empty() ? "-" : r.min_driver});
    for (const auto& why : r.why) t.add_note("why not: " + why);
    if (r.ok)
      for (const auto& only : r.conditions) t.add_note("only if: " + only);
  }
  return out + t.str();
}

int run_check_driver(const Common& common, const CheckArgs& a) {
  if (!Version::parse(a.driver)) throw InputError({"--driver"}, "driver must be a version such as 535.104.05");
  catalog::Catalog cat = catalog::Catalog::load(common.recipes());
  const bool matrix = a.inputs.size() == 1 && a.inputs.front().ends_with(".toml");
  std::vector<Row> rows = matrix ? check_matrix(common, a, cat) : check_images(a, cat);
  emit(common, document(rows, a, matrix, colour(common)), a.format == "json");
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
  add_output_flag(sub, common);
  set_action(sub, [&common, args] { return run_check_driver(common, *args); });
}

}  // namespace kiln::cli
