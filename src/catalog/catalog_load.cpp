// Reads the catalog's TOML files into plain data, checking every field.
#include <algorithm>
#include <cctype>
#include <filesystem>

#include <fmt/format.h>

#include "catalog/catalog.h"
#include "util/text.h"
#include "catalog/compat.h"
#include "util/toml_reader.h"
#include "util/validate.h"

namespace kiln::catalog {

namespace {

namespace fs = std::filesystem;

// "9.1" and "9.1.0" are one version (Version compares them equal): the key
// duplicates are found by.
std::string canonical(const Version& v) {
  std::vector<unsigned> parts = v.parts();
  while (parts.size() > 1 && parts.back() == 0) parts.pop_back();
  std::string out;
  for (unsigned p : parts) out += (out.empty() ? "" : ".") + std::to_string(p);
  return out;
}

// Shared state while reading one file: its name, the diagnostics so far,
// and the file-wide default source (a `source` at the top of the file).
struct Reader {
  std::string file;
  std::vector<Diagnostic>& diags;
  const std::map<std::string, std::string>& known_sources;
  std::vector<std::string> default_sources;

  TomlFields fields(const toml::table& t) { return TomlFields(t, file, diags); }

  Version version(TomlFields& f, std::string_view key, bool required = true) {
    auto text = f.str(key, required);
    if (!text) return {};
    auto v = Version::parse(*text);
    if (!v) f.error(f.where(key), fmt::format("'{}' is not a version: \"{}\"", key, *text));
    return v.value_or(Version{});
  }

  std::vector<VersionRange> ranges(TomlFields& f, std::string_view key) {
    std::vector<VersionRange> out;
    for (const auto& text : f.strings(key, true)) {
      if (auto r = VersionRange::parse(text)) out.push_back(*r);
      else f.error(f.where(key), fmt::format("'{}' holds a bad version range \"{}\"", key, text));
    }
    return out;
  }

  std::vector<ComputeCapability> ccs(TomlFields& f, std::string_view key, bool required) {
    std::vector<ComputeCapability> out;
    for (const auto& text : f.strings(key, required)) {
      if (auto cc = ComputeCapability::parse(text)) out.push_back(*cc);
      else f.error(f.where(key), fmt::format("'{}' holds a bad compute capability \"{}\"", key, text));
    }
    return out;
  }

  // Reports a second entry with the same key (a version, a GPU name) at its
  // own position, naming the first: a silent second "T4" would change every
  // T4 answer.
  void unique(std::map<std::string, Location>& seen, const std::string& key, const Location& at, std::string_view what) {
    auto [it, fresh] = seen.emplace(key, at);
    if (!fresh) diags.push_back({at, fmt::format("duplicate {} (first at {})", what, it->second.str())});
  }

  std::optional<ComputeCapability> one_cc(TomlFields& f, std::string_view key, bool required) {
    auto text = f.str(key, required);
    if (!text) return std::nullopt;
    auto cc = ComputeCapability::parse(*text);
    if (!cc || text->find('.') == std::string::npos)
      f.error(f.where(key), fmt::format("'{}' must be a compute capability \"X.Y\", not \"{}\"", key, *text));
    return cc;
  }

