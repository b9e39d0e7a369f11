// Resolves a combination's exact versions and how each part is installed.
// Each check is one catalog rule; the first that fails excludes the
// combination, and its message is what `kiln plan` shows as the reason.
#include <algorithm>

#include <fmt/format.h>

#include "plan/internal.h"
#include "util/text.h"

namespace kiln::plan::detail {

namespace {

using catalog::Catalog;

std::string axis(const Combo& combo, const char* name) {
  auto it = combo.axes.find(name);
  return it == combo.axes.end() ? "" : it->second;
}

void exclude(Combo& combo, std::string rule, std::string reason) {
  combo.status = Status::excluded;
  combo.rule = std::move(rule);
  combo.reason = std::move(reason);
}

void add_sources(Combo& combo, const catalog::Provenance& p) {
  for (const auto& s : p.sources)
    if (std::find(combo.sources.begin(), combo.sources.end(), s) == combo.sources.end()) combo.sources.push_back(s);
}

void note_inferred(Combo& combo, const catalog::Provenance& p, const std::string& what) {
  add_sources(combo, p);
  if (!p.inferred) return;
  std::string fields = p.inferred_fields.empty() ? "" : " (" + join(p.inferred_fields, ", ") + ")";
  std::string text = fmt::format("{}{} is inferred [{}]", what, fields, join(p.sources, ", "));
  if (!p.note.empty()) text += ": " + p.note;
  combo.inferred.push_back(std::move(text));
}

// A matrix [[base]] entry overrides the catalog's base; the entry naming the
// most of os/cuda/flavor wins.
const matrix::BaseOverride* base_override(const Combo& combo, const matrix::Matrix& m) {
  const matrix::BaseOverride* best = nullptr;
  int best_score = -1;
  for (const auto& b : m.bases) {
    auto fits = [&](const std::string& want, const std::string& have) { return want.empty() || want == have; };
    Version cuda = Version::must(axis(combo, "cuda"));
    bool cuda_fits = b.cuda.empty() || (Version::parse(b.cuda) && cuda.matches(*Version::parse(b.cuda)));
    if (!fits(b.os, axis(combo, "os")) || !cuda_fits || !fits(b.flavor, axis(combo, "flavor")) ||
        !fits(b.platform, combo.platform))
      continue;
    int score = !b.os.empty() + !b.cuda.empty() + !b.flavor.empty() + !b.platform.empty();
    if (score > best_score) {
      best = &b;
      best_score = score;
    }
  }
  return best;
}

// pip's sources and pins: the recipe's [pip], each key the matrix's [pip]
// gives replacing the recipe's. Patterns whose value the catalog does not
// know ({cudnn} of a build without one) are left out, not guessed.
void resolve_pip(Install& in, const catalog::TorchRecipe& r, const matrix::Pip& mp,
                 const std::map<std::string, std::string>& vars) {
  auto known = [&](const std::string& pattern) {
    for (const auto& [name, value] : vars)
      if (value.empty() && pattern.find("{" + name + "}") != std::string::npos) return false;
    return true;
  };
  auto expand_all = [&](const std::vector<std::string>& patterns) {
    std::vector<std::string> out;
    for (const auto& p : patterns)
      if (known(p)) out.push_back(expand_braces(p, vars));
    return out;
  };
  in.torch_no_index = mp.no_index.value_or(r.no_index);
  if (!in.torch_no_index) {
    in.torch_index = expand_braces(mp.index_url.value_or(r.index_url), vars);
    in.torch_extra_indexes = expand_all(mp.extra_index_urls.value_or(r.extra_index_urls));
  }
  if (mp.find_links) {
    for (const auto& fl : *mp.find_links) {
      if (fl.directory.empty()) {
        in.torch_find_links.push_back(fl.text);
      } else {
        in.torch_wheel_dirs.push_back(fl.directory);
        in.torch_wheel_dirs_as_written.push_back(fl.text);
      }
    }
  } else {
    in.torch_find_links = expand_all(r.find_links);
  }
  in.torch_packages = expand_all(mp.packages.value_or(r.packages));
  in.torch_constraints = expand_all(r.constraints);
  in.venv = r.venv;
  in.pip_secret = mp.secret;
  in.pip_secret_env = mp.secret_env;
  in.pip_secret_file = mp.secret_file;
}

bool resolve_pytorch(Combo& combo, const Catalog& c, const catalog::CudaRelease& cuda,
                     const catalog::OsInfo& os, const matrix::Pip& pip) {
  std::string want = axis(combo, "pytorch");
  if (want.empty() || want == "none") return true;
  const catalog::TorchRelease* rel = c.find_pytorch(Version::must(want));
  const catalog::TorchBuild* build = rel->build_for(cuda.version);
  if (!build) {
    exclude(combo, "pytorch-cuda-build",
            fmt::format("PyTorch {} publishes no CUDA {} build (its CUDA builds: {})", rel->version.str(),
                        cuda.version.str(), rel->cuda_list()));
    return false;
  }
  if (!build->serves(combo.platform)) {
    exclude(combo, "pytorch-platform",
            fmt::format("the catalog records no {} wheels of PyTorch {}+cu{}{} (its build lists platforms {}); "
                        "add them to recipes/catalog/pytorch.toml with their source",
                        combo.platform, rel->version.str(), cuda.version.major(), cuda.version.minor(),
                        join(build->platforms, ", ")));
    return false;
  }
  // kiln builds only what it can check: a wheel whose bundled versions or
  // arch list no source gives cannot be verified against the plan.
  std::vector<std::string> unknown;
  if (build->cudnn.empty()) unknown.push_back("cuDNN");
  if (build->nccl.empty()) unknown.push_back("NCCL");
  if (build->arch.empty()) unknown.push_back("arch list");
  if (rel->python.empty()) unknown.push_back("Python versions");
  if (!unknown.empty()) {
    exclude(combo, "pytorch-build-unknown",
            fmt::format("the catalog does not know the {} of PyTorch {}+cu{}{} (marked inferred, no source gives them), so "
                        "kiln cannot check what the image holds",
                        join(unknown, ", "), rel->version.str(), cuda.version.major(), cuda.version.minor()));
    note_inferred(combo, build->provenance, fmt::format("PyTorch {}+cu{}{}", rel->version.str(), cuda.version.major(), cuda.version.minor()));
    return false;
  }
  combo.versions.pytorch = rel->version.str();
  combo.versions.cudnn = build->cudnn.str();
  combo.versions.nccl = build->nccl.str();
  combo.arch = build->arch;
  note_inferred(combo, rel->provenance, "PyTorch " + rel->version.str());
  note_inferred(combo, build->provenance, fmt::format("PyTorch {}+cu{}{}", rel->version.str(), cuda.version.major(), cuda.version.minor()));
  // The catalog reads a build's pins and arch list from its x86_64 wheels;
  // the aarch64 wheel is only known to exist. Say so rather than vouch.
  if (combo.platform == "aarch64")
    combo.inferred.push_back(fmt::format(
        "PyTorch {}+cu{}{} for aarch64: its cuDNN, NCCL and arch list are the x86_64 wheel's (the catalog records only "
        "that the aarch64 wheel exists; kiln verify's static check reads the image's own) [{}]",
        rel->version.str(), cuda.version.major(), cuda.version.minor(), join(build->provenance.sources, ", ")));

  std::string cudnn = axis(combo, "cudnn");
  if (cudnn == "none") {
    exclude(combo, "pytorch-bundles-cudnn",
            fmt::format("PyTorch {} wheels bundle cuDNN {}; cudnn = \"none\" cannot hold", rel->version.str(), build->cudnn.str()));
    return false;
  }
  if (!cudnn.empty() && !build->cudnn.matches(Version::must(cudnn))) {
    exclude(combo, "pytorch-cudnn",
            fmt::format("PyTorch {}+cu{}{} bundles cuDNN {}, not cuDNN {}", rel->version.str(), cuda.version.major(),
                        cuda.version.minor(), build->cudnn.str(), cudnn));
    return false;
  }

  // kiln installs the distribution's Python; the wheel must exist for it.
  std::string python = axis(combo, "python");
  if (!python.empty() && python != os.python) {
    exclude(combo, "os-python",
            fmt::format("{} ships Python {}, not {} (kiln installs the distribution's Python)", os.name, os.python, python));
    return false;
  }
  python = os.python;
  if (std::find(rel->python.begin(), rel->python.end(), python) == rel->python.end()) {
    exclude(combo, "pytorch-python",
            fmt::format("PyTorch {} publishes no wheels for Python {} (the Python of {}; wheels: {})", rel->version.str(),
                        python, os.name, join(rel->python, ", ")));
    return false;
  }
  combo.versions.python = python;

  const catalog::TorchRecipe& r = c.torch_recipe;
  std::map<std::string, std::string> vars{{"pytorch", combo.versions.pytorch},
                                          {"cuda_nodot", std::to_string(cuda.version.major()) + std::to_string(cuda.version.minor())},
                                          {"cuda_major", std::to_string(cuda.version.major())},
                                          {"cudnn", combo.versions.cudnn},
                                          {"nccl", combo.versions.nccl}};
  resolve_pip(combo.install, r, pip, vars);
  auto pp = r.python_packages.find(os.family);
  if (pp != r.python_packages.end()) combo.install.python_packages = pp->second;
  return true;
}

// Images without PyTorch get cuDNN only where a recipe or base provides it.
bool resolve_standalone_cudnn(Combo& combo, const Catalog& c, const catalog::CudaRelease& cuda, bool nvidia_base) {
  std::string want = axis(combo, "cudnn");
  if (want.empty() || want == "none" || !combo.versions.pytorch.empty()) return true;
  const catalog::CudnnRelease* rel = nullptr;
  for (const auto& r : c.cudnn)  // newest release matching the axis that supports this CUDA
    if (r.version.matches(Version::must(want)) && r.supports_cuda(cuda.version) && (!rel || r.version > rel->version))
      rel = &r;
  if (!rel) {
    const catalog::CudnnRelease* any = c.find_cudnn(Version::must(want));
    std::vector<std::string> ranges;
    if (any)
      for (const auto& r : any->cuda) ranges.push_back(r.str());
    exclude(combo, "cudnn-cuda",
            any ? fmt::format("cuDNN {} supports CUDA {}, not {}", any->version.str(), join(ranges, ", "), cuda.version.str())
                : fmt::format("no cuDNN {} release supports CUDA {}", want, cuda.version.str()));
    return false;
  }
  if (!nvidia_base) {
    exclude(combo, "cudnn-recipe",
            fmt::format("no recipe installs cuDNN on {}: Debian ships only a downloader that needs NVIDIA's servers", axis(combo, "os")));
    return false;
  }
  combo.versions.cudnn = rel->version.str();
  note_inferred(combo, rel->provenance, "cuDNN " + rel->version.str());
  return true;
}

bool resolve_base(Combo& combo, const matrix::Matrix& m, const Catalog& c, const catalog::CudaRelease& cuda,
                  const catalog::OsInfo& os, const catalog::CudaRecipe& recipe) {
  const matrix::BaseOverride* over = base_override(combo, m);
  bool devel = combo.versions.flavor == "devel";
  if (recipe.method == "nvidia-base") {
    const catalog::NvidiaBase* nb = c.find_nvidia_base(cuda.version);
    bool published = nb && std::find(nb->os.begin(), nb->os.end(), os.name) != nb->os.end();
    if (!published && !over) {
      exclude(combo, "nvidia-base",
              fmt::format("{} publishes no CUDA {} image for {}", c.nvidia_repository, cuda.version.str(), os.name));
      return false;
    }
    if (nb) note_inferred(combo, nb->provenance, fmt::format("{}:{} for {}", c.nvidia_repository, cuda.full.str(), os.name));
    bool with_cudnn = !combo.versions.cudnn.empty() && combo.versions.pytorch.empty();
    std::string variant = (with_cudnn && nb ? nb->cudnn_variant + "-" : "") + (devel ? "devel" : "runtime");
    combo.base = over ? over->image : fmt::format("{}:{}-{}-{}", c.nvidia_repository, cuda.full.str(), variant, os.name);
    combo.versions.cuda = cuda.full.str();
    combo.install.method = "nvidia-base";
    return true;
  }
  combo.base = over ? over->image : os.image;
  combo.versions.cuda = recipe.full.str();
  combo.install.method = recipe.method;
  combo.install.components = recipe.components;
  combo.install.packages = recipe.runtime;
  if (devel) {
    combo.install.packages.insert(combo.install.packages.end(), recipe.devel.begin(), recipe.devel.end());
    combo.install.devel_packages = recipe.devel;
    combo.install.env = recipe.devel_env;
  }
  combo.install.devel_from_runtime = recipe.devel_from_runtime;
  combo.install.remove_driver_libs = recipe.remove_driver_libs;
  if (recipe.nccl && combo.versions.nccl.empty()) combo.versions.nccl = recipe.nccl->str();
  note_inferred(combo, recipe.provenance, "CUDA " + recipe.full.str() + " packages for " + os.name);
  return true;
}

std::string cuda_recipes_for(const Catalog& c, const catalog::OsInfo& os) {
  std::vector<std::string> have;
  for (const auto& r : c.cuda_recipes)
    if (r.os == os.name) have.push_back(r.cuda);
  return have.empty() ? "none" : join(have, ", ");
}

}  // namespace

void resolve(Combo& combo, const matrix::Matrix& m, const Catalog& c) {
  const catalog::CudaRelease& cuda = *c.find_cuda(Version::must(axis(combo, "cuda")));
  const catalog::OsInfo& os = *c.find_os(axis(combo, "os"));
  combo.versions.os = os.name;
  combo.versions.flavor = axis(combo, "flavor");
  combo.versions.cuda = cuda.full.str();
  add_sources(combo, cuda.provenance);

  const catalog::CudaRecipe* recipe = c.find_cuda_recipe(os, cuda.version);
  if (!recipe) {
    exclude(combo, "cuda-recipe",
            fmt::format("no recipe installs CUDA {} on {} (recipes for {}: CUDA {})", cuda.version.str(), os.name,
                        os.name, cuda_recipes_for(c, os)));
    return;
  }
  if (!recipe->serves(combo.platform)) {
    exclude(combo, "cuda-recipe-platform",
            fmt::format("the recipe installing CUDA {} on {} serves {} only, not {}", cuda.version.str(), os.name,
                        join(recipe->platforms, ", "), combo.platform));
    return;
  }
  if (!resolve_pytorch(combo, c, cuda, os, m.pip)) return;
  if (!resolve_standalone_cudnn(combo, c, cuda, recipe->method == "nvidia-base")) return;
  if (!resolve_base(combo, m, c, cuda, os, *recipe)) return;
  if (!combo.versions.nccl.empty())
    if (const catalog::NcclRelease* n = c.find_nccl(Version::must(combo.versions.nccl)))
      note_inferred(combo, n->provenance, "NCCL " + n->version.str());
}

}  // namespace kiln::plan::detail
