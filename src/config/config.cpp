#include "config/config.h"

#include <algorithm>
#include <cstdlib>

#include <fmt/format.h>

#include "matrix/sections.h"
#include "util/toml_reader.h"
#include "util/validate.h"

namespace kiln::config {

namespace fs = std::filesystem;

Lookup Lookup::from_environment(std::string explicit_path, bool disabled) {
  auto env = [](const char* name) {
    const char* v = std::getenv(name);
    return std::string(v ? v : "");
  };
  std::error_code ec;
  return {std::move(explicit_path), disabled, env("KILN_CONFIG"), env("XDG_CONFIG_HOME"), env("HOME"),
          fs::current_path(ec)};
}

namespace {

bool is_there(const fs::path& p) {
  std::error_code ec;
  return fs::exists(p, ec);
}

std::string absolute_text(const fs::path& p) {
  std::error_code ec;
  fs::path a = fs::absolute(p, ec);
  return (ec ? p : a).lexically_normal().string();
}

Source named(const std::string& path, const std::string& how) {
  if (!is_there(path)) throw InputError(Location{path}, fmt::format("no such config file (named by {})", how));
  return {absolute_text(path), how};
}

// kiln.toml in `start` or a parent. A checkout is a boundary (as for git's
// own files): the directory holding .git is the last one looked at, so a
// repository never picks up a kiln.toml from the directory it sits in.
std::optional<fs::path> upward(const fs::path& start) {
  if (start.empty()) return std::nullopt;
  for (fs::path dir = start.lexically_normal();; dir = dir.parent_path()) {
    if (is_there(dir / "kiln.toml")) return dir / "kiln.toml";
    if (is_there(dir / ".git") || dir == dir.parent_path() || dir.empty()) return std::nullopt;
  }
}

class Reader : matrix::SectionReader {
 public:
  using SectionReader::SectionReader;

  Config read(const toml::table& doc) {
    Config c;
    grammar::check_single_line(doc, file_, diags_, {});
    TomlFields top = fields(doc);
    top.only({"state_dir", "registry", "runners", "credential_helpers"});
    if (auto dir = top.str("state_dir")) {
      // Relative to the file, so a checkout's kiln.toml works from any subdirectory.
      fs::path p(*dir);
      if (p.is_relative()) p = fs::path(file_).parent_path() / p;
      if (dir->empty()) error(top.where("state_dir"), "state_dir must not be empty");
      else c.state_dir = matrix::Value{absolute_text(p), top.where("state_dir")};
    }
    read_registry(top, c.registry, false);
    read_runners(top, c.runners);
    read_helpers(top, c);
    c.gpu_classes_named = std::move(gpu_named_);
    if (!diags_.empty()) throw InputError(std::move(diags_));
    return c;
  }

