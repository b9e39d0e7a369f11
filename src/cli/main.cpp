// kiln's command line: parses flags, calls the stages, maps outcomes to exit
// codes (0 ok, 1 some combination failed, 2 bad input or environment).
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli/commands.h"
#include "util/diag.h"

namespace {

// A repeatable flag takes one value per use (`--gpu T4 --gpu H100`) or a
// comma list (`--gpu T4,H100`), never the words after it: CLI11 lets a
// vector option swallow every following argument, so `plan --gpu T4
// MATRIX` read MATRIX as a GPU name.
void one_value_per_flag(CLI::App& app) {
  for (CLI::Option* opt : app.get_options())
    if (opt->nonpositional() && opt->get_expected_max() > 1 && opt->get_type_size_max() == 1) opt->allow_extra_args(false)->delimiter(',');
  for (CLI::App* sub : app.get_subcommands({})) one_value_per_flag(*sub);
}

std::string default_data_dir() {
  if (const char* env = std::getenv("KILN_DATA_DIR"); env && *env) return env;
  return KILN_DEFAULT_DATA_DIR;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kiln: build, verify and publish GPU deep-learning base images from a compatibility matrix"};
  app.require_subcommand(1);
  kiln::cli::Common common;
  common.data_dir = default_data_dir();
  app.add_option("--data-dir", common.data_dir, "Where recipes/, templates/ and matrices/ live (env KILN_DATA_DIR)");
  app.set_version_flag("--version", std::string("kiln ") + KILN_VERSION);

  kiln::cli::register_plan(app, common);
  kiln::cli::register_generate(app, common);
  kiln::cli::register_build(app, common);
  kiln::cli::register_verify(app, common);
  kiln::cli::register_run(app, common);  // promote and run
  kiln::cli::register_audit(app, common);
  kiln::cli::register_sbom(app, common);
  kiln::cli::register_verify_release(app, common);
  kiln::cli::register_check_driver(app, common);
  kiln::cli::register_catalog(app, common);  // catalog check
  kiln::cli::register_bench(app);
  one_value_per_flag(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  try {
    return kiln::cli::run_selected(app);
  } catch (const kiln::InputError& e) {
    for (const auto& d : e.diagnostics()) std::cerr << d.str() << '\n';
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "kiln: error: " << e.what() << '\n';
    return 2;
  }
}
