// The sections a matrix shares with kiln's config file (kiln.toml,
// docs/config.md): [runners.NAME] and [registry]. One reader for both, so the
// two files accept the same shapes and report the same errors at the same
// file:line:col; the matrix parser is built on it.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "matrix/matrix.h"
#include "util/validate.h"
#include "util/toml_reader.h"

namespace kiln::matrix {

class SectionReader {
 public:
  explicit SectionReader(std::string file) : file_(std::move(file)) {}

  // [runners.NAME] tables, appended to `out` in file order.
  void read_runners(TomlFields& top, std::vector<Runner>& out);
  // [registry]. `repository` names one matrix's images, so a shared file may
  // not set it (with_repository false reports it).
  void read_registry(TomlFields& top, Registry& out, bool with_repository);

  // Every GPU class named so far, where it was named (the plan checks each
  // against the catalog's GPUs).
  std::vector<Value>& gpu_classes_named() { return gpu_named_; }
  std::vector<Diagnostic>& diagnostics() { return diags_; }
  const std::string& file() const { return file_; }

 protected:
  // A gpu = "slurm" runner's keys (others may not use them).
  void read_slurm(TomlFields& f, const toml::table& t, Runner& r);
  TomlFields fields(const toml::table& t) { return TomlFields(t, file_, diags_); }
  void error(const Location& at, std::string msg) { diags_.push_back({at, std::move(msg)}); }
  // Present and a string (a wrong type is reported once, by TomlFields).
  static bool is_string(const TomlFields& f, std::string_view key);
  // Reports `text` unless it fits `grammar`; true when it fits.
  bool check(const std::string& text, const Location& at, grammar::Check grammar, std::string_view what);
  // gpu_classes = [...], canonical "sm_XY" only (classes are compared as written).
  std::vector<std::string> gpu_classes(TomlFields& f);
  // The NAME of a docker-credential-NAME helper, as Docker's credHelpers
  // write it; true when it is one.
  bool check_credential_helper(const std::string& name, const Location& at);
  // A path as written in the file: "~/" is $HOME, a relative one is beside the file.
  std::string beside_file(const std::string& path) const;
  // A runner's jobs, platform and labels (for the build scheduler).
  void read_build_keys(TomlFields& f, Runner& r);
  // A string or array of strings, each value with its own location.
  std::vector<Value> values(TomlFields& f, std::string_view key, bool required);

  std::string file_;
  std::vector<Diagnostic> diags_;
  std::vector<Value> gpu_named_;
};

}  // namespace kiln::matrix
