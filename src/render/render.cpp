#include "render/render.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <set>

#include <fmt/format.h>
#include <kainjow/mustache.hpp>

#include "render/template_check.h"
#include "util/diag.h"
#include "util/text.h"
#include "util/validate.h"

namespace kiln::render {

namespace fs = std::filesystem;
namespace mus = kainjow::mustache;

namespace {

std::string load_template(const std::string& path) {
  if (!fs::exists(path)) throw InputError({path}, "template is missing");
  return read_file(path);
}

// The item a list() holds; also what the template check sees inside a
// section over an empty list.
mus::data list_item(const std::string& value, bool last) {
  mus::data item;
  item.set("value", value);
  item.set("last", last);
  return item;
}

std::string space_list(const std::vector<ComputeCapability>& ccs, bool ptx) {
  std::vector<std::string> out;
  for (const auto& cc : ccs) out.push_back(ptx ? cc.compute() : cc.sm());
  return join(out, " ");
}

// nvcc flags for an arch list: SASS for each entry, PTX where marked.
std::string gencode_flags(const ArchList& arch) {
  std::vector<std::string> flags;
  for (const auto& cc : arch.sass) flags.push_back(fmt::format("-gencode arch={},code={}", cc.compute(), cc.sm()));
  for (const auto& cc : arch.ptx) flags.push_back(fmt::format("-gencode arch={},code={}", cc.compute(), cc.compute()));
  return join(flags, " ");
}

// Template values, each checked against the grammar of where it goes: the
// last line of defence (matrix and catalog were checked when read) before a
// string becomes Dockerfile text. A newline would add an instruction.
class Values {
 public:
  Values(const plan::Combo& c, const plan::Plan& p) : combo_(c.id), file_(p.matrix_path) {}

  void str(const std::string& name, const std::string& value, grammar::Check check = grammar::single_line) {
    verify(name, value, check);
    d_.set(name, value);
  }
  // An empty optional value is `false`, so `{{#cudnn}}...{{/cudnn}}` skips it.
  void optional(const std::string& name, const std::string& value, grammar::Check check = grammar::single_line) {
    if (value.empty()) d_.set(name, false);
    else str(name, value, check);
  }
  void flag(const std::string& name, bool value) { d_.set(name, value); }
  void list(const std::string& name, const std::vector<std::string>& items, grammar::Check check) {
    mus::data l{mus::data::type::list};
    for (size_t i = 0; i < items.size(); ++i) {
      verify(name, items[i], check);
      l.push_back(list_item(items[i], i + 1 == items.size()));
    }
    d_.set(name, l);
  }
  mus::data take() { return std::move(d_); }

 private:
  void verify(const std::string& name, const std::string& value, grammar::Check check) const {
    if (auto problem = check(value))
      throw InputError({file_}, fmt::format("combination {}: template value '{}' = {} {}; refusing to render it into a "
                                            "Dockerfile", grammar::quoted(combo_), name, grammar::quoted(value), *problem));
  }

  mus::data d_;
  std::string combo_, file_;
};

grammar::Problem words(std::string_view text, grammar::Check each) {
  for (std::string_view w : split(text, ' '))
    if (auto p = each(w)) return p;
  return std::nullopt;
}
grammar::Problem apt_components(std::string_view t) { return t.empty() ? std::nullopt : words(t, grammar::apt_component); }
grammar::Problem optional_url(std::string_view t) { return t.empty() ? std::nullopt : grammar::url(t); }
grammar::Problem optional_path(std::string_view t) { return t.empty() ? std::nullopt : grammar::absolute_path(t); }
grammar::Problem optional_image(std::string_view t) { return t.empty() ? std::nullopt : grammar::image_reference(t); }
grammar::Problem url_or_path(std::string_view t) {
  return t.starts_with("/") ? grammar::absolute_path(t) : grammar::url(t);
}
// A RUN flag: one word, no quotes or shell metacharacters.
grammar::Problem run_flag(std::string_view t) {
  for (char c : t)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || std::string_view("-=,/._").find(c) != std::string_view::npos))
      return fmt::format("holds '{}', which does not belong in a RUN --mount flag", c);
  return std::nullopt;
}

