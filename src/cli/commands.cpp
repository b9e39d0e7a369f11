#include "cli/commands.h"

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>

#include <fmt/format.h>

#include "lock/lock.h"
#include "util/diag.h"
#include "util/env_limits.h"
#include "util/select.h"
#include "util/table.h"
#include "util/text.h"

namespace kiln::cli {

namespace {
std::map<const CLI::App*, std::function<int()>>& actions() {
  static std::map<const CLI::App*, std::function<int()>> a;
  return a;
}
}  // namespace

Loaded load_plan(const Common& common, const std::string& matrix_path, const plan::Query& query) {
  catalog::Catalog cat = catalog::Catalog::load(common.recipes());
  matrix::Matrix m = load_matrix(common, matrix_path);
  plan::Plan p = plan::make_plan(m, cat, query);
  // MATRIX.lock next to the matrix pins every verb's plan (kiln lock).
  const std::string lock_file = lock::lock_path(matrix_path);
  if (auto l = lock::read(lock_file)) lock::apply(*l, lock_file, p);
  return {std::move(cat), std::move(m), std::move(p)};
}

void require_matches(const plan::Plan& p, const std::vector<std::string>& only) {
  std::vector<std::string> ids;
  for (const auto& c : p.combos)
    if (c.status == plan::Status::valid) ids.push_back(c.id);
  std::vector<Diagnostic> errors;
  for (const auto& pattern : unmatched_patterns(only, ids))
    errors.push_back({{"--only"}, fmt::format("'{}' matches no valid combination of matrix '{}' ({} valid; `kiln plan {} --valid` lists them)",
                                              pattern, p.matrix_name, ids.size(), p.matrix_path)});
  if (!errors.empty()) throw InputError(std::move(errors));
}

std::optional<std::string> find_state_dir(const std::string& named) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!named.empty()) return fs::exists(fs::path(named) / "state.db", ec) ? std::optional(named) : std::nullopt;
  for (fs::path dir = fs::current_path(ec); !ec && !dir.empty(); dir = dir.parent_path()) {
    if (fs::exists(dir / ".kiln" / "state.db", ec)) return (dir / ".kiln").string();
    if (dir == dir.root_path()) break;
  }
  return std::nullopt;
}

void emit(const Common& common, const std::string& text, bool is_json) {
  if (!common.output.empty() && common.output != "-") {
    write_file_atomic(common.output, text);
    return;
  }
  if (common.quiet && !is_json) return;
  std::cout << text << std::flush;
}

bool colour(const Common& common) { return (common.output.empty() || common.output == "-") && colour_stdout(); }

void add_output_flag(CLI::App* sub, Common& common) {
  sub->add_option("-o,--output", common.output, "Write the document (JSON or table) to FILE instead of stdout");
}

std::unique_ptr<state::WriterLock> lock_state_dir(const std::string& state_dir, std::string_view verb) {
  const auto wait = state::lock_wait_from_env();
  return std::make_unique<state::WriterLock>(state_dir, verb, wait, [&](const std::string& holder) {
    std::cerr << fmt::format("kiln: {} is in use by {}; waiting up to {} for it (KILN_LOCK_WAIT)\n", state_dir, holder,
                             describe_seconds(wait));
  });
}

void set_action(CLI::App* sub, std::function<int()> action) { actions()[sub] = std::move(action); }

int run_selected(CLI::App& app) {
  for (CLI::App* sub : app.get_subcommands()) {
    auto it = actions().find(sub);
    if (it != actions().end()) return it->second();
  }
  return 2;
}

}  // namespace kiln::cli
