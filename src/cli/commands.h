// Each verb registers its flags and the function that runs it.
#pragma once
#include <functional>
#include <string>

#include <CLI/CLI.hpp>

#include "state/writer_lock.h"

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
void register_sbom(CLI::App& app, Common& common);  // cmd_sbom.cpp
void register_verify_release(CLI::App& app, Common& common);  // cmd_verify_release.cpp
void register_catalog(CLI::App& app, Common& common);  // catalog check

// The state directory's writer lock for a verb that writes it (build,
// verify, run): waits up to KILN_LOCK_WAIT for another writer, saying whom
// it waits for on stderr; throws state::StateBusy (exit 2) naming the holder.
std::unique_ptr<state::WriterLock> lock_state_dir(const std::string& state_dir, std::string_view verb);
void register_bench(CLI::App& app);  // hidden: bench-retag

// Runs the subcommand that was parsed; returns the exit code.
int run_selected(CLI::App& app);
// Used by register_*: attaches the action run_selected() calls.
void set_action(CLI::App* sub, std::function<int()> action);

}  // namespace kiln::cli