// Where the PyTorch step's wheels come from, for the Dockerfile's comment
// and the RUN step's flags: local wheelhouses are bind-mounted from the
// build context (kiln-wheels/N), never copied into a layer.
constexpr const char* kWheelsInContext = "kiln-wheels";
constexpr const char* kWheelsInImage = "/tmp/kiln-wheels";

struct PipSetup {
  std::vector<std::string> sources, mounts, find_links;
};

// [cache] pip: pip's own cache (downloaded wheels, HTTP responses) in a
// BuildKit cache mount: shared by every build on the engine, never a layer.
constexpr const char* kPipCacheMount = "--mount=type=cache,id=kiln-pip,target=/root/.cache/pip";

PipSetup pip_setup(const plan::Install& in, bool pip_cache) {
  PipSetup s;
  if (in.torch_no_index) s.sources.push_back("no index (air-gapped): only the find-links below");
  else if (!in.torch_index.empty()) s.sources.push_back("index " + in.torch_index);
  for (const auto& u : in.torch_extra_indexes) s.sources.push_back("extra index " + u);
  s.find_links = in.torch_find_links;
  for (const auto& u : in.torch_find_links) s.sources.push_back("find-links " + u);
  for (size_t i = 0; i < in.torch_wheel_dirs.size(); ++i) {
    std::string n = std::to_string(i + 1);
    std::string src = std::string(kWheelsInContext) + "/" + n, dst = std::string(kWheelsInImage) + "/" + n;
    s.sources.push_back(fmt::format("wheelhouse {} (the matrix's find_links directory; kiln links it into the build "
                                    "context as {}/ and bind-mounts it: no layer holds the wheels)",
                                    in.torch_wheel_dirs_as_written[i], src));
    s.mounts.push_back(fmt::format("--mount=type=bind,source={},target={}", src, dst));
    s.find_links.push_back(dst);
  }
  if (!in.pip_secret.empty()) {
    s.sources.push_back(fmt::format("credentials: build secret '{}' (a netrc file at /run/secrets/{}; never in a layer, "
                                    "an argument or the environment)", in.pip_secret, in.pip_secret));
    s.mounts.push_back("--mount=type=secret,id=" + in.pip_secret);
  }
  if (pip_cache) {
    s.sources.push_back("pip's cache: a BuildKit cache mount at /root/.cache/pip ([cache] pip; never in a layer)");
    s.mounts.push_back(kPipCacheMount);
  }
  return s;
}

grammar::Problem user_name(std::string_view t) {
  if (t.empty() || t.front() == '-' || !std::all_of(t.begin(), t.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
      }))
    return "is not a plain lower-case user name";
  return std::nullopt;
}

