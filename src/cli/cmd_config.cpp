// kiln config [MATRIX]: the effective runners, registry, credential helper
// and state directory for a matrix once kiln.toml is merged in, each with
// the file:line:col it came from (docs/config.md). Also the config plumbing
// the other verbs share: the matrix with the config merged, and the config's
// state_dir as the default of --state-dir.
#include <optional>

#include "cli/commands.h"
#include "config/config.h"
#include "util/json_out.h"

namespace kiln::cli {

namespace {

// Found and read once per process; every verb sees the same file.
const config::Config& site_config(const Common& common) {
  static std::optional<config::Config> loaded;
  if (!loaded) loaded = config::load(config::find(config::Lookup::from_environment(common.config_file, common.no_config)));
  return *loaded;
}

struct ConfigArgs {
  std::string matrix;
  std::string format = "table";
};

int run_config(const Common& common, const ConfigArgs& a) {
  matrix::Matrix m = matrix::parse_matrix_file(a.matrix.empty() ? common.default_matrix() : a.matrix);
  config::Effective e = config::merge(m, site_config(common));
  const bool json = a.format == "json";
  emit(common, json ? json_text(config::to_json(m, e), 2) + '\n' : config::to_table(m, e), json);
  return 0;
}

void set_state_dir(CLI::App& sub, const Common& common) {
  CLI::Option* opt = sub.get_option_no_throw("--state-dir");
  if (opt && opt->count() == 0) {
    const config::Config& c = site_config(common);
    if (c.state_dir) {
      opt->add_result(c.state_dir->text);
      opt->run_callback();
    }
  }
  for (CLI::App* s : sub.get_subcommands()) set_state_dir(*s, common);
}

}  // namespace

matrix::Matrix load_matrix(const Common& common, const std::string& path) {
  matrix::Matrix m = matrix::parse_matrix_file(path.empty() ? common.default_matrix() : path);
  config::merge(m, site_config(common));
  return m;
}

void use_config_state_dir(CLI::App& app, const Common& common) {
  for (CLI::App* sub : app.get_subcommands()) set_state_dir(*sub, common);
}

void register_config(CLI::App& app, Common& common) {
  auto a = std::make_shared<ConfigArgs>();
  CLI::App* sub = app.add_subcommand("config", "Show the runners, registry and state directory a matrix gets from kiln.toml, and from where");
  sub->add_option("matrix", a->matrix, "Matrix TOML (default: matrices/offline.toml)");
  sub->add_option("--format", a->format, "table or json")->check(CLI::IsMember({"table", "json"}));
  add_output_flag(sub, common);
  set_action(sub, [&common, a] { return run_config(common, *a); });
}

}  // namespace kiln::cli
