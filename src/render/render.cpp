#include "render/render.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include <fmt/format.h>
#include <kainjow/mustache.hpp>

#include "util/diag.h"
#include "util/text.h"
#include "util/json_out.h"

namespace kiln::render {

namespace fs = std::filesystem;
namespace mus = kainjow::mustache;

namespace {

std::string load_template(const std::string& path) {
  if (!fs::exists(path)) throw InputError({path}, "template is missing");
  return read_file(path);
}

mus::data list(const std::vector<std::string>& items) {
  mus::data d{mus::data::type::list};
  for (size_t i = 0; i < items.size(); ++i) {
    mus::data item;
    item.set("value", items[i]);
    item.set("last", i + 1 == items.size());
    d.push_back(item);
  }
  return d;
}

std::string space_list(const std::vector<ComputeCapability>& ccs, bool ptx) {
  std::vector<std::string> out;
  for (const auto& cc : ccs) out.push_back(ptx ? cc.compute() : cc.sm());
  return join(out, " ");
}

// What the templates see; every name here is documented in templates/README.md.
// An empty optional value is `false`, so `{{#cudnn}}...{{/cudnn}}` skips it.
mus::data optional(const std::string& s) { return s.empty() ? mus::data(false) : mus::data(s); }

// nvcc flags for an arch list: SASS for each entry, PTX where marked.
std::string gencode_flags(const ArchList& arch) {
  std::vector<std::string> flags;
  for (const auto& cc : arch.sass) flags.push_back(fmt::format("-gencode arch={},code={}", cc.compute(), cc.sm()));
  for (const auto& cc : arch.ptx) flags.push_back(fmt::format("-gencode arch={},code={}", cc.compute(), cc.compute()));
  return join(flags, " ");
}

mus::data template_data(const plan::Combo& c, const plan::Plan& p) {
  const plan::Versions& v = c.versions;
  const plan::Combo* parent = parent_of(c, p);
  mus::data d;
  d.set("parent", parent != nullptr);
  d.set("parent_id", parent ? parent->id : "");
  d.set("parent_image", parent ? local_image(p, parent->id) : "");
  d.set("local_image", local_image(p, c.id));
  d.set("nvcc_gencode", gencode_flags(c.arch));
  d.set("id", c.id);
  d.set("matrix", p.matrix_name);
  d.set("catalog_version", p.catalog_version);
  d.set("base", c.base);
  d.set("flavor", v.flavor);
  d.set("devel", v.flavor == "devel");
  d.set("os", v.os);
  d.set("cuda", v.cuda);
  d.set("cudnn", optional(v.cudnn));
  d.set("nccl", optional(v.nccl));
  d.set("pytorch", optional(v.pytorch));
  d.set("python", optional(v.python));
  d.set("arch_list", c.arch.str());
  d.set("sass", space_list(c.arch.sass, false));
  d.set("ptx", space_list(c.arch.ptx, true));
  d.set("min_driver", c.min_driver);
  d.set("require_cuda", c.require_cuda);
  d.set("require_arch", require_arch(c.arch));
  d.set("first_tag", c.tags.empty() ? c.id : c.tags.front());
  d.set("tags", list(c.tags));
  d.set("apt", c.install.method == "apt");
  d.set("nvidia_base", c.install.method == "nvidia-base");
  d.set("apt_components", join(c.install.components, " "));
  d.set("apt_packages", list(parent ? c.install.devel_packages : c.install.packages));
  d.set("remove_driver_libs", c.install.remove_driver_libs);
  d.set("recipe_env", list(c.install.env));
  d.set("with_pytorch", !v.pytorch.empty());
  d.set("torch_index", c.install.torch_index);
  d.set("torch_packages", list(c.install.torch_packages));
  d.set("python_packages", list(c.install.python_packages));
  d.set("venv", c.install.venv);
  d.set("user", p.user);
  d.set("uid", std::to_string(p.uid));
  return d;
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

void write_if_changed(const fs::path& path, const std::string& content) {
  if (fs::exists(path) && read_file(path.string()) == content) return;
  write_file_atomic(path.string(), content);
}

}  // namespace

Renderer::Renderer(std::string templates_dir) : dir_(std::move(templates_dir)) {
  main_ = load_template(dir_ + "/Dockerfile.mustache");
  if (fs::exists(dir_ + "/smoke.Dockerfile.mustache")) smoke_ = read_file(dir_ + "/smoke.Dockerfile.mustache");
  // Partials are templates/partials/NAME.mustache, read once, sorted by name.
  if (fs::exists(dir_ + "/partials"))
    for (const auto& entry : fs::directory_iterator(dir_ + "/partials"))
      if (entry.path().extension() == ".mustache")
        partials_.emplace_back(entry.path().stem().string(), read_file(entry.path().string()));
  std::sort(partials_.begin(), partials_.end());
  // Files devel images compile during their build (templates/context/).
  if (fs::exists(dir_ + "/context"))
    for (const auto& entry : fs::directory_iterator(dir_ + "/context"))
      if (entry.is_regular_file()) context_[entry.path().filename().string()] = read_file(entry.path().string());
}

std::string cmake_architectures(const ArchList& arch) {
  std::vector<std::string> out;
  for (const auto& cc : arch.sass) out.push_back(std::to_string(cc.number()) + "-real");
  for (const auto& cc : arch.ptx) out.push_back(std::to_string(cc.number()) + "-virtual");
  return join(out, ";");
}

std::string Renderer::render_smoke(const plan::Combo& combo, const std::string& image, const std::string& devel_image) const {
  if (smoke_.empty()) throw InputError({dir_ + "/smoke.Dockerfile.mustache"}, "template is missing");
  mus::mustache tmpl{smoke_};
  tmpl.set_custom_escape([](const std::string& s) { return s; });
  mus::data d;
  d.set("id", combo.id);
  d.set("arch_list", combo.arch.str());
  d.set("cmake_archs", cmake_architectures(combo.arch));
  d.set("image", image);
  d.set("devel_image", devel_image);
  std::string out = tmpl.render(d);
  if (!tmpl.is_valid()) throw InputError({dir_ + "/smoke.Dockerfile.mustache"}, tmpl.error_message());
  return out;
}

std::string local_image(const plan::Plan& p, const std::string& combo_id) {
  return "kiln.local/" + p.matrix_name + ":" + combo_id;
}

const plan::Combo* parent_of(const plan::Combo& combo, const plan::Plan& p) {
  if (combo.versions.flavor != "devel" || !combo.install.devel_from_runtime) return nullptr;
  auto sibling_axes = combo.axes;
  sibling_axes["flavor"] = "runtime";
  for (const auto& c : p.combos)
    if (c.axes == sibling_axes && c.status == plan::Status::valid) return &c;
  return nullptr;
}

Rendered Renderer::render(const plan::Combo& combo, const plan::Plan& p) const {
  mus::mustache tmpl{main_};
  tmpl.set_custom_escape([](const std::string& s) { return s; });  // Dockerfiles, not HTML
  if (!tmpl.is_valid()) throw InputError({dir_ + "/Dockerfile.mustache"}, tmpl.error_message());
  mus::data d = template_data(combo, p);
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
  if (combo.versions.flavor == "devel") r.context = context_;
  r.inputs["matrix"] = p.matrix_name;
  r.inputs["catalog_version"] = p.catalog_version;
  r.inputs["local_image"] = r.local_image;
  r.inputs["parent"] = r.parent.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.parent);
  return r;
}

std::vector<std::string> generate(const plan::Plan& p, const Renderer& r, const std::string& out_dir) {
  // Render everything first: a template error must leave out_dir untouched.
  std::vector<Rendered> all;
  for (const auto& c : p.combos)
    if (c.status == plan::Status::valid) all.push_back(r.render(c, p));

  fs::create_directories(out_dir);
  std::set<std::string> keep;
  std::vector<std::string> written;
  for (const auto& x : all) {
    fs::path dir = fs::path(out_dir) / x.id;
    fs::create_directories(dir);
    write_if_changed(dir / "Dockerfile", x.dockerfile);
    write_if_changed(dir / "kiln.json", json_text(x.inputs, 2) + "\n");
    for (const auto& [name, bytes] : x.context) write_if_changed(dir / name, bytes);
    keep.insert(x.id);
    written.push_back(dir.string());
  }
  for (const auto& entry : fs::directory_iterator(out_dir))
    if (entry.is_directory() && !keep.count(entry.path().filename().string()) && fs::exists(entry.path() / "kiln.json"))
      fs::remove_all(entry.path());
  write_if_changed(fs::path(out_dir) / "plan.json", json_text(plan::to_json(p), 2) + "\n");
  write_if_changed(fs::path(out_dir) / "docker-bake.json", json_text(bake_file(p), 2) + "\n");
  return written;
}

}  // namespace kiln::render
