// kiln's command line: parses flags, calls the stages; how an outcome
// becomes an exit code (0, 1, 2, 70 for kiln's own bug) is cli/exit_status.h.
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/exit_status.h"
#include "util/text.h"

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

// --version and --quiet are accepted after any verb, not only before it.
void everywhere(CLI::App& app, kiln::cli::Common& common, const std::string& version) {
  for (CLI::App* sub : app.get_subcommands({})) {
    sub->set_version_flag("--version", version);
    if (!sub->get_option_no_throw("--quiet")) sub->add_flag("-q,--quiet", common.quiet, "No progress and no table (errors, JSON and -o FILE still written)");
    everywhere(*sub, common, version);
  }
}

std::string default_data_dir() {
  if (const char* env = std::getenv("KILN_DATA_DIR"); env && *env) return env;
  return KILN_DEFAULT_DATA_DIR;
}


// The verb the user typed when it is not one: "plna" -> did you mean "plan".
// CLI11 only says "The following arguments were not expected".
std::optional<std::string> unknown_verb_message(CLI::App& app, int argc, char** argv) {
  std::vector<std::string> verbs;
  std::vector<std::string> all;
  for (CLI::App* sub : app.get_subcommands({})) {
    all.push_back(sub->get_name());
    if (!sub->get_group().empty()) verbs.push_back(sub->get_name());
  }
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--data-dir" || arg == "--config") {  // the top-level options that take a value
      ++i;
      continue;
    }
    if (arg.starts_with("-")) continue;
    if (std::find(all.begin(), all.end(), arg) != all.end()) return std::nullopt;
    std::string best;
    size_t best_d = 3;  // further than 2 edits is not a typo
    for (const auto& v : verbs)
      if (size_t d = v.starts_with(arg) ? 1 : kiln::edit_distance(arg, v); d < best_d) best_d = d, best = v;
    std::string msg = fmt::format("kiln: '{}' is not a kiln verb.", arg);
    if (!best.empty()) msg += fmt::format(" Did you mean '{}'?", best);
    return msg + fmt::format("\nverbs: {}\n", fmt::join(verbs, ", "));
  }
  return std::nullopt;
}

// Under --format json an error is a JSON document on stdout too (the human
// line stays on stderr), so a pipeline reading stdout always gets JSON.
bool wants_json(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--format=json" || (arg == "--format" && i + 1 < argc && std::string(argv[i + 1]) == "json")) return true;
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kiln: build, verify and publish GPU deep-learning base images from a compatibility matrix"};
  app.require_subcommand(1);
  kiln::cli::Common common;
  common.data_dir = default_data_dir();
  const std::string version = std::string("kiln ") + KILN_VERSION;
  app.add_option("--data-dir", common.data_dir, "Where recipes/, templates/ and matrices/ live (env KILN_DATA_DIR)");
  app.add_flag("-q,--quiet", common.quiet, "No progress and no table (errors, JSON and -o FILE still written)");
  app.set_version_flag("--version", version);
  app.set_help_all_flag("--help-all", "Print the help of every verb and exit (the man page is made from it)");
  app.add_option("--config", common.config_file, "kiln's config file: runners, registry, credential helpers, state_dir (env KILN_CONFIG; default: kiln.toml upward, else ~/.config/kiln/config.toml)");
  app.add_flag("--no-config", common.no_config, "Read no config file");
  app.fallthrough();  // `kiln plan M --config F` as well as `kiln --config F plan M`

  kiln::cli::register_plan(app, common);
  kiln::cli::register_explain(app, common);
  kiln::cli::register_generate(app, common);
  kiln::cli::register_build(app, common);
  kiln::cli::register_status(app, common);
  kiln::cli::register_verify(app, common);
  kiln::cli::register_promote(app, common);
  kiln::cli::register_run(app, common);
  kiln::cli::register_audit(app, common);
  kiln::cli::register_sbom(app, common);
  kiln::cli::register_verify_release(app, common);
  kiln::cli::register_check_driver(app, common);
  kiln::cli::register_catalog(app, common);  // catalog check
  kiln::cli::register_version(app, common);
  kiln::cli::register_completion(app);
  kiln::cli::register_bench(app);
  kiln::cli::register_config(app, common);
  kiln::cli::register_export(app, common);
  kiln::cli::register_lock(app, common);
  kiln::cli::register_drift(app, common);
  one_value_per_flag(app);
  everywhere(app, common, version);

  const bool json = wants_json(argc, argv);
  if (auto msg = unknown_verb_message(app, argc, argv)) return kiln::cli::fail(json, 2, "usage", *msg);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    if (!json) return app.exit(e) == 0 ? 0 : 2;
    return kiln::cli::fail(json, 2, "usage", fmt::format("kiln: error: {}", e.what()));
  }
  return kiln::cli::guarded(json, [&] {
    kiln::cli::use_config_state_dir(app, common);
    return kiln::cli::run_selected(app);
  });
}
