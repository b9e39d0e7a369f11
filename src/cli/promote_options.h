// What `kiln promote` and `kiln run` share: their flags and promote's options.
#pragma once
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include <cstdlib>

#include "cli/commands.h"
#include "cli/runners.h"
#include "promote/promote.h"

namespace kiln::cli {

struct PromoteArgs {
  std::string matrix;
  std::vector<std::string> runners;
  std::vector<std::string> only;
  int jobs = 2;
  bool dry_run = false;
  bool force = false;
  bool smoke_on_cpu = false;
  std::string state_dir = ".kiln";
  std::string format = "table";
};

inline promote::Options promote_options(const Common& common, const matrix::Matrix& m, const PromoteArgs& a) {
  promote::Options o;
  o.templates_dir = common.templates();  // the provenance names the rendered Dockerfile
  // The signing key: a path in the environment, never an argument (argv is public).
  if (const char* key = std::getenv("KILN_SIGNING_KEY"); key && *key) o.signing_key = key;
  o.runners = runners_for(m, a.runners);
  o.state_dir = a.state_dir;
  o.dry_run = a.dry_run;
  o.force = a.force;
  o.only = a.only;
  o.kiln_version = KILN_VERSION;
  return o;
}

inline void add_promote_flags(CLI::App* sub, PromoteArgs& a) {
  sub->add_option("matrix", a.matrix, "Matrix TOML (default: matrices/offline.toml)");
  sub->add_option("--runner", a.runners, "Matrix runner whose verdicts count (repeatable; default: all)");
  sub->add_option("--only", a.only, "Combination id or glob (repeatable)");
  sub->add_option("--state-dir", a.state_dir, "Ledger, logs, reports")->capture_default_str();
  sub->add_option("--format", a.format, "table or json")->check(CLI::IsMember({"table", "json"}));
}

}  // namespace kiln::cli
