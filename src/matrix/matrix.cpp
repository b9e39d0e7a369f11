#include "matrix/matrix.h"
#include "matrix/sections.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include <fmt/format.h>

#include "util/cc.h"
#include "util/toml_reader.h"
#include "util/validate.h"

namespace kiln::matrix {

const char* to_string(Backend b) { return b == Backend::buildx ? "buildx" : "engine"; }

const char* to_string(GpuMode g) {
  switch (g) {
    case GpuMode::nvidia: return "nvidia";
    case GpuMode::cdi: return "cdi";
    case GpuMode::devices: return "devices";
    case GpuMode::slurm: return "slurm";
    case GpuMode::none: break;
  }
  return "none";
}

std::optional<Backend> parse_backend(std::string_view word) {
  for (Backend b : {Backend::engine, Backend::buildx})
    if (word == to_string(b)) return b;
  return std::nullopt;
}

std::optional<GpuMode> parse_gpu_mode(std::string_view word) {
  for (GpuMode g : {GpuMode::none, GpuMode::nvidia, GpuMode::cdi, GpuMode::devices, GpuMode::slurm})
    if (word == to_string(g)) return g;
  return std::nullopt;
}

const Axis* Matrix::axis(std::string_view name) const {
  for (const auto& a : axes)
    if (a.name == name) return &a;
  return nullptr;
}

namespace {

const std::set<std::string> kFlavors{"runtime", "devel"};
const std::set<std::string> kChecks{"static", "gpu"};
const std::set<std::string> kTargetPolicies{"all", "any", "report"};

}  // namespace

std::int64_t parse_byte_size(std::string_view text) {
  std::size_t i = 0;
  double n = 0, scale = 1;
  bool digits = false, point = false;
  for (; i < text.size(); ++i) {
    char ch = text[i];
    if (ch >= '0' && ch <= '9') {
      digits = true;
      if (point) scale /= 10;
      n = n * 10 + (ch - '0');
    } else if (ch == '.' && !point) {
      point = true;
    } else {
      break;
    }
  }
  if (!digits || n > 1e15) return 0;
  std::string unit(text.substr(i));
  if (!unit.empty() && unit.front() == ' ') unit.erase(0, 1);
  static const std::map<std::string, double> kUnits{
      {"", 1},         {"B", 1},          {"kB", 1e3},          {"KB", 1e3},          {"MB", 1e6},
      {"GB", 1e9},     {"TB", 1e12},      {"KiB", 1024.0},      {"MiB", 1048576.0},   {"GiB", 1073741824.0},
      {"TiB", 1099511627776.0}};
  auto u = kUnits.find(unit);
  if (u == kUnits.end()) return 0;
  return static_cast<std::int64_t>(n * scale * u->second + 0.5);
}

std::optional<std::string> platform_word(std::string_view text) {
  if (text == "x86_64" || text == "amd64" || text == "linux/amd64") return "x86_64";
  if (text == "aarch64" || text == "arm64" || text == "linux/arm64" || text == "linux/arm64/v8") return "aarch64";
  return std::nullopt;
}

std::string oci_platform(std::string_view platform) {
  return platform == "aarch64" ? "linux/arm64" : "linux/amd64";
}

namespace {

bool is_axis(std::string_view key) {
  return std::any_of(std::begin(kAxes), std::end(kAxes), [&](const char* a) { return key == a; });
}

class Parser : SectionReader {
 public:
  Parser(std::string file) : SectionReader(std::move(file)) {}

