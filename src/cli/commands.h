// Each verb registers its flags and the function that runs it.
#pragma once
#include <functional>
#include <string>

#include <CLI/CLI.hpp>

namespace kiln::cli {

struct Common {
  std::string data_dir;  // holds recipes/, templates/, matrices/
  std::string recipes() const { return data_dir + "/recipes"; }
  std::string templates() const { return data_dir + "/templates"; }
  std::string default_matrix() const { return data_dir + "/matrices/offline.toml"; }
};

void register_plan(CLI::App& app, Common& common);
void register_generate(CLI::App& app, Common& common);
void register_build(CLI::App& app, Common& common);  // build and status
void register_verify(CLI::App& app, Common& common);
void register_run(CLI::App& app, Common& common);  // promote and run
void register_audit(CLI::App& app, Common& common);
void register_check_driver(CLI::App& app, Common& common);
void register_catalog(CLI::App& app, Common& common);  // catalog check

// Runs the subcommand that was parsed; returns the exit code.
int run_selected(CLI::App& app);
// Used by register_*: attaches the action run_selected() calls.
void set_action(CLI::App* sub, std::function<int()> action);

}  // namespace kiln::cli
