#include "render/render.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include <kainjow/mustache.hpp>

#include "util/diag.h"
#include "util/text.h"

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

mus::data template_data(const plan::Combo& c, const plan::Plan& p) {
  const plan::Versions& v = c.versions;
  mus::data d;
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
  d.set("first_tag", c.tags.empty() ? c.id : c.tags.front());
  d.set("tags", list(c.tags));
  d.set("apt", c.install.method == "apt");
  d.set("nvidia_base", c.install.method == "nvidia-base");
  d.set("apt_components", join(c.install.components, " "));
  d.set("apt_packages", list(c.install.packages));
  d.set("remove_driver_libs", c.install.remove_driver_libs);
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
  // Partials are templates/partials/NAME.mustache, read once, sorted by name.
  if (fs::exists(dir_ + "/partials"))
    for (const auto& entry : fs::directory_iterator(dir_ + "/partials"))
      if (entry.path().extension() == ".mustache")
        partials_.emplace_back(entry.path().stem().string(), read_file(entry.path().string()));
  std::sort(partials_.begin(), partials_.end());
}

Rendered Renderer::render(const plan::Combo& combo, const plan::Plan& p) const {
  mus::mustache tmpl{main_};
  tmpl.set_custom_escape([](const std::string& s) { return s; });  // Dockerfiles, not HTML
  if (!tmpl.is_valid()) throw InputError({dir_ + "/Dockerfile.mustache"}, tmpl.error_message());
  mus::data d = template_data(combo, p);
  for (const auto& [name, text] : partials_) {
    const std::string* body = &text;
    d.set(name, mus::partial([body] { return *body; }));
  }
  std::string out = squeeze_blank_lines(tmpl.render(d));
  if (!tmpl.is_valid()) throw InputError({dir_}, "template error: " + tmpl.error_message());
  nlohmann::json inputs = plan::to_json(combo);
  inputs["matrix"] = p.matrix_name;
  inputs["catalog_version"] = p.catalog_version;
  return {combo.id, out, inputs};
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
    write_if_changed(dir / "kiln.json", x.inputs.dump(2) + "\n");
    keep.insert(x.id);
    written.push_back(dir.string());
  }
  for (const auto& entry : fs::directory_iterator(out_dir))
    if (entry.is_directory() && !keep.count(entry.path().filename().string()) && fs::exists(entry.path() / "kiln.json"))
      fs::remove_all(entry.path());
  write_if_changed(fs::path(out_dir) / "plan.json", plan::to_json(p).dump(2) + "\n");
  write_if_changed(fs::path(out_dir) / "docker-bake.json", bake_file(p).dump(2) + "\n");
  return written;
}

}  // namespace kiln::render
