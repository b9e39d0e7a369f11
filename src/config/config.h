// kiln's config file (kiln.toml): the runners, registry, credential helpers
// and state directory of a site or a checkout, so that matrices need not
// repeat them. Found from the working directory upward, else in
// $XDG_CONFIG_HOME/kiln/config.toml, or named (--config, KILN_CONFIG); read
// with the matrix's own section reader (same shapes, same errors); merged
// into a matrix with the matrix winning per named entry. docs/config.md.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "matrix/matrix.h"

namespace kiln::config {

// Where to look. from_environment() reads the process's; tests fill it.
struct Lookup {
  std::string explicit_path;  // --config FILE
  bool disabled = false;      // --no-config
  std::string kiln_config;    // $KILN_CONFIG
  std::string xdg_config_home;
  std::string home;
  std::filesystem::path cwd;  // where the upward search starts
  static Lookup from_environment(std::string explicit_path, bool disabled);
};

// The file in use, and how it was found ("--config", "KILN_CONFIG", "found
// upward from DIR", "$XDG_CONFIG_HOME", "~/.config"); path empty: none.
struct Source {
  std::string path;
  std::string how;
};

// One file at most, the first of: --config, $KILN_CONFIG, kiln.toml in the
// working directory or a parent (the search ends after the first directory
// holding .git, or at /), $XDG_CONFIG_HOME/kiln/config.toml (default
// ~/.config/kiln/config.toml). A named file that does not exist is an
// InputError; files are not layered.
Source find(const Lookup& where);

// [credential_helpers]: "HOST" = "NAME", as Docker's credHelpers.
struct HostHelper {
  std::string host;
  matrix::Value helper;
};

struct Config {
  Source source;
  std::optional<matrix::Value> state_dir;  // absolute (relative to the file's directory)
  matrix::Registry registry;               // url, insecure, credential_helper; never a repository
  std::vector<matrix::Runner> runners;
  std::vector<HostHelper> helpers;
  std::vector<matrix::Value> gpu_classes_named;
};

// Throws InputError with every problem, each at file:line:col. An empty
// source gives an empty Config.
Config load(const Source& source);
Config parse_text(std::string_view text, const std::string& name);

// A setting of the effective result and where it came from (from.file empty:
// kiln's default).
struct Setting {
  std::string value;
  Location from;
};

struct RunnerOrigin {
  std::string name;
  Location from;
  std::optional<Location> replaces;  // the config's runner of that name, replaced by the matrix's
};

struct Effective {
  std::string matrix_path;
  Source source;
  bool used = false;            // false: no file, or the matrix's use_config = false
  Location opted_out;           // where use_config = false was written
  Setting state_dir;            // the one the verbs use when --state-dir is not given
  Setting url, repository, insecure, credential_helper;
  std::vector<RunnerOrigin> runners;  // the matrix's runners' order after the merge
};

// Merges `c` into `m` (runners: the matrix's entry wins per name, the
// config's other entries are added; [registry]: the keys the matrix writes
// win, its url first — a config's insecure and credential_helper go with the
// config's url, taken or written alike). Throws InputError when the matrix's [registry] is left
// without a url. Called with an empty Config too.
Effective merge(matrix::Matrix& m, const Config& c);

// `kiln config`: every effective setting with its origin (file:line:col).
std::string to_table(const matrix::Matrix& m, const Effective& e);
nlohmann::json to_json(const matrix::Matrix& m, const Effective& e);

}  // namespace kiln::config
