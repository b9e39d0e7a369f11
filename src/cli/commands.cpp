#include "cli/commands.h"

#include <iostream>
#include <map>

#include <fmt/format.h>

#include "util/env_limits.h"

namespace kiln::cli {

namespace {
std::map<const CLI::App*, std::function<int()>>& actions() {
  static std::map<const CLI::App*, std::function<int()>> a;
  return a;
}
}  // namespace

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