  Matrix parse(const toml::table& doc) {
    Matrix m;
    m.path = file_;
    // A newline in any string could become a Dockerfile instruction; only
    // the description is free text.
    grammar::check_single_line(doc, file_, diags_, {"description"});
    TomlFields top = fields(doc);
    top.only({"name", "description", "targets", "arch_list", "axes", "include", "exclude", "policy",
              "registry", "tags", "image", "base", "runners", "pip", "use_config", "cache", "budget",
              "engine_labels"});
    m.name = top.str("name", true).value_or("");
    // The name becomes directories (contexts/NAME, logs/NAME) and the image
    // repository (kiln.local/NAME, kiln/NAME): "../../x" must never get there.
    if (is_string(top, "name")) check(m.name, top.where("name"), grammar::name, "name");
    m.description = top.str("description").value_or("");
    m.targets = values(top, "targets", false);
    if (auto a = values(top, "arch_list", false); !a.empty()) {
      m.arch_list = a[0];
      if (!ArchList::parse(a[0].text))
        error(a[0].where, fmt::format("arch_list \"{}\" is not an arch list such as \"7.5;8.0;9.0+PTX\"", a[0].text));
    }
    read_axes(top, m);
    m.include = read_rules(top, "include", true);
    m.exclude = read_rules(top, "exclude", false);
    read_policy(top, m);
    read_registry(top, m.registry, true);
    read_tags(top, m);
    read_image(top, m);
    read_bases(top, m);
    read_runners(top, m.runners);
    if (auto use = top.boolean("use_config")) {
      m.use_config = *use;
      m.use_config_where = top.where("use_config");
    }
    read_pip(top, m);
    read_cache(top, m);
    read_budget(top, m);
    read_engine_labels(top, m);
    check_rules_against_axes(m);
    check_overrides_against_axes(m);
    check_contradictions(m);
    m.gpu_classes_named = std::move(gpu_named_);
    if (!diags_.empty()) throw InputError(std::move(diags_));
    return m;
  }

 private:
  void read_axes(TomlFields& top, Matrix& m) {
    const toml::table* t = top.table("axes", true);
    if (!t) return;
    TomlFields f = fields(*t);
    f.only({"pytorch", "cuda", "cudnn", "os", "flavor", "python", "platform"});
    for (const char* name : kAxes) {
      bool required = std::string_view(name) == "cuda" || std::string_view(name) == "os" ||
                      std::string_view(name) == "flavor";
      Axis axis{name, values(f, name, required)};
      if (!f.raw().contains(name)) continue;
      std::set<std::string> seen;
      for (const auto& v : axis.values) {
        if (v.text.empty()) error(v.where, fmt::format("empty value in axis '{}'", name));
        if (!seen.insert(v.text).second) error(v.where, fmt::format("'{}' appears twice in axis '{}'", v.text, name));
        if (axis.name == "flavor" && !kFlavors.count(v.text))
          error(v.where, fmt::format("flavor must be \"runtime\" or \"devel\", not \"{}\"", v.text));
      }
      if (axis.name == "platform") normalize_platforms(axis.values);
      if (!axis.values.empty()) m.axes.push_back(std::move(axis));
    }
  }

  // Docker's platform names are accepted and stored as the catalog's.
  void normalize_platform(Value& v) {
    if (auto word = platform_word(v.text)) v.text = *word;
    else error(v.where, fmt::format("platform {} is not \"x86_64\" or \"aarch64\" (or \"linux/amd64\", \"linux/arm64\")", grammar::quoted(v.text)));
  }
  void normalize_platforms(std::vector<Value>& values) {
    std::set<std::string> seen;
    for (auto& v : values) {
      normalize_platform(v);
      if (!seen.insert(v.text).second) error(v.where, fmt::format("platform \"{}\" appears twice in axis 'platform'", v.text));
    }
  }

  std::vector<Rule> read_rules(TomlFields& top, std::string_view kind, bool is_include) {
    std::vector<Rule> rules;
    size_t index = 0;
    for (const toml::table* t : top.tables(kind)) {
      TomlFields f = fields(*t);
      Rule rule;
      rule.index = ++index;
      rule.where = f.where();
      for (const auto& [key, node] : *t) {
        std::string_view name = key.str();
        if (name == "reason") continue;
        if (!is_axis(name)) {
          error(location_of(node, file_), fmt::format("unknown key '{}' in [[{}]] (axes: pytorch, cuda, cudnn, os, flavor, python, platform; and 'reason')", name, kind));
          continue;
        }
        if (!node.is_string()) {
          error(location_of(node, file_), fmt::format("'{}' in [[{}]] must be a string", name, kind));
          continue;
        }
        rule.values[std::string(name)] = {*node.value<std::string>(), location_of(node, file_)};
        if (name == "platform") normalize_platform(rule.values[std::string(name)]);
      }
      rule.reason = f.str("reason", !is_include).value_or("");
      if (rule.values.empty()) error(rule.where, fmt::format("[[{}]] #{} names no axis value", kind, rule.index));
      rules.push_back(std::move(rule));
    }
    return rules;
  }

