// Each verb registers its flags and the function that runs it (one file per
// verb: cmd_<verb>.cpp); what several verbs share lives here.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>

#include "catalog/catalog.h"
#include "matrix/matrix.h"
#include "plan/plan.h"
#include "state/writer_lock.h"

namespace kiln::cli {

struct Common {
  std::string data_dir;  // holds recipes/, templates/, matrices/
  bool quiet = false;    // --quiet: no progress and no table; documents asked for (-o, JSON) still written
  std::string output;    // -o FILE: the verb's document (JSON or table) goes there instead of stdout
  std::string config_file;  // --config FILE (else KILN_CONFIG, kiln.toml upward, ~/.config/kiln/config.toml)
  bool no_config = false;   // --no-config
  std::string recipes() const { return data_dir + "/recipes"; }
  std::string templates() const { return data_dir + "/templates"; }
  std::string default_matrix() const { return data_dir + "/matrices/offline.toml"; }
};

// catalog -> matrix -> plan, the start of every verb that works on a matrix.
struct Loaded {
  catalog::Catalog cat;
  matrix::Matrix m;
  plan::Plan p;
};
Loaded load_plan(const Common& common, const std::string& matrix_path, const plan::Query& query = {});

// --only patterns must each select a valid combination of the plan, else an
// InputError naming the pattern (exit 2): a typo must not pass as "nothing
// to do".
void require_matches(const plan::Plan& p, const std::vector<std::string>& only);

// The state directory a read-only verb (status, explain) looks at: the one
// named, else the nearest .kiln/ holding a ledger from the working
// directory up (as git finds .git/); none when there is no ledger -- a
// reader never creates one.
std::optional<std::string> find_state_dir(const std::string& named);

// The verb's document (JSON or its table): to -o FILE when given, else
// stdout. With --quiet a table is dropped; JSON is written (it was asked for).
void emit(const Common& common, const std::string& text, bool is_json);
// Colour for a table: only on stdout (not -o FILE), a terminal, NO_COLOR unset.
bool colour(const Common& common);
// Adds -o,--output FILE to a verb.
void add_output_flag(CLI::App* sub, Common& common);

void register_plan(CLI::App& app, Common& common);
void register_explain(CLI::App& app, Common& common);
void register_generate(CLI::App& app, Common& common);
void register_build(CLI::App& app, Common& common);
void register_status(CLI::App& app, Common& common);
void register_verify(CLI::App& app, Common& common);
void register_promote(CLI::App& app, Common& common);
void register_run(CLI::App& app, Common& common);
void register_audit(CLI::App& app, Common& common);
void register_check_driver(CLI::App& app, Common& common);
void register_sbom(CLI::App& app, Common& common);  // cmd_sbom.cpp
void register_verify_release(CLI::App& app, Common& common);  // cmd_verify_release.cpp
void register_catalog(CLI::App& app, Common& common);  // catalog check
void register_version(CLI::App& app, Common& common);
void register_completion(CLI::App& app);  // bash/zsh completion, from these definitions
void register_bench(CLI::App& app);  // hidden: bench-retag

// The state directory's writer lock for a verb that writes it (build,
// verify, run): waits up to KILN_LOCK_WAIT for another writer, saying whom
// it waits for on stderr; throws state::StateBusy (exit 2) naming the holder.
std::unique_ptr<state::WriterLock> lock_state_dir(const std::string& state_dir, std::string_view verb);
void register_config(CLI::App& app, Common& common);
void register_export(CLI::App& app, Common& common);  // cmd_export.cpp: k8s Jobs, CI matrices
void register_lock(CLI::App& app, Common& common);   // cmd_lock.cpp: MATRIX.lock
void register_drift(CLI::App& app, Common& common);  // cmd_drift.cpp: rebuilds compared

// A matrix with kiln's config file merged in (cmd_config.cpp, docs/config.md):
// every verb reads its matrix through this.
matrix::Matrix load_matrix(const Common& common, const std::string& path);
// After parsing: the config's state_dir becomes the value of every
// --state-dir the user did not give.
void use_config_state_dir(CLI::App& app, const Common& common);

// Runs the subcommand that was parsed; returns the exit code.
int run_selected(CLI::App& app);
// Used by register_*: attaches the action run_selected() calls.
void set_action(CLI::App* sub, std::function<int()> action);

}  // namespace kiln::cli
