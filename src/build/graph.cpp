#include <algorithm>
#include <filesystem>
#include <set>

#include "build/internal.h"
#include "util/select.h"

namespace kiln::build {

namespace detail {

// Hard links cost no copy of a 4 GB wheelhouse; BuildKit and the engine
// read the context directory, so a symlink would not do.
void link_context_dirs(const Node& n) {
  namespace fs = std::filesystem;
  for (const auto& [name, source] : n.rendered.context_dirs) {
    fs::path target = fs::path(n.context_dir) / name;
    fs::remove_all(target);
    fs::create_directories(target);
    for (auto it = fs::recursive_directory_iterator(source); it != fs::end(it); ++it) {
      fs::path to = target / it->path().lexically_relative(source);
      if (it->is_directory()) {
        fs::create_directories(to);
      } else if (it->is_regular_file()) {
        std::error_code ec;
        fs::create_hard_link(fs::canonical(it->path()), to, ec);
        if (ec) fs::copy_file(it->path(), to, fs::copy_options::overwrite_existing);
      }
    }
  }
}

// The combination's platform and the [engine_labels] of "all" and its flavor.
Need need_of(const plan::Combo& c, const plan::Plan& p) {
  Need n;
  n.platform = oci_platform(c.platform);
  for (const char* key : {"all", c.versions.flavor.c_str()})
    if (auto it = p.engine_labels.find(key); it != p.engine_labels.end()) n = merge(n, Need{"", it->second});
  return n;
}

Graph make_graph(const plan::Plan& p, const render::Renderer& r, const Options& o) {
  // The selection, closed under "needs its parent".
  std::set<std::string> wanted;
  for (const auto& c : p.combos) {
    if (c.status != plan::Status::valid || !kiln::selected(c.id, o.only)) continue;
    for (const plan::Combo* x = &c; x; x = render::parent_of(*x, p)) wanted.insert(x->id);
  }
  std::string dir = o.state_dir + "/contexts/" + p.matrix_name;
  render::generate(p, r, dir);

  Graph g;
  std::map<std::string, int> index;
  // Parents first: a runtime stage before the devel stage built on it.
  for (int pass = 0; pass < 2; ++pass)
    for (const auto& c : p.combos) {
      if (!wanted.count(c.id) || index.count(c.id)) continue;
      bool has_parent = render::parent_of(c, p) != nullptr;
      if ((pass == 0) == has_parent) continue;
      Node n{r.render(c, p), dir + "/" + c.id, -1, {}, need_of(c, p)};
      n.need.secrets = !n.rendered.secrets.empty();
      n.need.run_mounts = n.rendered.run_mounts;
      index[c.id] = static_cast<int>(g.nodes.size());
      g.nodes.push_back(std::move(n));
    }
  for (const auto& n : g.nodes) link_context_dirs(n);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const std::string& parent = g.nodes[i].rendered.parent;
    if (parent.empty()) continue;
    g.nodes[i].parent = index.at(parent);
    g.nodes[index.at(parent)].children.push_back(static_cast<int>(i));
  }
  return g;
}

}  // namespace detail
}  // namespace kiln::build