  void read_policy(TomlFields& top, Matrix& m) {
    const toml::table* t = top.table("policy");
    if (!t) return;
    TomlFields f = fields(*t);
    f.only({"verify", "gpu_classes", "targets", "override", "gpu_counts", "driver_branches", "drift"});
    m.policy.drift = f.str("drift").value_or("allow");
    if (m.policy.drift != "allow" && m.policy.drift != "refuse")
      error(f.where("drift"), "policy.drift must be \"allow\" or \"refuse\"");
    if (f.raw().contains("verify")) m.policy.verify = verify_list(f, "policy.verify");
    m.policy.gpu_classes = gpu_classes(f);
    m.policy.targets = f.str("targets").value_or("all");
    if (!kTargetPolicies.count(m.policy.targets))
      error(f.where("targets"), "policy.targets must be \"all\", \"any\" or \"report\"");
    bool wants_gpu = std::count(m.policy.verify.begin(), m.policy.verify.end(), "gpu") > 0;
    if (wants_gpu && m.policy.gpu_classes.empty())
      error(f.where("verify"), "policy.verify includes \"gpu\" but policy.gpu_classes names no GPU class");
    for (const toml::table* o : f.tables("override")) read_policy_override(*o, m);
    for (std::int64_t n : f.integers("gpu_counts")) {
      if (n < 1 || n > 64) error(f.where("gpu_counts"), fmt::format("policy.gpu_counts: {} is not a GPU count (1 to 64)", n));
      m.policy.gpu_counts.push_back(static_cast<int>(n));
    }
    for (const auto& b : f.strings("driver_branches")) {
      bool digits = !b.empty() && std::all_of(b.begin(), b.end(), [](unsigned char ch) { return std::isdigit(ch); });
      if (!digits) error(f.where("driver_branches"), fmt::format("policy.driver_branches: {} is not a driver branch such as \"580\"", grammar::quoted(b)));
      m.policy.driver_branches.push_back(b);
    }
  }

  // verify = [] would make every built image verified: at least one check.
  std::vector<std::string> verify_list(TomlFields& f, std::string_view what) {
    std::vector<std::string> checks = f.strings("verify", false, true);
    for (const auto& c : checks)
      if (!kChecks.count(c)) error(f.where("verify"), fmt::format("unknown check {} (known: static, gpu)", grammar::quoted(c)));
    if (checks.empty() && f.raw().get("verify") && f.raw().get("verify")->is_array())
      error(f.where("verify"), fmt::format("{} = [] would call every built image verified; list at least \"static\"", what));
    return checks;
  }

  void read_policy_override(const toml::table& t, Matrix& m) {
    TomlFields f = fields(t);
    PolicyOverride o;
    o.where = f.where();
    for (const auto& [key, node] : t) {
      std::string_view name = key.str();
      if (name == "verify" || name == "gpu_classes") continue;
      if (!is_axis(name)) {
        error(location_of(node, file_), fmt::format("unknown key '{}' in [[policy.override]] (axes, 'verify', 'gpu_classes')", name));
        continue;
      }
      if (!node.is_string()) {
        error(location_of(node, file_), fmt::format("'{}' in [[policy.override]] must be a string", name));
        continue;
      }
      o.match[std::string(name)] = {*node.value<std::string>(), location_of(node, file_)};
      if (name == "platform") normalize_platform(o.match[std::string(name)]);
    }
    if (f.raw().contains("verify")) o.verify = verify_list(f, "this override's verify");
    else error(o.where, "missing required key 'verify'");
    o.gpu_classes = gpu_classes(f);
    if (std::count(o.verify.begin(), o.verify.end(), "gpu") && o.gpu_classes.empty())
      error(f.where("verify"), "this override requires \"gpu\" but names no gpu_classes");
    if (o.match.empty()) error(o.where, "[[policy.override]] must match at least one axis value");
    m.policy.overrides.push_back(std::move(o));
  }

