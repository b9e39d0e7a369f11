// kiln generate MATRIX -o DIR: render Dockerfiles, kiln.json, plan.json and
// docker-bake.json for every valid combination.
#include <filesystem>
#include <iostream>

#include <fmt/format.h>

#include "cli/commands.h"
#include "render/render.h"
#include "util/json_out.h"

namespace kiln::cli {

namespace {

struct GenerateArgs {
  std::string matrix;
  std::string out = "generated";
  std::string format = "table";
};

int run_generate(const Common& common, const GenerateArgs& a) {
  Loaded l = load_plan(common, a.matrix);
  render::Renderer renderer(common.templates());
  auto dirs = render::generate(l.p, renderer, a.out);
  if (a.format == "json") {
    nlohmann::json combos = nlohmann::json::array();
    for (size_t i = 0; i < dirs.size(); ++i) combos.push_back({{"id", std::filesystem::path(dirs[i]).filename().string()}, {"dir", dirs[i]}});
    nlohmann::json j = {{"schema", "kiln.generate/v1"}, {"matrix", l.p.matrix_name}, {"output", a.out},
                        {"plan", a.out + "/plan.json"}, {"bake", a.out + "/docker-bake.json"},
                        {"summary", {{"rendered", dirs.size()}, {"excluded", l.p.count(plan::Status::excluded)}}}, {"combos", combos}};
    std::cout << json_text(j, 2) << '\n';
    return 0;
  }
  if (!common.quiet)
    std::cout << fmt::format("{}: {} combinations rendered into {} ({} excluded; see {}/plan.json)\n", l.p.matrix_name,
                             dirs.size(), a.out, l.p.count(plan::Status::excluded), a.out);
  return 0;
}

}  // namespace

void register_generate(CLI::App& app, Common& common) {
  auto args = std::make_shared<GenerateArgs>();
  CLI::App* sub = app.add_subcommand("generate", "Render Dockerfiles and a bake file for every valid combination");
  sub->add_option("matrix", args->matrix, "Matrix TOML (default: matrices/offline.toml)");
  sub->add_option("-o,--output", args->out, "Output directory")->capture_default_str();
  sub->add_option("--format", args->format, "table or json (what was written)")->check(CLI::IsMember({"table", "json"}));
  set_action(sub, [&common, args] { return run_generate(common, *args); });
}

}  // namespace kiln::cli