// What the templates see; every name here is documented in templates/README.md.
mus::data template_data(const plan::Combo& c, const plan::Plan& p) {
  const plan::Versions& v = c.versions;
  const plan::Combo* parent = parent_of(c, p);
  Values d(c, p);
  d.flag("parent", parent != nullptr);
  d.str("parent_id", parent ? parent->id : "", [](std::string_view t) { return t.empty() ? std::nullopt : grammar::tag(t); });
  d.str("parent_image", parent ? local_image(p, parent->id) : "", optional_image);
  d.str("local_image", local_image(p, c.id), grammar::image_reference);
  d.str("nvcc_gencode", gencode_flags(c.arch));
  d.str("id", c.id, grammar::tag);
  d.str("matrix", p.matrix_name, grammar::name);
  d.str("catalog_version", p.catalog_version);
  d.str("base", c.base, grammar::image_reference);
  d.str("flavor", v.flavor, grammar::tag);
  d.flag("devel", v.flavor == "devel");
  d.str("os", v.os, grammar::tag);
  d.str("cuda", v.cuda, grammar::tag);
  d.optional("cudnn", v.cudnn, grammar::tag);
  d.optional("nccl", v.nccl, grammar::tag);
  d.optional("pytorch", v.pytorch, grammar::tag);
  d.optional("python", v.python, grammar::tag);
  d.str("arch_list", c.arch.str());
  d.str("sass", space_list(c.arch.sass, false));
  d.str("ptx", space_list(c.arch.ptx, true));
  d.str("min_driver", c.min_driver);
  d.str("require_cuda", c.require_cuda);
  d.str("require_arch", require_arch(c.arch));
  d.str("first_tag", c.tags.empty() ? c.id : c.tags.front(), grammar::image_reference);
  d.list("tags", c.tags, grammar::image_reference);
  d.flag("apt", c.install.method == "apt");
  d.flag("nvidia_base", c.install.method == "nvidia-base");
  d.str("apt_components", join(c.install.components, " "), apt_components);
  d.list("apt_packages", parent ? c.install.devel_packages : c.install.packages, grammar::debian_package);
  d.flag("remove_driver_libs", c.install.remove_driver_libs);
  // Debian's multiarch library directory of the image's platform (driver
  // libraries are removed from it).
  d.str("multiarch", c.platform == "aarch64" ? "aarch64-linux-gnu" : "x86_64-linux-gnu", grammar::tag);
  d.str("platform", matrix::oci_platform(c.platform));
  d.list("recipe_env", c.install.env, grammar::env_assignment);
  d.flag("with_pytorch", !v.pytorch.empty());
  PipSetup pip = pip_setup(c.install, p.cache.pip);
  d.flag("pip_cache", p.cache.pip);
  d.optional("torch_index", c.install.torch_index, optional_url);
  d.list("torch_extra_indexes", c.install.torch_extra_indexes, grammar::url);
  d.list("torch_find_links", pip.find_links, url_or_path);
  d.flag("torch_no_index", c.install.torch_no_index);
  d.list("torch_constraints", c.install.torch_constraints, grammar::pip_requirement);
  d.list("pip_sources", pip.sources, grammar::single_line);
  d.list("pip_mounts", pip.mounts, run_flag);
  d.flag("pip_run_mounts", !pip.mounts.empty());
  d.optional("pip_secret", c.install.pip_secret, grammar::tag);
  d.list("torch_packages", c.install.torch_packages, grammar::pip_requirement);
  d.list("python_packages", c.install.python_packages, grammar::debian_package);
  d.str("venv", c.install.venv, optional_path);
  d.str("user", p.user, user_name);
  d.str("uid", std::to_string(p.uid));
  // MATRIX.lock (src/lock): the apt snapshot the apt steps default to, and
  // the base's locked image id for the Dockerfile's comment.
  d.optional("apt_snapshot", c.apt_snapshot, optional_url);
  d.optional("locked_image_id", c.locked_image_id, grammar::single_line);
  return d.take();
}

// Sections that render nothing leave runs of blank lines; keep one.
std::string squeeze_blank_lines(const std::string& text) {
  std::string out;
  for (char ch : text) {
    if (ch == '\n' && out.size() >= 2 && out[out.size() - 1] == '\n' && out[out.size() - 2] == '\n') continue;
    out += ch;
  }
  return out;
}

// Files kiln copies into build contexts and templates it reads must be
// regular files: a symlink in templates/context/ pointing at /etc/shadow
// was copied into every build context.
std::string read_regular(const fs::directory_entry& entry) {
  if (entry.is_symlink())
    throw InputError({entry.path().string()}, "is a symbolic link; kiln reads only regular files from templates/");
  if (!entry.is_regular_file())
    throw InputError({entry.path().string()}, "is not a regular file; kiln reads only regular files from templates/");
  return read_file(entry.path().string());
}

std::map<std::string, detail::TemplateSource> partial_sources(
    const std::string& dir, const std::vector<std::pair<std::string, std::string>>& partials) {
  std::map<std::string, detail::TemplateSource> out;
  for (const auto& [name, text] : partials) out[name] = {dir + "/partials/" + name + ".mustache", text};
  return out;
}

}  // namespace

