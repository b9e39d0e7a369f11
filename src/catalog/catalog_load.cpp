// Reads the catalog's TOML files into plain data, checking every field.
#include <filesystem>

#include <fmt/format.h>

#include "catalog/catalog.h"
#include "util/toml_reader.h"
#include "util/validate.h"

namespace kiln::catalog {

namespace {

namespace fs = std::filesystem;

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

void load_cuda(Reader& r, const toml::table& doc, Catalog& c) {
  auto top = r.fields(doc);
  top.only({"cuda"});
  for (const toml::table* t : top.tables("cuda", true)) {
    auto f = r.fields(*t);
    f.only({"version", "full", "driver", "min_driver", "ptx_isa", "sass", "deprecated_sass", "require_branches",
            "require_confidence", "require_cuda", "source", "confidence", "note"});
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
    rel.require_cuda = f.str("require_cuda").value_or("");
    rel.provenance = r.provenance(f);
    c.cuda.push_back(std::move(rel));
  }
}

void load_cudnn(Reader& r, const toml::table& doc, Catalog& c) {
  auto top = r.fields(doc);
  top.only({"cudnn"});
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
    c.cudnn.push_back(std::move(rel));
  }
}

void load_nccl(Reader& r, const toml::table& doc, Catalog& c) {
  auto top = r.fields(doc);
  top.only({"nccl"});
  for (const toml::table* t : top.tables("nccl", true)) {
    auto f = r.fields(*t);
    f.only({"version", "cuda", "source", "confidence", "note", "inferred"});
    NcclRelease rel;
    rel.version = r.version(f, "version");
    rel.cuda = r.ranges(f, "cuda");
    rel.provenance = r.provenance(f);
    c.nccl.push_back(std::move(rel));
  }
}

TorchBuild load_torch_build(Reader& r, const toml::table& t) {
  auto f = r.fields(t);
  f.only({"cuda", "cudnn", "nccl", "cublas", "arch_list", "source", "confidence", "inferred", "note"});
  TorchBuild b;
  b.cuda = r.version(f, "cuda");
  b.cudnn = r.version(f, "cudnn");
  b.nccl = r.version(f, "nccl");
  if (f.raw().contains("cublas")) b.cublas = r.version(f, "cublas");
  if (auto text = f.str("arch_list", true)) {
    if (auto arch = ArchList::parse(*text)) b.arch = *arch;
    else f.error(f.where("arch_list"), fmt::format("bad arch list \"{}\"", *text));
  }
  b.provenance = r.provenance(f);
  return b;
}

void load_pytorch(Reader& r, const toml::table& doc, Catalog& c) {
  auto top = r.fields(doc);
  top.only({"pytorch"});
  for (const toml::table* t : top.tables("pytorch", true)) {
    auto f = r.fields(*t);
    f.only({"version", "python", "default_cuda", "build", "source", "confidence", "inferred", "note"});
    TorchRelease rel;
    rel.version = r.version(f, "version");
    rel.python = f.strings("python", true);
    if (f.raw().contains("default_cuda")) rel.default_cuda = r.version(f, "default_cuda");
    rel.provenance = r.provenance(f);
    for (const toml::table* bt : f.tables("build", true)) rel.builds.push_back(load_torch_build(r, *bt));
    c.pytorch.push_back(std::move(rel));
  }
}

void load_gpus(Reader& r, const toml::table& doc, Catalog& c) {
  auto top = r.fields(doc);
  top.only({"gpu", "source"});
  r.default_sources = top.strings("source");
  for (const toml::table* t : top.tables("gpu", true)) {
    auto f = r.fields(*t);
    f.only({"cc", "names", "source"});
    auto cc = r.ccs(f, "cc", true);
    r.provenance(f);
    if (cc.size() != 1) continue;
    for (const auto& name : f.strings("names", true)) c.gpus.push_back({name, cc[0]});
  }
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
            "remove_driver_libs", "devel_from_runtime", "devel_env", "source", "confidence", "note"});
    CudaRecipe rec;
    rec.os = f.str("os").value_or("");
    rec.os_family = f.str("os_family").value_or("");
    if (rec.os.empty() == rec.os_family.empty()) f.error(f.where(), "give exactly one of 'os' and 'os_family'");
    rec.cuda = f.str("cuda", true).value_or("*");
    if (rec.cuda != "*" && !Version::parse(rec.cuda)) f.error(f.where("cuda"), "'cuda' must be a version or \"*\"");
    rec.method = f.str("method", true).value_or("");
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
    f.only({"index", "venv", "packages"});
    c.torch_recipe.index = f.str("index", true).value_or("");
    c.torch_recipe.venv = f.str("venv", true).value_or("");
    c.torch_recipe.packages = f.strings("packages", true);
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
  f.only({"catalog_version", "sources"});
  c.version = f.str("catalog_version", true).value_or("");
  if (const toml::table* s = f.table("sources", true))
    for (const auto& [key, node] : *s)
      c.sources[std::string(key.str())] = node.value<std::string>().value_or("");
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
  load_one(inst + "cuda.toml", load_cuda_recipes, diags, c);
  load_one(inst + "pytorch.toml", load_torch_recipe, diags, c);
  if (!diags.empty()) throw InputError(std::move(diags));
  return c;
}

}  // namespace kiln::catalog