  Provenance provenance(TomlFields& f) {
    Provenance p;
    p.sources = f.strings("source");
    if (p.sources.empty()) p.sources = default_sources;
    if (p.sources.empty()) f.error(f.where(), "every fact needs a 'source' (a key of sources.toml)");
    for (const auto& s : p.sources)
      if (!known_sources.count(s)) f.error(f.where("source"), fmt::format("unknown source '{}'", s));
    if (auto c = f.str("confidence")) {
      if (*c == "inferred") p.inferred = true;
      else if (*c != "confirmed") f.error(f.where("confidence"), "'confidence' must be \"confirmed\" or \"inferred\"");
    }
    p.inferred_fields = f.strings("inferred");
    p.note = f.str("note").value_or("");
    return p;
  }
};

// `updates = [{ version = "13.0.1", driver = "580.82.07" }, ...]`: each an
// update of this minor with the driver it shipped.
void load_updates(Reader& r, TomlFields& f, CudaRelease& rel) {
  std::map<std::string, Location> seen;
  for (const toml::table* t : f.tables("updates")) {
    auto u = r.fields(*t);
    u.only({"version", "driver"});
    CudaUpdate up{r.version(u, "version"), r.version(u, "driver")};
    if (up.version.empty()) continue;
    if (!rel.version.empty() && up.version.prefix(2) != rel.version.prefix(2))
      u.error(u.where("version"), fmt::format("update {} is not a CUDA {} release", up.version.str(), rel.version.str()));
    r.unique(seen, canonical(up.version), u.where("version"), fmt::format("update {}", up.version.str()));
    rel.updates.push_back(std::move(up));
  }
}

// The verbatim NVIDIA_REQUIRE_CUDA: it must read as the container runtime
// reads it and ask for this release.
void check_require_cuda(TomlFields& f, const CudaRelease& rel) {
  std::string why;
  auto req = RequireCuda::parse(rel.require_cuda, &why);
  if (!req) f.error(f.where("require_cuda"), fmt::format("'require_cuda' is not an NVIDIA_REQUIRE_CUDA string: {}", why));
  else if (!rel.version.empty() && req->cuda.prefix(2) != rel.version.prefix(2))
    f.error(f.where("require_cuda"), fmt::format("'require_cuda' asks for cuda>={}, not {}",
                                                 req->cuda.empty() ? "-" : req->cuda.str(), rel.version.str()));
}

void load_cuda(Reader& r, const toml::table& doc, Catalog& c) {
  auto top = r.fields(doc);
  top.only({"cuda"});
  std::map<std::string, Location> seen;
  for (const toml::table* t : top.tables("cuda", true)) {
    auto f = r.fields(*t);
    f.only({"version", "full", "driver", "min_driver", "ptx_isa", "sass", "deprecated_sass", "require_branches",
            "require_confidence", "require_cuda", "updates", "source", "confidence", "inferred", "note"});
    CudaRelease rel;
    rel.version = r.version(f, "version");
    rel.full = r.version(f, "full");
    rel.driver = r.version(f, "driver");
    rel.min_driver = r.version(f, "min_driver");
    rel.ptx_isa = r.version(f, "ptx_isa", false);
    rel.sass = r.ccs(f, "sass", true);
    rel.deprecated_sass = r.ccs(f, "deprecated_sass", false);
    for (int64_t b : f.integers("require_branches")) rel.require_branches.push_back(static_cast<int>(b));
    rel.require_inferred = f.str("require_confidence").value_or("") == "inferred";
    if (auto req = f.str("require_cuda")) {
      rel.require_cuda = *req;
      check_require_cuda(f, rel);
    }
    load_updates(r, f, rel);
    rel.provenance = r.provenance(f);
    if (!rel.version.empty()) r.unique(seen, rel.version.prefix(2).str(), f.where("version"), "CUDA " + rel.version.str());
    c.cuda.push_back(std::move(rel));
  }
}

void load_cudnn(Reader& r, const toml::table& doc, Catalog& c) {
  auto top = r.fields(doc);
  top.only({"cudnn"});
  std::map<std::string, Location> seen;
  for (const toml::table* t : top.tables("cudnn", true)) {
    auto f = r.fields(*t);
    f.only({"version", "cuda", "cc", "source", "confidence", "note", "inferred"});
    CudnnRelease rel;
    rel.version = r.version(f, "version");
    rel.cuda = r.ranges(f, "cuda");
    if (auto cc = f.str("cc", true)) {
      if (auto range = VersionRange::parse(*cc)) rel.cc = *range;
      else f.error(f.where("cc"), fmt::format("bad capability range \"{}\"", *cc));
    }
    rel.provenance = r.provenance(f);
    if (!rel.version.empty()) r.unique(seen, canonical(rel.version), f.where("version"), "cuDNN " + rel.version.str());
    c.cudnn.push_back(std::move(rel));
  }
}

void load_nccl(Reader& r, const toml::table& doc, Catalog& c) {
  auto top = r.fields(doc);
  top.only({"nccl"});
  std::map<std::string, Location> seen;
  for (const toml::table* t : top.tables("nccl", true)) {
    auto f = r.fields(*t);
    f.only({"version", "cuda", "source", "confidence", "note", "inferred"});
    NcclRelease rel;
    rel.version = r.version(f, "version");
    rel.cuda = r.ranges(f, "cuda");
    rel.provenance = r.provenance(f);
    if (!rel.version.empty()) r.unique(seen, canonical(rel.version), f.where("version"), "NCCL " + rel.version.str());
    c.nccl.push_back(std::move(rel));
  }
}

// A value no source gives may be left out, but only where `inferred` names
// it: then kiln knows it does not know (the plan excludes such a build
// rather than guess), and a forgotten key is still an error.
bool unknown_allowed(TomlFields& f, std::string_view key) {
  if (f.raw().contains(key)) return false;
  std::vector<std::string> inferred;
  if (const toml::node* n = f.raw().get("inferred"); n && n->is_array())
    for (const auto& item : *n->as_array())
      if (auto s = item.value<std::string>()) inferred.push_back(*s);
  return std::find(inferred.begin(), inferred.end(), key) != inferred.end();
}

// `platforms = ["x86_64", "aarch64"]`: the plan's words for CPU platforms.
std::vector<std::string> platform_list(TomlFields& f) {
  std::vector<std::string> out = f.strings("platforms");
  for (const auto& p : out)
    if (p != "x86_64" && p != "aarch64")
      f.error(f.where("platforms"), fmt::format("'platforms' holds \"{}\": give \"x86_64\" and/or \"aarch64\"", p));
  return out;
}

TorchBuild load_torch_build(Reader& r, const toml::table& t) {
  auto f = r.fields(t);
  f.only({"cuda", "cudnn", "nccl", "cublas", "arch_list", "platforms", "source", "confidence", "inferred", "note"});
  TorchBuild b;
  if (f.raw().contains("platforms")) b.platforms = platform_list(f);
  b.cuda = r.version(f, "cuda");
  if (!unknown_allowed(f, "cudnn")) b.cudnn = r.version(f, "cudnn");
  if (!unknown_allowed(f, "nccl")) b.nccl = r.version(f, "nccl");
  if (f.raw().contains("cublas")) b.cublas = r.version(f, "cublas");
  if (auto text = f.str("arch_list", !unknown_allowed(f, "arch_list"))) {
    if (auto arch = ArchList::parse(*text)) b.arch = *arch;
    else f.error(f.where("arch_list"), fmt::format("bad arch list \"{}\"", *text));
  }
  b.provenance = r.provenance(f);
  return b;
}

void load_pytorch(Reader& r, const toml::table& doc, Catalog& c) {
  auto top = r.fields(doc);
  top.only({"pytorch"});
  std::map<std::string, Location> seen;
  for (const toml::table* t : top.tables("pytorch", true)) {
    auto f = r.fields(*t);
    f.only({"version", "python", "build", "default_cuda", "source", "confidence", "inferred", "note"});
    TorchRelease rel;
    rel.version = r.version(f, "version");
    rel.python = f.strings("python", !unknown_allowed(f, "python"));
    if (f.raw().contains("default_cuda")) rel.default_cuda = r.version(f, "default_cuda");
    rel.provenance = r.provenance(f);
    std::map<std::string, Location> builds;
    for (const toml::table* bt : f.tables("build", true)) {
      rel.builds.push_back(load_torch_build(r, *bt));
      const Version& cuda = rel.builds.back().cuda;
      if (!cuda.empty())
        r.unique(builds, cuda.prefix(2).str(), location_of(*bt->get("cuda"), r.file),
                 fmt::format("PyTorch {} build for CUDA {}", rel.version.str(), cuda.str()));
    }
    if (rel.default_cuda && !rel.default_cuda->empty() && !rel.build_for(*rel.default_cuda))
      f.error(f.where("default_cuda"), fmt::format("'default_cuda' {} is none of PyTorch {}'s CUDA builds ({})",
                                                   rel.default_cuda->str(), rel.version.str(), rel.cuda_list()));
    if (!rel.version.empty()) r.unique(seen, canonical(rel.version), f.where("version"), "PyTorch " + rel.version.str());
    c.pytorch.push_back(std::move(rel));
  }
}

// [[architecture]]: name, the capabilities it covers, the first driver that
// supports it and, for old ones, the last branch that still does.
void load_architectures(Reader& r, TomlFields& top, Catalog& c) {
  std::map<std::string, Location> names, ccs;
  for (const toml::table* t : top.tables("architecture")) {
    auto f = r.fields(*t);
    f.only({"name", "cc", "first_driver", "last_branch", "source", "confidence", "inferred", "note"});
    Architecture a;
    a.name = f.str("name", true).value_or("");
    if (f.raw().contains("name") && a.name.empty()) f.error(f.where("name"), "'name' must not be empty");
    for (const auto& text : f.strings("cc", true)) {
      auto cc = ComputeCapability::parse(text);
      if (!cc || text.find('.') == std::string::npos) {
        f.error(f.where("cc"), fmt::format("'cc' holds a bad compute capability \"{}\" (give \"X.Y\")", text));
        continue;
      }
      a.cc.push_back(*cc);
      r.unique(ccs, cc->str(), f.where("cc"), fmt::format("compute capability {} in two architectures", cc->str()));
    }
    a.first_driver = r.version(f, "first_driver", false);  // absent: no floor is known
    if (auto last = f.integer("last_branch")) {
      if (*last < 100 || *last > 9999) f.error(f.where("last_branch"), "'last_branch' must be a driver branch such as 580");
      else a.last_branch = static_cast<unsigned>(*last);
    }
    if (a.last_branch && !a.first_driver.empty() && *a.last_branch < a.first_driver.major())
      f.error(f.where("last_branch"), fmt::format("'last_branch' R{} is older than 'first_driver' {}", *a.last_branch,
                                                  a.first_driver.str()));
    a.provenance = r.provenance(f);
    if (!a.name.empty()) r.unique(names, lower(a.name), f.where("name"), "architecture " + a.name);
    c.architectures.push_back(std::move(a));
  }
}

void load_gpu_entry(Reader& r, TomlFields& f, Catalog& c, std::map<std::string, Location>& seen) {
  f.only({"cc", "names", "platforms", "former_cc", "renamed_in", "source", "confidence", "inferred", "note"});
  auto cc = r.ccs(f, "cc", true);
  Gpu proto;
  if (f.raw().contains("platforms")) {
    proto.platforms = f.strings("platforms");
    for (const auto& p : proto.platforms)
      if (p != "x86_64" && p != "aarch64")
        f.error(f.where("platforms"), fmt::format("'platforms' holds \"{}\": give \"x86_64\" and/or \"aarch64\"", p));
  }
  proto.former_cc = r.one_cc(f, "former_cc", false);
  if (f.raw().contains("renamed_in")) proto.renamed_in = r.version(f, "renamed_in");
  if (f.raw().contains("former_cc") != f.raw().contains("renamed_in"))
    f.error(f.where(), "'former_cc' and 'renamed_in' go together (the capability before that CUDA release, and the release)");
  r.provenance(f);
  if (cc.size() != 1) {
    if (!cc.empty()) f.error(f.where("cc"), "'cc' must be one compute capability");
    return;
  }
  const toml::array* names = f.raw().get("names") ? f.raw().get("names")->as_array() : nullptr;
  std::vector<std::string> list = f.strings("names", true);
  for (size_t i = 0; i < list.size(); ++i) {
    Location at = names && i < names->size() ? location_of(*names->get(i), r.file) : f.where("names");
    r.unique(seen, lower(list[i]), at, fmt::format("GPU name \"{}\" (names are case-insensitive)", list[i]));
    Gpu g = proto;
    g.name = list[i];
    g.cc = cc[0];
    c.gpus.push_back(std::move(g));
  }
}

void load_gpus(Reader& r, const toml::table& doc, Catalog& c) {
  auto top = r.fields(doc);
  top.only({"gpu", "architecture", "source"});
  r.default_sources = top.strings("source");
  std::map<std::string, Location> seen;
  for (const toml::table* t : top.tables("gpu", true)) {
    auto f = r.fields(*t);
    load_gpu_entry(r, f, c, seen);
  }
  load_architectures(r, top, c);
  r.default_sources.clear();
}

void load_bases(Reader& r, const toml::table& doc, Catalog& c) {
  auto top = r.fields(doc);
  top.only({"nvidia", "os"});
  if (const toml::table* nv = top.table("nvidia", true)) {
    auto f = r.fields(*nv);
    f.only({"repository", "require_brands", "source", "cuda"});
    c.nvidia_repository = f.str("repository", true).value_or("");
    c.require_brands = f.strings("require_brands", true);
    r.default_sources = f.strings("source", true);
    for (const toml::table* t : f.tables("cuda", true)) {
      auto bf = r.fields(*t);
      bf.only({"version", "os", "cudnn_variant", "confidence", "source", "note"});
      NvidiaBase b;
      b.cuda = r.version(bf, "version");
      b.os = bf.strings("os", true);
      b.cudnn_variant = bf.str("cudnn_variant", true).value_or("");
      b.provenance = r.provenance(bf);
      c.nvidia_bases.push_back(std::move(b));
    }
    r.default_sources.clear();
  }
  for (const toml::table* t : top.tables("os", true)) {
    auto f = r.fields(*t);
    f.only({"name", "family", "codename", "image", "python"});
    OsInfo o;
    o.name = f.str("name", true).value_or("");
    o.family = f.str("family", true).value_or("");
    o.codename = f.str("codename").value_or("");
    o.image = f.str("image", true).value_or("");
    o.python = f.str("python", true).value_or("");
    c.os.push_back(std::move(o));
  }
}

void load_cuda_recipes(Reader& r, const toml::table& doc, Catalog& c) {
  auto top = r.fields(doc);
  top.only({"cuda"});
  for (const toml::table* t : top.tables("cuda", true)) {
    auto f = r.fields(*t);
    f.only({"os", "os_family", "cuda", "full", "method", "components", "runtime", "devel", "nccl",
            "remove_driver_libs", "devel_from_runtime", "devel_env", "platforms", "source", "confidence", "note"});
    CudaRecipe rec;
    rec.os = f.str("os").value_or("");
    rec.os_family = f.str("os_family").value_or("");
    if (rec.os.empty() == rec.os_family.empty()) f.error(f.where(), "give exactly one of 'os' and 'os_family'");
    rec.cuda = f.str("cuda", true).value_or("*");
    if (rec.cuda != "*" && !Version::parse(rec.cuda)) f.error(f.where("cuda"), "'cuda' must be a version or \"*\"");
    rec.method = f.str("method", true).value_or("");
    if (f.raw().contains("platforms")) rec.platforms = platform_list(f);
    if (rec.method == "apt") {
      rec.full = r.version(f, "full");
      rec.components = f.strings("components");
      rec.runtime = f.strings("runtime", true);
      rec.devel = f.strings("devel", true);
      if (f.raw().contains("nccl")) rec.nccl = r.version(f, "nccl");
      rec.remove_driver_libs = f.boolean("remove_driver_libs").value_or(false);
      rec.devel_from_runtime = f.boolean("devel_from_runtime").value_or(false);
      rec.devel_env = f.strings("devel_env");
      rec.provenance = r.provenance(f);
    } else if (rec.method != "nvidia-base") {
      f.error(f.where("method"), "'method' must be \"nvidia-base\" or \"apt\"");
    }
    c.cuda_recipes.push_back(std::move(rec));
  }
}

void load_torch_recipe(Reader& r, const toml::table& doc, Catalog& c) {
  auto top = r.fields(doc);
  top.only({"pip", "os"});
  if (const toml::table* pip = top.table("pip", true)) {
    auto f = r.fields(*pip);
    f.only({"index_url", "extra_index_urls", "find_links", "no_index", "venv", "packages", "constraints"});
    c.torch_recipe.index_url = f.str("index_url").value_or("");
    c.torch_recipe.extra_index_urls = f.strings("extra_index_urls");
    c.torch_recipe.find_links = f.strings("find_links");
    c.torch_recipe.no_index = f.boolean("no_index").value_or(false);
    c.torch_recipe.venv = f.str("venv", true).value_or("");
    c.torch_recipe.packages = f.strings("packages", true);
    c.torch_recipe.constraints = f.strings("constraints");
  }
  if (const toml::table* os = top.table("os", true)) {
    for (const auto& [family, node] : *os) {
      if (const toml::table* t = node.as_table()) {
        auto f = r.fields(*t);
        f.only({"python_packages"});
        c.torch_recipe.python_packages[std::string(family.str())] = f.strings("python_packages", true);
      }
    }
  }
}

void load_sources(const std::string& file, std::vector<Diagnostic>& diags, Catalog& c) {
  toml::table doc = parse_toml_file(file);
  TomlFields f(doc, file, diags);
  f.only({"catalog_version", "collected", "sources"});
  c.version = f.str("catalog_version", true).value_or("");
  if (const toml::node* n = doc.get("collected")) {
    if (const auto* d = n->as_date()) {
      const toml::date& v = d->get();
      c.collected = fmt::format("{:04}-{:02}-{:02}", v.year, v.month, v.day);
    } else {
      f.error(f.where("collected"), "'collected' must be a TOML date such as 2026-11-30 (no quotes)");
    }
  }
  if (const toml::table* s = f.table("sources", true))
    for (const auto& [key, node] : *s)
      c.sources[std::string(key.str())] = node.value<std::string>().value_or("");
}

// libraries.toml: `[[library]] name, component, role = "core"|"optional",
// operations` (what fails without it; required for optional ones), source.
void load_libraries(Reader& r, const toml::table& doc, Catalog& c) {
  auto top = r.fields(doc);
  top.only({"library", "source"});
  r.default_sources = top.strings("source");
  std::map<std::string, Location> seen;
  for (const toml::table* t : top.tables("library", true)) {
    auto f = r.fields(*t);
    f.only({"name", "component", "role", "operations", "source", "confidence", "inferred", "note"});
    LibraryRole l;
    l.name = f.str("name", true).value_or("");
    l.component = f.str("component", true).value_or("");
    const std::string role = f.str("role", true).value_or("core");
    if (role != "core" && role != "optional") f.error(f.where("role"), "'role' must be \"core\" or \"optional\"");
    l.core = role != "optional";
    l.operations = f.str("operations", !l.core).value_or("");
    l.provenance = r.provenance(f);
    if (l.name.empty() || l.name.find('/') != std::string::npos)
      f.error(f.where("name"), fmt::format("'name' must be a library file name such as libfoo.so, not \"{}\"", l.name));
    r.unique(seen, l.name, f.where("name"), fmt::format("library \"{}\"", l.name));
    c.libraries.push_back(std::move(l));
  }
  r.default_sources.clear();
}

bool is_iso_date(std::string_view d) {
  if (d.size() != 10 || d[4] != '-' || d[7] != '-') return false;
  for (size_t i = 0; i < d.size(); ++i)
    if (i != 4 && i != 7 && (d[i] < '0' || d[i] > '9')) return false;
  return true;
}

// eol.toml: [[cuda]] version / [[os]] name, eol and removal dates.
void load_eol(Reader& r, const toml::table& doc, Catalog& c) {
  auto top = r.fields(doc);
  top.only({"cuda", "os", "source"});
  r.default_sources = top.strings("source");
  std::map<std::string, Location> seen;
  for (const char* kind : {"cuda", "os"}) {
    for (const toml::table* t : top.tables(kind)) {
      auto f = r.fields(*t);
      const char* key = std::string_view(kind) == "cuda" ? "version" : "name";
      f.only({key, "eol", "removal", "source", "confidence", "inferred", "note"});
      EndOfLife e;
      e.kind = kind;
      e.name = f.str(key, true).value_or("");
      e.eol = f.str("eol", true).value_or("");
      e.removal = f.str("removal").value_or("");
      e.provenance = r.provenance(f);
      for (const auto& [field, value] : {std::pair{"eol", e.eol}, std::pair{"removal", e.removal}})
        if (!value.empty() && !is_iso_date(value)) f.error(f.where(field), fmt::format("'{}' must be a date \"YYYY-MM-DD\"", field));
      if (!e.removal.empty() && e.removal < e.eol) f.error(f.where("removal"), "'removal' comes before 'eol'");
      r.unique(seen, e.kind + " " + e.name, f.where(key), fmt::format("{} \"{}\"", kind, e.name));
      c.end_of_life.push_back(std::move(e));
    }
  }
  r.default_sources.clear();
}

using Loader = void (*)(Reader&, const toml::table&, Catalog&);

void load_one(const std::string& file, Loader loader, std::vector<Diagnostic>& diags, Catalog& c) {
  if (!fs::exists(file)) {
    diags.push_back(Diagnostic{Location{file, 0, 0}, "catalog file is missing"});
    return;
  }
  toml::table doc = parse_toml_file(file);
  grammar::check_catalog_strings(doc, file, diags);  // strings that reach Dockerfiles fit their grammar
  Reader r{file, diags, c.sources, {}};
  loader(r, doc, c);
}

}  // namespace

Catalog Catalog::load(const std::string& recipes_dir) {
  Catalog c;
  c.root = recipes_dir;
  std::vector<Diagnostic> diags;
  std::string cat = recipes_dir + "/catalog/";
  std::string inst = recipes_dir + "/install/";
  if (!fs::exists(cat + "sources.toml"))
    throw InputError({recipes_dir}, "not a kiln recipes directory (no catalog/sources.toml); set --recipes or KILN_DATA_DIR");
  load_sources(cat + "sources.toml", diags, c);
  load_one(cat + "cuda.toml", load_cuda, diags, c);
  load_one(cat + "cudnn.toml", load_cudnn, diags, c);
  load_one(cat + "nccl.toml", load_nccl, diags, c);
  load_one(cat + "pytorch.toml", load_pytorch, diags, c);
  load_one(cat + "gpus.toml", load_gpus, diags, c);
  load_one(cat + "bases.toml", load_bases, diags, c);
  if (fs::exists(cat + "libraries.toml")) load_one(cat + "libraries.toml", load_libraries, diags, c);
  if (fs::exists(cat + "eol.toml")) load_one(cat + "eol.toml", load_eol, diags, c);
  load_one(inst + "cuda.toml", load_cuda_recipes, diags, c);
  load_one(inst + "pytorch.toml", load_torch_recipe, diags, c);
  if (!diags.empty()) throw InputError(std::move(diags));
  return c;
}

}  // namespace kiln::catalog