Renderer::Renderer(std::string templates_dir) : dir_(std::move(templates_dir)) {
  main_ = load_template(dir_ + "/Dockerfile.mustache");
  if (fs::exists(dir_ + "/smoke.Dockerfile.mustache")) smoke_ = read_file(dir_ + "/smoke.Dockerfile.mustache");
  // Partials are templates/partials/NAME.mustache, read once, sorted by name.
  if (fs::exists(dir_ + "/partials"))
    for (const auto& entry : fs::directory_iterator(dir_ + "/partials"))
      if (entry.path().extension() == ".mustache")
        partials_.emplace_back(entry.path().stem().string(), read_regular(entry));
  std::sort(partials_.begin(), partials_.end());
  // Files devel images compile during their build (templates/context/).
  if (fs::exists(dir_ + "/context"))
    for (const auto& entry : fs::directory_iterator(dir_ + "/context"))
      context_[entry.path().filename().string()] = read_regular(entry);
  // Structure first (nesting, partial cycles, set delimiters), so a broken
  // template fails here, before any combination; names are checked per
  // rendering, against its values.
  detail::check_template({dir_ + "/Dockerfile.mustache", main_}, partial_sources(dir_, partials_));
  if (!smoke_.empty()) detail::check_template({dir_ + "/smoke.Dockerfile.mustache", smoke_}, {});
}

std::string cmake_architectures(const ArchList& arch) {
  std::vector<std::string> out;
  for (const auto& cc : arch.sass) out.push_back(std::to_string(cc.number()) + "-real");
  for (const auto& cc : arch.ptx) out.push_back(std::to_string(cc.number()) + "-virtual");
  return join(out, ";");
}

std::string Renderer::render_smoke(const plan::Combo& combo, const std::string& image, const std::string& devel_image) const {
  if (smoke_.empty()) throw InputError({dir_ + "/smoke.Dockerfile.mustache"}, "template is missing");
  mus::data d;
  d.set("id", combo.id);
  d.set("arch_list", combo.arch.str());
  d.set("cmake_archs", cmake_architectures(combo.arch));
  d.set("image", image);
  d.set("devel_image", devel_image);
  for (const auto& [name, value] : {std::pair{"image", image}, std::pair{"devel_image", devel_image}})
    if (auto problem = grammar::image_reference(value))
      throw InputError({dir_ + "/smoke.Dockerfile.mustache"}, fmt::format("{} {} {}", name, grammar::quoted(value), *problem));
  detail::check_template({dir_ + "/smoke.Dockerfile.mustache", smoke_}, {}, d, list_item("", true));
  mus::mustache tmpl{smoke_};
  tmpl.set_custom_escape([](const std::string& s) { return s; });
  std::string out = tmpl.render(d);
  if (!tmpl.is_valid()) throw InputError({dir_ + "/smoke.Dockerfile.mustache"}, tmpl.error_message());
  return out;
}

std::map<std::string, std::string> dockerfile_labels(std::string_view dockerfile) {
  std::map<std::string, std::string> out;
  std::string line;
  auto take = [&](const std::string& instruction) {
    size_t i = instruction.find_first_not_of(" \t");
    if (i == std::string::npos || instruction.size() < i + 6 || !std::isspace(static_cast<unsigned char>(instruction[i + 5])))
      return;
    std::string word = instruction.substr(i, 5);  // instructions are case-insensitive
    std::transform(word.begin(), word.end(), word.begin(), [](unsigned char ch) { return std::toupper(ch); });
    if (word != "LABEL") return;
    i += 5;
    while (true) {
      i = instruction.find_first_not_of(" \t", i);
      if (i == std::string::npos) return;
      const size_t eq = instruction.find('=', i);
      if (eq == std::string::npos) return;
      std::string key = instruction.substr(i, eq - i), value;
      i = eq + 1;
      if (i < instruction.size() && instruction[i] == '"') {
        for (++i; i < instruction.size() && instruction[i] != '"'; ++i) {
          if (instruction[i] == '\\' && i + 1 < instruction.size()) ++i;
          value += instruction[i];
        }
        ++i;
      } else {
        const size_t end = instruction.find_first_of(" \t", i);
        value = instruction.substr(i, end == std::string::npos ? std::string::npos : end - i);
        i = end == std::string::npos ? instruction.size() : end;
      }
      out[std::move(key)] = std::move(value);
    }
  };
  for (std::string_view rest = dockerfile; !rest.empty();) {
    const size_t nl = rest.find('\n');
    std::string_view l = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    if (!l.empty() && l.back() == '\\') {  // a continuation: the instruction goes on
      line.append(l.substr(0, l.size() - 1));
      line += ' ';
      continue;
    }
    line.append(l);
    take(line);
    line.clear();
  }
  take(line);
  return out;
}

