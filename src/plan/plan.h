// The plan: every combination of a matrix, resolved against the catalog to
// exact versions, arch list, per-target support, driver floor, tags and
// base image -- or excluded, with the rule that excluded it.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "catalog/catalog.h"
#include "matrix/matrix.h"
#include "util/cc.h"

namespace kiln::plan {

enum class Status { valid, excluded };
const char* to_string(Status s);

struct Versions {
  std::string pytorch;  // "2.6.0"; empty for images without PyTorch
  std::string cuda;     // "12.4.1": exact
  std::string cudnn;    // "9.1.0.70"; empty when absent
  std::string nccl;     // "2.21.5"; empty when absent or unknown
  std::string python;   // "3.11"; empty without PyTorch
  std::string os;       // "ubuntu22.04"
  std::string flavor;   // "runtime" | "devel"
};

// How one GPU (a matrix target or a --gpu query) fares with a combination.
struct TargetSupport {
  std::string name;  // as given: "T4", "sm_90"
  ComputeCapability cc;
  Support support = Support::unsupported;
  std::string via;         // "sm_75" or "compute_90"
  std::string min_driver;  // for this GPU: PTX JIT needs the toolkit's driver; its architecture's first driver
  std::string driver_why;  // the rule behind min_driver, in words
  std::string reason;      // why it is unsupported
};

// How the CUDA stack enters the image (from the catalog's install recipes).
struct Install {
  std::string method;                  // "nvidia-base" | "apt"
  std::vector<std::string> packages;   // apt packages for this flavor (runtime + devel)
  std::vector<std::string> devel_packages;  // the devel part alone
  bool devel_from_runtime = false;     // devel image builds on the runtime image
  std::vector<std::string> env;        // "K=V" the recipe sets for this flavor
  std::vector<std::string> components;
  bool remove_driver_libs = false;
  // PyTorch through pip: the recipe's [pip] with the matrix's [pip] over it.
  std::string torch_index;                   // pip index URL; "" with no_index
  std::vector<std::string> torch_extra_indexes;
  std::vector<std::string> torch_find_links;    // URLs as given
  std::vector<std::string> torch_wheel_dirs;    // local wheelhouses (absolute), mounted into the RUN step
  std::vector<std::string> torch_wheel_dirs_as_written;  // for the Dockerfile's comment
  bool torch_no_index = false;
  std::vector<std::string> torch_packages;   // "torch==2.11.0+cu130"
  std::vector<std::string> torch_constraints;  // "nvidia-cudnn-cu13==9.19.0.56"
  std::vector<std::string> python_packages;  // apt packages for the venv
  std::string venv;
  // A build secret (a netrc file) for a private index: its id and source.
  std::string pip_secret, pip_secret_env, pip_secret_file;
};

// A combination's base past its end of life, or near it.
struct EolNote {
  std::string kind;      // "cuda" (nvidia/cuda image tags) | "os"
  std::string name;      // "11.8" | "debian12"
  std::string date;      // the date passed or near ("YYYY-MM-DD")
  std::string status;    // "past" | "soon"
  long days = 0;         // days since (past) or until (soon)
  bool inferred = false;  // the catalog marks the date inferred
  std::string text;      // one line for people, with what follows (deletion, extended support)
};
inline constexpr int kEolWarnDays = 90;

struct Combo {
  std::string id;
  std::map<std::string, std::string> axes;  // values as written in the matrix ("latest" resolved)
  std::string platform = "x86_64";          // the image's: "x86_64" | "aarch64"
  Status status = Status::valid;
  std::string reason;  // for excluded: the rule, in words
  std::string rule;    // machine-readable rule id, e.g. "pytorch-cuda-build"
  Versions versions;
  ArchList arch;
  std::vector<TargetSupport> targets;
  std::string min_driver;
  std::string require_cuda;
  std::vector<std::string> tags;
  std::string base;
  Install install;
  matrix::Policy policy;              // the checks this combination needs (overrides applied)
  std::vector<std::string> inferred;  // unconfirmed facts this combination uses
  std::vector<std::string> sources;   // catalog sources behind the resolution

  // Filled only when the plan was asked about a driver and/or GPUs.
  std::optional<bool> usable;
  std::vector<std::string> why_not;
  // Usable, but only where these hold (NVIDIA_REQUIRE_CUDA admits the
  // driver's branch only on some brands).
  std::vector<std::string> conditions;
  bool forward_compat = false;  // usable only through the cuda-compat package (data-center GPUs)
  std::vector<TargetSupport> query_gpus;

  // Set from MATRIX.lock when there is one (lock::apply, src/lock): the apt
  // snapshot URL the apt steps use, the base's locked engine image id (the
  // build refuses another), and this combination's lock entry as text (the
  // input hash covers it). Empty without a lock.
  std::string apt_snapshot;
  std::string locked_image_id;
  std::string lock_entry;

  // End of life (recipes/catalog/eol.toml) of this combination's nvidia/cuda
  // base tags and its OS, past or within kEolWarnDays of "today".
  std::vector<EolNote> end_of_life;
};

// The release-pipeline question: does it run on this driver and GPU?
struct Query {
  std::string driver;             // "535.104.05"; empty = not asked
  std::vector<std::string> gpus;  // "P100", "sm_90"
};

struct Plan {
  std::string matrix_name;
  std::string matrix_path;
  std::string catalog_version;
  std::string catalog_collected;  // "2026-11-30"; empty when the catalog does not say
  std::vector<std::string> warnings;  // e.g. a stale catalog asked for "latest"
  Query query;
  matrix::Policy policy;
  matrix::Registry registry;
  std::string user;  // the non-root user images run as
  int uid = 0;
  std::vector<Combo> combos;
  matrix::Cache cache;    // [cache]: package caches for the build
  matrix::Budget budget;  // [budget]: size limits per flavor, for the static check
  // [engine_labels]: flavor or "all" -> labels an engine must carry to build it.
  std::map<std::string, std::vector<std::string>> engine_labels;
  // MATRIX.lock, when the plan was pinned by it (lock::apply): its path and sha256.
  std::string lock_path, lock_sha256;

  size_t count(Status s) const;
  // The valid combination on the same axes as `c` but of `flavor`: a devel
  // image's runtime sibling (which it may build on), a runtime image's devel
  // one (whose nvcc compiles its smoke suite). nullptr when the plan has none.
  const Combo* sibling(const Combo& c, std::string_view flavor) const;
};

// Throws InputError (file:line:col) for values the catalog does not know,
// bad tag templates, tag collisions and malformed queries. `today`
// ("YYYY-MM-DD", empty: the system date or KILN_TODAY) dates the staleness
// warning for matrices asking for "latest".
Plan make_plan(const matrix::Matrix& m, const catalog::Catalog& c, const Query& q = {}, std::string today = {});

// A catalog older than this many days is stale for "latest".
inline constexpr int kStaleAfterDays = 60;

// Stable JSON (documented in docs/plan-json.md), keys sorted.
nlohmann::json to_json(const Plan& p);
nlohmann::json to_json(const Combo& c);
// A human table: one line per valid combination with its reasons below, the
// exclusions grouped by rule; `o` is what a person asked to see (only valid
// combinations, only these ids/globs).
struct TableOptions {
  bool valid_only = false;
  std::vector<std::string> only;
};
std::string to_table(const Plan& p, const TableOptions& o = {});

}  // namespace kiln::plan
