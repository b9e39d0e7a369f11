// Lookups over the loaded catalog. Loading lives in catalog_load.cpp.
#include "catalog/catalog.h"

#include <algorithm>
#include <cctype>

#include "util/text.h"

namespace kiln::catalog {

bool CudaRelease::can_target(const ComputeCapability& cc) const {
  ComputeCapability plain{cc.major, cc.minor, 0};
  return std::find(sass.begin(), sass.end(), plain) != sass.end();
}

Version CudaRelease::first_driver() const {
  Version first = driver;
  for (const auto& u : updates)
    if (!u.driver.empty() && (first.empty() || u.driver < first)) first = u.driver;
  return first;
}

ComputeCapability Gpu::cc_under(const Version& cuda) const {
  if (former_cc && renamed_in && !cuda.empty() && cuda.prefix(2) < renamed_in->prefix(2)) return *former_cc;
  return cc;
}

bool TorchBuild::serves(std::string_view platform) const {
  return std::find(platforms.begin(), platforms.end(), platform) != platforms.end();
}

bool CudaRecipe::serves(std::string_view platform) const {
  return std::find(platforms.begin(), platforms.end(), platform) != platforms.end();
}

bool Gpu::runs_on(std::string_view platform) const {
  return std::find(platforms.begin(), platforms.end(), platform) != platforms.end();
}

std::string CudaRelease::sass_range() const {
  if (sass.empty()) return "none";
  return sass.front().str() + "–" + sass.back().str();
}

bool CudnnRelease::supports_cuda(const Version& v) const {
  return std::any_of(cuda.begin(), cuda.end(), [&](const VersionRange& r) { return r.contains(v); });
}

const TorchBuild* TorchRelease::build_for(const Version& cuda_version) const {
  for (const auto& b : builds)
    if (b.cuda.matches(cuda_version.prefix(2)) && cuda_version.matches(b.cuda)) return &b;
  return nullptr;
}

std::string TorchRelease::cuda_list() const {
  std::vector<std::string> out;
  for (const auto& b : builds) out.push_back(b.cuda.str());
  return join(out, ", ");
}

namespace {

// Newest entry whose version matches the pattern as written ("2.6" -> 2.6.x).
template <typename T>
const T* newest_matching(const std::vector<T>& items, const Version& pattern) {
  const T* best = nullptr;
  for (const auto& item : items)
    if (item.version.matches(pattern) && (!best || item.version > best->version)) best = &item;
  return best;
}

template <typename T>
std::string version_list(const std::vector<T>& items, size_t components) {
  std::vector<std::string> out;
  for (const auto& item : items) out.push_back(item.version.prefix(components).str());
  return join(out, ", ");
}

}  // namespace

const CudaRelease* Catalog::find_cuda(const Version& v) const {
  for (const auto& c : cuda)
    if (v.prefix(2) == c.version && (v.parts().size() <= 2 || v.matches(c.full) || c.full.matches(v)))
      return &c;
  return nullptr;
}

const TorchRelease* Catalog::find_pytorch(const Version& v) const { return newest_matching(pytorch, v); }
const CudnnRelease* Catalog::find_cudnn(const Version& v) const { return newest_matching(cudnn, v); }
const NcclRelease* Catalog::find_nccl(const Version& v) const { return newest_matching(nccl, v); }

const CudnnRelease* Catalog::cudnn_entry_for(const Version& v) const {
  if (const CudnnRelease* same = find_cudnn(v.prefix(2))) return same;
  const CudnnRelease* older = nullptr;
  const CudnnRelease* newer = nullptr;
  for (const auto& r : cudnn) {
    if (r.version.major() != v.major()) continue;
    if (r.version < v && (!older || r.version > older->version)) older = &r;
    if (r.version > v && (!newer || r.version < newer->version)) newer = &r;
  }
  return older ? older : newer;
}

const Gpu* Catalog::find_gpu(std::string_view name) const {
  std::string wanted = lower(name);
  for (const auto& g : gpus)
    if (lower(g.name) == wanted) return &g;
  return nullptr;
}

const LibraryRole* Catalog::library_role(std::string_view path) const {
  const auto slash = path.rfind('/');
  const std::string_view base = slash == std::string_view::npos ? path : path.substr(slash + 1);
  for (const auto& l : libraries)
    if (base.starts_with(l.name)) return &l;
  return nullptr;
}

const Architecture* Catalog::architecture_of(const ComputeCapability& cc) const {
  for (const auto& a : architectures)
    for (const auto& x : a.cc)
      if (x.major == cc.major && x.minor == cc.minor) return &a;
  return nullptr;
}

const OsInfo* Catalog::find_os(std::string_view name) const {
  for (const auto& o : os)
    if (o.name == name) return &o;
  return nullptr;
}

const NvidiaBase* Catalog::find_nvidia_base(const Version& v) const {
  for (const auto& b : nvidia_bases)
    if (b.cuda == v.prefix(2)) return &b;
  return nullptr;
}

const CudaRecipe* Catalog::find_cuda_recipe(const OsInfo& o, const Version& v) const {
  // An exact OS entry wins over a family-wide one.
  const CudaRecipe* family_match = nullptr;
  for (const auto& r : cuda_recipes) {
    bool cuda_ok = r.cuda == "*" || Version::must(r.cuda) == v.prefix(2);
    if (!cuda_ok) continue;
    if (r.os == o.name) return &r;
    if (r.os.empty() && r.os_family == o.family && !family_match) family_match = &r;
  }
  return family_match;
}

std::optional<ComputeCapability> Catalog::resolve_gpu(std::string_view text) const {
  if (const Gpu* g = find_gpu(text)) return g->cc;
  return ComputeCapability::parse(text);
}

std::optional<ComputeCapability> Catalog::resolve_gpu(std::string_view text, const Version& cuda) const {
  if (const Gpu* g = find_gpu(text)) return g->cc_under(cuda);
  return ComputeCapability::parse(text);
}

std::string Catalog::gpu_name(const ComputeCapability& cc) const {
  for (const auto& g : gpus)
    if (g.cc.major == cc.major && g.cc.minor == cc.minor) return g.name;
  return "";
}

std::string Catalog::known_cuda() const { return version_list(cuda, 2); }
std::string Catalog::known_pytorch() const { return version_list(pytorch, 2); }
std::string Catalog::known_os() const {
  std::vector<std::string> out;
  for (const auto& o : os) out.push_back(o.name);
  return join(out, ", ");
}

const EndOfLife* Catalog::find_end_of_life(std::string_view kind, std::string_view name) const {
  for (const auto& e : end_of_life)
    if (e.kind == kind && e.name == name) return &e;
  return nullptr;
}

}  // namespace kiln::catalog