namespace {
// Not a registry anyone can push to: a local name can never leave the engine by accident.
std::string local_repository(const plan::Plan& p) { return "kiln.local/" + p.matrix_name; }
}  // namespace

std::string local_image(const plan::Plan& p, const std::string& combo_id) { return local_repository(p) + ":" + combo_id; }

std::string local_smoke_image(const plan::Plan& p, const std::string& combo_id) {
  return local_repository(p) + "-smoke:" + combo_id;
}

const plan::Combo* parent_of(const plan::Combo& combo, const plan::Plan& p) {
  if (combo.versions.flavor != "devel" || !combo.install.devel_from_runtime) return nullptr;
  return p.sibling(combo, "runtime");
}

Rendered Renderer::render(const plan::Combo& combo, const plan::Plan& p) const {
  mus::data d = template_data(combo, p);
  // Every name the templates use must be one of these values, and the
  // output bounded, before kainjow renders anything (template_check.h).
  detail::check_template({dir_ + "/Dockerfile.mustache", main_}, partial_sources(dir_, partials_), d, list_item("", true));
  mus::mustache tmpl{main_};
  tmpl.set_custom_escape([](const std::string& s) { return s; });  // Dockerfiles, not HTML
  if (!tmpl.is_valid()) throw InputError({dir_ + "/Dockerfile.mustache"}, tmpl.error_message());
  for (const auto& [name, text] : partials_) {
    // A partial and a value share one namespace in Mustache: a clash would
    // silently replace the value.
    if (d.get(name))
      throw InputError({dir_ + "/partials/" + name + ".mustache"},
                       "this partial has the name of a template value; rename the file");
    const std::string* body = &text;
    d.set(name, mus::partial([body] { return *body; }));
  }
  std::string out = squeeze_blank_lines(tmpl.render(d));
  if (!tmpl.is_valid()) throw InputError({dir_}, "template error: " + tmpl.error_message());
  Rendered r{combo.id, out, plan::to_json(combo), local_image(p, combo.id), "", combo.base, {}};
  if (const plan::Combo* parent = parent_of(combo, p)) r.parent = parent->id;
  r.platform = matrix::oci_platform(combo.platform);
  r.labels = dockerfile_labels(r.dockerfile);
  if (combo.versions.flavor == "devel") r.context = context_;
  // The stage that runs the pip step needs the wheels and the secret.
  if (!combo.versions.pytorch.empty()) {
    const plan::Install& in = combo.install;
    for (size_t i = 0; i < in.torch_wheel_dirs.size(); ++i)
      r.context_dirs[std::string(kWheelsInContext) + "/" + std::to_string(i + 1)] = in.torch_wheel_dirs[i];
    if (!in.pip_secret.empty()) r.secrets.push_back({in.pip_secret, in.pip_secret_env, in.pip_secret_file});
    r.run_mounts = !in.torch_wheel_dirs.empty() || !in.pip_secret.empty() || p.cache.pip;
  }
  r.inputs["matrix"] = p.matrix_name;
  r.inputs["catalog_version"] = p.catalog_version;
  r.inputs["local_image"] = r.local_image;
  r.inputs["parent"] = r.parent.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.parent);
  r.lock = combo.lock_entry;
  r.locked_base_id = combo.locked_image_id;
  if (!p.lock_path.empty()) r.inputs["lock"] = {{"path", p.lock_path}, {"sha256", p.lock_sha256}, {"entry", combo.lock_entry}};
  return r;
}

}  // namespace kiln::render
