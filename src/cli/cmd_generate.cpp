// kiln generate MATRIX -o DIR: render Dockerfiles, kiln.json, plan.json and
// docker-bake.json for every valid combination.
#include <iostream>

#include <fmt/format.h>

#include "catalog/catalog.h"
#include "cli/commands.h"
#include "matrix/matrix.h"
#include "plan/plan.h"
#include "render/render.h"

namespace kiln::cli {

namespace {

struct GenerateArgs {
  std::string matrix;
  std::string out = "generated";
};

int run_generate(const Common& common, const GenerateArgs& a) {
  catalog::Catalog cat = catalog::Catalog::load(common.recipes());
  matrix::Matrix m = load_matrix(common, a.matrix);
  plan::Plan p = plan::make_plan(m, cat);
  render::Renderer renderer(common.templates());
  auto dirs = render::generate(p, renderer, a.out);
  std::cout << fmt::format("{}: {} combinations rendered into {} ({} excluded; see {}/plan.json)\n", p.matrix_name,
                           dirs.size(), a.out, p.count(plan::Status::excluded), a.out);
  return 0;
}

}  // namespace

void register_generate(CLI::App& app, Common& common) {
  auto args = std::make_shared<GenerateArgs>();
  CLI::App* sub = app.add_subcommand("generate", "Render Dockerfiles and a bake file for every valid combination");
  sub->add_option("matrix", args->matrix, "Matrix TOML (default: matrices/offline.toml)");
  sub->add_option("-o,--output", args->out, "Output directory")->capture_default_str();
  set_action(sub, [&common, args] { return run_generate(common, *args); });
}

}  // namespace kiln::cli