 private:
  void read_helpers(TomlFields& top, Config& c) {
    const toml::table* t = top.table("credential_helpers");
    if (!t) return;
    for (const auto& [key, node] : *t) {
      std::string host(key.str());
      Location at = location_of(node, file_);
      if (!node.is_string()) {
        error(at, fmt::format("[credential_helpers] \"{}\" must be a helper's name (a string)", host));
        continue;
      }
      std::string helper = *node.value<std::string>();
      check(host, at, grammar::registry, "[credential_helpers] host");
      check_credential_helper(helper, at);
      c.helpers.push_back({host, {helper, at}});
    }
  }
};

}  // namespace

Source find(const Lookup& w) {
  if (w.disabled) return {"", "--no-config"};
  if (!w.explicit_path.empty()) return named(w.explicit_path, "--config");
  if (!w.kiln_config.empty()) return named(w.kiln_config, "KILN_CONFIG");
  if (auto found = upward(w.cwd)) return {absolute_text(*found), "found upward from " + w.cwd.string()};
  // XDG Base Directory: a relative $XDG_CONFIG_HOME is ignored.
  if (!w.xdg_config_home.empty() && fs::path(w.xdg_config_home).is_absolute()) {
    if (fs::path p = fs::path(w.xdg_config_home) / "kiln" / "config.toml"; is_there(p)) return {absolute_text(p), "$XDG_CONFIG_HOME"};
  } else if (!w.home.empty()) {
    if (fs::path p = fs::path(w.home) / ".config" / "kiln" / "config.toml"; is_there(p)) return {absolute_text(p), "~/.config"};
  }
  return {};
}

Config load(const Source& source) {
  if (source.path.empty()) return Config{source};
  Config c = Reader(source.path).read(parse_toml_file(source.path));
  c.source = source;
  return c;
}

Config parse_text(std::string_view text, const std::string& name) {
  Config c = Reader(name).read(parse_toml_string(text, name));
  c.source = {name, "text"};
  return c;
}

namespace {

Location key_at(const matrix::Registry& r, const std::string& key) {
  auto it = r.keys.find(key);
  return it == r.keys.end() ? Location{} : it->second;
}

std::string host_of(const std::string& url) { return url.substr(0, url.find('/')); }

void merge_runners(matrix::Matrix& m, const Config& c, Effective& e) {
  for (const auto& r : m.runners) e.runners.push_back({r.name, r.where, std::nullopt});
  if (!e.used) return;
  for (const auto& r : c.runners) {
    auto mine = std::find_if(e.runners.begin(), e.runners.end(), [&](const RunnerOrigin& o) { return o.name == r.name; });
    if (mine != e.runners.end()) {
      mine->replaces = r.where;
      continue;
    }
    m.runners.push_back(r);
    e.runners.push_back({r.name, r.where, std::nullopt});
  }
  // The plan checks every class named against the catalog's GPUs, at the config's positions.
  m.gpu_classes_named.insert(m.gpu_classes_named.end(), c.gpu_classes_named.begin(), c.gpu_classes_named.end());
}

void merge_registry(matrix::Matrix& m, const Config& c, Effective& e) {
  matrix::Registry& r = m.registry;
  const matrix::Registry& cr = c.registry;
  Location url = key_at(r, "url"), insecure = key_at(r, "insecure"), helper = key_at(r, "credential_helper");
  // The config's insecure and credential_helper describe the config's url:
  // they come along only when that url is the one used (taken from the
  // config, or the same one written in the matrix).
  if (e.used && !cr.url.empty() && (r.url.empty() || r.url == cr.url)) {
    if (r.url.empty()) r.url = cr.url, url = key_at(cr, "url");
    if (!r.keys.count("insecure")) r.insecure = cr.insecure, insecure = key_at(cr, "insecure");
    if (!r.keys.count("credential_helper")) r.credential_helper = cr.credential_helper, helper = key_at(cr, "credential_helper");
  }
  if (e.used && r.credential_helper.empty() && !r.url.empty())
    for (const auto& h : c.helpers)
      if (h.host == host_of(r.url) || h.host == r.url) r.credential_helper = h.helper.text, helper = h.helper.where;
  if (!r.where.file.empty() && r.url.empty())
    throw InputError(r.where, e.used ? fmt::format("[registry] names no url, and the config file {} gives none", c.source.path)
                                     : std::string("[registry] names no url (give one here, or in a config file: docs/config.md)"));
  e.url = {r.url, url};
  e.repository = r.repository.empty() ? Setting{"kiln/" + m.name, {}} : Setting{r.repository, key_at(r, "repository")};
  e.insecure = {r.insecure ? "true" : "false", insecure};
  e.credential_helper = {r.credential_helper, helper};
}

}  // namespace

Effective merge(matrix::Matrix& m, const Config& c) {
  Effective e;
  e.matrix_path = m.path;
  e.source = c.source;
  e.used = !c.source.path.empty() && m.use_config;
  if (!m.use_config) e.opted_out = m.use_config_where;
  // The state directory belongs to the working tree, not to a matrix: a
  // matrix's use_config = false leaves it alone.
  e.state_dir = c.state_dir ? Setting{c.state_dir->text, c.state_dir->where} : Setting{".kiln", {}};
  merge_runners(m, c, e);
  merge_registry(m, c, e);
  return e;
}

}  // namespace kiln::config