  void read_tags(TomlFields& top, Matrix& m) {
    const toml::table* t = top.table("tags");
    if (t) {
      TomlFields f = fields(*t);
      f.only({"templates"});
      m.tag_templates = values(f, "templates", true);
    }
    if (m.tag_templates.empty()) m.tag_templates.push_back({kDefaultTagTemplate, {file_}});
  }

  void read_image(TomlFields& top, Matrix& m) {
    const toml::table* t = top.table("image");
    if (!t) return;
    TomlFields f = fields(*t);
    f.only({"user", "uid", "platform"});
    m.user = f.str("user").value_or(m.user);
    if (auto p = f.str("platform")) {
      if (auto word = platform_word(*p)) m.platform = *word;
      else error(f.where("platform"), "platform must be \"x86_64\" or \"aarch64\" (or \"linux/amd64\", \"linux/arm64\")");
      if (m.axis("platform"))
        error(f.where("platform"), "[image] platform and the platform axis both name the platform; keep the axis");
    }
    if (auto uid = f.integer("uid")) {
      if (*uid < 0 || *uid > 2147483647) error(f.where("uid"), "uid must be between 0 and 2147483647");
      else m.uid = static_cast<int>(*uid);
    }
    if (m.user.empty() || m.user.size() > 32 || m.user.front() == '-' ||
        m.user.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_-") != std::string::npos)
      error(f.where("user"), "user must be a plain lower-case name");
  }

  void read_bases(TomlFields& top, Matrix& m) {
    for (const toml::table* t : top.tables("base")) {
      TomlFields f = fields(*t);
      f.only({"os", "cuda", "flavor", "platform", "image"});
      BaseOverride b;
      if (auto p = f.str("platform")) {
        if (auto word = platform_word(*p)) b.platform = *word;
        else error(f.where("platform"), fmt::format("[[base]] platform {} is not \"x86_64\" or \"aarch64\" (or \"linux/amd64\", \"linux/arm64\")", grammar::quoted(*p)));
      }
      b.os = f.str("os").value_or("");
      b.cuda = f.str("cuda").value_or("");
      b.flavor = f.str("flavor").value_or("");
      b.image = f.str("image", true).value_or("");
      b.where = f.where();
      if (is_string(f, "image")) check(b.image, f.where("image"), grammar::image_reference, "[[base]] image");
      if (b.os.empty() && b.cuda.empty() && b.flavor.empty() && b.platform.empty())
        error(b.where, "[[base]] must name at least one of 'os', 'cuda', 'flavor', 'platform'");
      m.bases.push_back(std::move(b));
    }
  }

  // An index URL lands in the Dockerfile: credentials in it would be in the
  // image's history. They go through the build secret.
  void check_index_url(const std::string& text, const Location& at, std::string_view what) {
    if (!check(text, at, grammar::url, what)) return;
    std::string_view rest = std::string_view(text).substr(text.find("//") + 2);
    if (rest.substr(0, rest.find('/')).find('@') != std::string_view::npos)
      error(at, fmt::format("{} {} holds credentials; they would be written into the Dockerfile and the image's "
                            "history: put them in a netrc file given as [pip] secret", what, grammar::quoted(text)));
  }

  // A path in the matrix is relative to the matrix file.
  std::string beside_matrix(const std::string& path) const {
    namespace fs = std::filesystem;
    fs::path p(path);
    if (p.is_relative()) p = fs::path(file_).parent_path() / p;
    return fs::absolute(p).lexically_normal().string();
  }

  void read_pip(TomlFields& top, Matrix& m) {
    const toml::table* t = top.table("pip");
    if (!t) return;
    TomlFields f = fields(*t);
    f.only({"index_url", "extra_index_urls", "find_links", "no_index", "packages", "secret", "secret_env", "secret_file"});
    Pip& pip = m.pip;
    pip.where = f.where();
    if (is_string(f, "index_url")) {
      pip.index_url = f.str("index_url").value_or("");
      check_index_url(*pip.index_url, f.where("index_url"), "[pip] index_url");
    }
    if (f.raw().contains("extra_index_urls")) {
      pip.extra_index_urls.emplace();
      for (const Value& v : values(f, "extra_index_urls", false)) {
        check_index_url(v.text, v.where, "[pip] extra_index_urls entry");
        pip.extra_index_urls->push_back(v.text);
      }
    }
    if (f.raw().contains("find_links")) {
      pip.find_links.emplace();
      for (const Value& v : values(f, "find_links", false)) {
        FindLinks fl{v.text, "", v.where};
        if (v.text.starts_with("http://") || v.text.starts_with("https://")) {
          check_index_url(v.text, v.where, "[pip] find_links URL");
        } else if (check(v.text, v.where, grammar::single_line, "[pip] find_links directory")) {
          fl.directory = beside_matrix(v.text);
          std::error_code ec;
          if (!std::filesystem::is_directory(fl.directory, ec))
            error(v.where, fmt::format("[pip] find_links {} is neither an http(s) URL nor a directory ({} does not exist "
                                       "or is not a directory)", grammar::quoted(v.text), fl.directory));
        }
        pip.find_links->push_back(std::move(fl));
      }
    }
    pip.no_index = f.boolean("no_index");
    if (f.raw().contains("packages")) {
      pip.packages.emplace();
      for (const Value& v : values(f, "packages", false)) {
        check(v.text, v.where, grammar::pip_requirement, "[pip] packages entry");
        pip.packages->push_back(v.text);
      }
      if (pip.packages->empty()) error(f.where("packages"), "[pip] packages = [] would install nothing");
    }
    pip.secret = f.str("secret").value_or("");
    pip.secret_env = f.str("secret_env").value_or("");
    std::string file = f.str("secret_file").value_or("");
    if (!pip.secret.empty()) {
      check(pip.secret, f.where("secret"), grammar::tag, "[pip] secret id");
      if (pip.secret_env.empty() == file.empty())
        error(f.where("secret"), "[pip] secret needs exactly one source: secret_env (an environment variable's name) "
                                 "or secret_file (a netrc file); the matrix never holds the value");
    } else if (!pip.secret_env.empty() || !file.empty()) {
      error(f.where(pip.secret_env.empty() ? "secret_file" : "secret_env"),
            "[pip] secret_env/secret_file without 'secret' (the id the build reads it under)");
    }
    if (!pip.secret_env.empty() &&
        (pip.secret_env.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") !=
             std::string::npos || std::isdigit(static_cast<unsigned char>(pip.secret_env.front()))))
      error(f.where("secret_env"), fmt::format("[pip] secret_env {} is not an environment variable name",
                                               grammar::quoted(pip.secret_env)));
    if (!file.empty()) pip.secret_file = beside_matrix(file);
  }

  void read_cache(TomlFields& top, Matrix& m) {
    const toml::table* t = top.table("cache");
    if (!t) return;
    TomlFields f = fields(*t);
    f.only({"apt", "pip"});
    m.cache.where = f.where();
    m.cache.apt = f.str("apt").value_or("");
    m.cache.pip = f.boolean("pip").value_or(false);
    const std::string& apt = m.cache.apt;
    if (apt.empty() || apt == "kiln") return;
    // The address reaches the image's history as a build argument: no
    // credentials, and only plain HTTP (apt's proxy protocol here).
    if (apt.rfind("http://", 0) != 0 || !check(apt, f.where("apt"), grammar::url, "[cache] apt"))
      error(f.where("apt"), fmt::format("[cache] apt {} must be \"kiln\" (kiln starts apt-cacher-ng) or an apt proxy's "
                                        "http://HOST:PORT", grammar::quoted(apt)));
    else if (apt.substr(7, apt.find('/', 7) - 7).find('@') != std::string::npos)
      error(f.where("apt"), fmt::format("[cache] apt {} holds credentials; the proxy's address is recorded in the "
                                        "image's history as a build argument", grammar::quoted(apt)));
  }

  void read_budget(TomlFields& top, Matrix& m) {
    const toml::table* t = top.table("budget");
    if (!t) return;
    TomlFields f = fields(*t);
    f.only({"runtime", "devel"});
    for (const char* flavor : {"runtime", "devel"}) {
      auto text = f.str(flavor);
      if (!text) continue;
      std::int64_t bytes = parse_byte_size(*text);
      if (bytes <= 0) {
        error(f.where(flavor), fmt::format("[budget] {} {} is not a size such as \"6GB\", \"800MB\" or \"1.5GiB\"",
                                           flavor, grammar::quoted(*text)));
        continue;
      }
      m.budget.bytes[flavor] = bytes;
      m.budget.written[flavor] = *text;
    }
  }

  // [engine_labels]: which engines may build a flavor's images (docs/build.md,
  // "Several engines"); "all" applies to every flavor.
  void read_engine_labels(TomlFields& top, Matrix& m) {
    const toml::table* t = top.table("engine_labels");
    if (!t) return;
    TomlFields f = fields(*t);
    f.only({"all", "runtime", "devel"});
    for (const char* flavor : {"all", "runtime", "devel"}) {
      auto labels = f.strings(flavor);
      for (const auto& l : labels) check(l, f.where(flavor), grammar::tag, "engine label");
      if (!labels.empty()) m.engine_labels[flavor] = labels;
    }
  }

  // A rule may only name axes the matrix has; an exclude value that no axis
  // holds can never match and is almost always a typo.
  void check_rules_against_axes(const Matrix& m) {
    for (const auto& rule : m.exclude) {
      for (const auto& [name, value] : rule.values) {
        const Axis* axis = m.axis(name);
        if (!axis) {
          error(value.where, fmt::format("[[exclude]] #{} names axis '{}', which the matrix does not have", rule.index, name));
          continue;
        }
        const std::string& wanted = value.text;
        bool present = std::any_of(axis->values.begin(), axis->values.end(),
                                   [&](const Value& v) { return v.text == wanted; });
        if (!present)
          error(value.where, fmt::format("[[exclude]] #{}: {} \"{}\" is not a value of axis '{}'; it would never match",
                                         rule.index, name, value.text, name));
      }
    }
  }

  // An override value that no axis or [[include]] holds can never match.
  void check_overrides_against_axes(const Matrix& m) {
    for (size_t i = 0; i < m.policy.overrides.size(); ++i) {
      for (const auto& [name, value] : m.policy.overrides[i].match) {
        const Axis* axis = m.axis(name);
        const std::string& axis_name = name;  // (clang: no lambda capture of a structured binding)
        const std::string& wanted = value.text;
        bool present = axis && std::any_of(axis->values.begin(), axis->values.end(),
                                           [&](const Value& v) { return v.text == wanted; });
        present = present || std::any_of(m.include.begin(), m.include.end(), [&](const Rule& r) {
                    auto it = r.values.find(axis_name);
                    return it != r.values.end() && it->second.text == wanted;
                  });
        if (!present)
          error(value.where, fmt::format("[[policy.override]] #{}: {} {} is not a value of axis '{}' or of any [[include]]; "
                                         "it would never match", i + 1, name, grammar::quoted(value.text), name));
      }
    }
  }

  static bool rule_matches(const Rule& exclude, const Rule& include) {
    for (const auto& [name, value] : exclude.values) {
      auto it = include.values.find(name);
      if (it == include.values.end() || it->second.text != value.text) return false;
    }
    return true;
  }

  void check_contradictions(const Matrix& m) {
    for (const auto& inc : m.include)
      for (const auto& exc : m.exclude)
        if (rule_matches(exc, inc))
          error(inc.where, fmt::format("[[include]] #{} is removed again by [[exclude]] #{} at {}; drop one of them",
                                       inc.index, exc.index, exc.where.str()));
  }

};

}  // namespace

Matrix parse_matrix_file(const std::string& path) {
  toml::table doc = parse_toml_file(path);
  return Parser(path).parse(doc);
}

Matrix parse_matrix_text(std::string_view text, const std::string& name) {
  toml::table doc = parse_toml_string(text, name);
  return Parser(name).parse(doc);
}

}  // namespace kiln::matrix
