// The static check: what the plan promised against what the image holds.
// Reads the image's config from the engine and its files from a saved
// archive (no container runs, no GPU needed).
#include <fmt/format.h>

#include "audit/audit.h"
#include "audit/components.h"
#include "audit/layer_cache.h"
#include "audit/scan.h"
#include "audit/torch_arch.h"
#include "audit/verdict.h"
#include "render/render.h"
#include "util/cc.h"
#include "util/text.h"
#include "util/version.h"
#include "build/build.h"
#include "verify/internal.h"
#include "image/registry_source.h"

#include <functional>

namespace kiln::verify::detail {

namespace {

struct Findings {
  std::vector<std::string> problems;
  nlohmann::json detail = nlohmann::json::object();
  void problem(std::string p) { problems.push_back(std::move(p)); }
};

std::string env_value(const engine::ImageInfo& info, const std::string& key) {
  for (const auto& kv : info.env)
    if (kv.rfind(key + "=", 0) == 0) return kv.substr(key.size() + 1);
  return "";
}

// `labels`: what the rendered Dockerfile sets (render::Rendered::labels),
// so the template is the one place that names them.
void check_config(const plan::Combo& c, const plan::Plan& p, const std::map<std::string, std::string>& labels,
                  const engine::ImageInfo& info, Findings& f) {
  std::string require = env_value(info, "NVIDIA_REQUIRE_CUDA");
  if (require != c.require_cuda)
    f.problem(fmt::format("NVIDIA_REQUIRE_CUDA is \"{}\", the plan says \"{}\"", require.substr(0, 80), c.require_cuda.substr(0, 80)));
  std::string arch = env_value(info, "NVIDIA_REQUIRE_ARCH");
  if (arch != require_arch(c.arch))
    f.problem(fmt::format("NVIDIA_REQUIRE_ARCH is \"{}\", the plan's arch list {} gives \"{}\"", arch, c.arch.str(), require_arch(c.arch)));
  for (const auto& [key, want] : labels) {
    auto it = info.labels.find(key);
    std::string have = it == info.labels.end() ? "" : it->second;
    if (have != want) f.problem(fmt::format("label {} is \"{}\", the plan says \"{}\"", key, have, want));
  }
  if (info.user != p.user) f.problem(fmt::format("the image runs as \"{}\", the plan says \"{}\"", info.user, p.user));
  f.detail["user"] = info.user;
}

// [budget]: an image over its flavor's size fails, its largest layers named
// so the reason is plain (a compiler in a runtime image, or CUDA libraries
// that the pip wheels bring again, are the usual ones).
void check_budget(const plan::Combo& c, const plan::Plan& p, const engine::ImageInfo& info,
                  const std::function<std::vector<engine::HistoryEntry>()>& history, Findings& f) {
  f.detail["size"] = info.size;
  auto budget = p.budget.bytes.find(c.versions.flavor);
  if (budget == p.budget.bytes.end()) return;
  f.detail["budget"] = budget->second;
  if (info.size <= budget->second) return;
  std::vector<std::string> layers;
  for (const auto& l : engine::largest_layers(history(), 3)) layers.push_back(build::layer_line(l, 70));
  f.problem(fmt::format("the image is {} ({} bytes), over the {} budget of {} ([budget] {} = \"{}\"); its largest "
                        "layers: {}",
                        build::human_size(info.size), info.size, c.versions.flavor, build::human_size(budget->second),
                        c.versions.flavor, p.budget.written.at(c.versions.flavor), join(layers, "; ")));
}

// A planned version matches what was found when every component the plan
// names is equal ("12.4" plans match a 12.4.127 library).
bool same_version(const std::string& planned, const std::string& found, size_t components) {
  auto a = Version::parse(planned), b = Version::parse(found);
  return a && b && a->prefix(components) == b->prefix(components);
}

void expect(const char* what, const std::string& planned, const std::vector<audit::Found>& found, size_t components,
            Findings& f) {
  nlohmann::json seen = nlohmann::json::array();
  for (const auto& x : found) seen.push_back({{"version", x.version}, {"path", x.path}});
  f.detail["found"][what] = seen;
  if (planned.empty()) return;
  if (found.empty()) {
    f.problem(fmt::format("the plan promises {} {}, the image has none", what, planned));
    return;
  }
  for (const auto& x : found)
    if (same_version(planned, x.version, components)) return;
  f.problem(fmt::format("the plan promises {} {}, the image has {} ({})", what, planned, found[0].version, found[0].path));
}

std::string names(const std::vector<ComputeCapability>& ccs, bool ptx) {
  std::string out;
  for (const auto& cc : ccs) out += (out.empty() ? "" : ", ") + (ptx ? cc.compute() : cc.sm());
  return out.empty() ? "none" : out;
}

// PyTorch compiles libtorch_cuda.so for exactly TORCH_CUDA_ARCH_LIST: the
// list read back from it (audit::torch_arch_list, the survey's majority
// rule, so the few sm_90a/sm_100a attention kernels do not count) must equal
// the catalog's: SASS for each entry, PTX for the +PTX entries, nothing more.
void check_torch_arch(const plan::Combo& c, const std::vector<audit::FatbinScan>& scans, Findings& f) {
  for (const auto& s : scans) {
    if (!s.path.ends_with("torch/lib/libtorch_cuda.so") || !s.info) continue;
    audit::TorchArchList read = audit::torch_arch_list(s.info->entries);
    auto want = c.arch;
    std::sort(want.sass.begin(), want.sass.end());
    std::sort(want.ptx.begin(), want.ptx.end());
    f.detail["torch"]["arch"] = {{"path", s.path}, {"read", read.list.str()}, {"promised", c.arch.str()},
                                 {"specific", read.specific}};
    if (read.list.sass != want.sass)
      f.problem(fmt::format("{} carries SASS for {} in most of its fat binaries, the arch list {} promises {}", s.path,
                            names(read.list.sass, false), c.arch.str(), names(want.sass, false)));
    if (read.list.ptx != want.ptx)
      f.problem(fmt::format("{} carries PTX for {}, the arch list {} promises {} (its +PTX entries)", s.path,
                            names(read.list.ptx, true), c.arch.str(), names(want.ptx, true)));
    return;
  }
  f.problem(fmt::format("the plan promises PyTorch {} built for {}, the image has no readable torch/lib/libtorch_cuda.so",
                        c.versions.pytorch, c.arch.str()));
}

// A capability one of torch/lib's libraries other than libtorch_cuda.so
// cannot run on (the gap text starts with the library's path).
bool torch_side_library(const std::string& gap) {
  const auto lib = gap.find("torch/lib/lib");
  const auto space = gap.find(' ');
  return lib != std::string::npos && lib < space && gap.substr(0, space).find("/libtorch_cuda.so") == std::string::npos &&
         gap.compare(space, 15, " cannot run on ") == 0;  // an unreadable one stays a problem
}

// The device code the image carries, read from its fat binaries, against
// the arch list it promises (the label equals the plan's, checked above).
// `cat` (may be null) names the libraries a component can do without.
void check_device_code(const plan::Combo& c, const image::ImageFs& fs, const audit::Prescanned& pre,
                       const catalog::Catalog* cat, Findings& f) {
  const auto scans = audit::scan_image_binaries(fs, &pre);  // every ELF file, by its magic (audit/scan.h)
  if (!c.versions.pytorch.empty()) check_torch_arch(c, scans, f);
  nlohmann::json libs = nlohmann::json::array();
  for (const auto& s : scans) {
    if (!s.info || !s.info->has_device_code()) continue;
    nlohmann::json l = {{"path", s.path}, {"sass", nlohmann::json::array()}, {"ptx", nlohmann::json::array()}};
    for (const auto& a : s.info->sass) l["sass"].push_back(a.sm());
    for (const auto& a : s.info->ptx) l["ptx"].push_back(a.compute());
    libs.push_back(std::move(l));
  }
  f.detail["device_code"] = {{"promised", c.arch.str()}, {"libraries", std::move(libs)}};
  for (auto& gap : audit::arch_promise_gaps(scans, c.arch)) {
    // PyTorch's arch list is what libtorch_cuda.so (torch.cuda.get_arch_list())
    // is built for, checked for equality above; its other libraries keep
    // their own lists (2.11.0+cu130's libtorch_cuda_linalg.so, MAGMA: no
    // sm_75 in 99 fat binaries). A gap there is upstream's: reported, not failed.
    if (!c.versions.pytorch.empty() && torch_side_library(gap)) {
      f.detail["warnings"].push_back(std::move(gap));
    } else if (const catalog::LibraryRole* role = cat ? cat->library_role(gap.substr(0, gap.find(' '))) : nullptr;
               role && !role->core) {
      // A library the catalog calls optional for its component (NVSHMEM,
      // cuFFT...): what `kiln audit` calls `partial`. Named, not failed.
      f.detail["warnings"].push_back(fmt::format("{} (optional: {} fail there)", gap,
                                                 role->operations.empty() ? role->component : role->operations));
    } else {
      f.problem(std::move(gap));
    }
  }
}

size_t components_of(const std::string& v) {
  auto parsed = Version::parse(v);
  return parsed ? parsed->parts().size() : 3;
}

// The copies pip put in site-packages: torch's RPATH loads these.
std::vector<audit::Found> pip_copies(const std::vector<audit::Found>& all) {
  std::vector<audit::Found> out;
  for (const auto& x : all)
    if (audit::from_site_packages(x)) out.push_back(x);
  return out;
}

// A PyTorch image: the torch pip installed (torch/version.py and its
// dist-info agree, the CUDA build is the plan's) and the cuDNN/NCCL wheels
// next to it, which its RPATH loads, equal to the plan: exactly when the
// plan pins a wheel's 4 components (9.19.0.56). Copies elsewhere (a
// packaged cuDNN in /usr/lib) are listed; the smoke suite's env section
// proves which one loads.
void check_torch(const plan::Combo& c, const audit::Components& comp, Findings& f) {
  auto& d = f.detail["torch"];
  if (!comp.torch) {
    f.problem(fmt::format("the plan promises PyTorch {}, the image has no site-packages/torch/version.py", c.versions.pytorch));
    return;
  }
  const auto& t = *comp.torch;
  d["version"] = t.version;
  d["cuda"] = t.cuda;
  d["path"] = t.path;
  d["dist_info"] = nlohmann::json::array();
  for (const auto& x : comp.torch_dist) d["dist_info"].push_back({{"version", x.version}, {"path", x.path}});
  const std::string public_version = t.version.substr(0, t.version.find('+'));
  if (!same_version(c.versions.pytorch, public_version, components_of(c.versions.pytorch)))
    f.problem(fmt::format("the plan promises PyTorch {}, the image has {} ({})", c.versions.pytorch, t.version, t.path));
  const std::string cuda = Version::must(c.versions.cuda).prefix(2).str();
  if (t.cuda != cuda)
    f.problem(fmt::format("torch {} is {}, the plan promises a CUDA {} build ({})", t.version,
                          t.cuda.empty() ? "a CPU-only build (cuda = None)" : "a CUDA " + t.cuda + " build", cuda, t.path));
  // The dist-info may drop the local tag (torch-2.11.0.dist-info beside
  // __version__ = '2.11.0+cu130', as on the GPU hosts' venvs): the public
  // versions must agree.
  auto public_of = [](const std::string& v) { return v.substr(0, v.find('+')); };
  if (comp.torch_dist.empty())
    f.problem(fmt::format("no torch-*.dist-info beside {}: pip did not install this torch", t.path));
  for (const auto& x : comp.torch_dist)
    if (public_of(x.version) != public_version)
      f.problem(fmt::format("torch/version.py says {}, its dist-info {} ({})", t.version, x.version, x.path));
  const std::tuple<const char*, const std::string*, const std::vector<audit::Found>*> libs[] = {
      {"cuDNN", &c.versions.cudnn, &comp.cudnn}, {"NCCL", &c.versions.nccl, &comp.nccl}};
  for (const auto& [what, planned, found] : libs) {
    auto pip = pip_copies(*found);
    if (pip.empty() || planned->empty()) {
      expect(what, *planned, *found, 3, f);  // not from pip: as for any image
      continue;
    }
    f.detail["found"][what] = nlohmann::json::array();
    for (const auto& x : *found) f.detail["found"][what].push_back({{"version", x.version}, {"path", x.path}, {"pip", audit::from_site_packages(x)}});
    // A header names 3 components, the dist-info the wheel's own 4: each is
    // compared on what both name, and the dist-info must say it exactly.
    bool exact = false, differs = false;
    for (const auto& x : pip) {
      if (!same_version(*planned, x.version, std::min(components_of(*planned), components_of(x.version)))) {
        f.problem(fmt::format("the plan promises {} {}, the wheel next to torch is {} ({})", what, *planned, x.version, x.path));
        differs = true;
      }
      exact |= x.path.ends_with(".dist-info") && same_version(*planned, x.version, components_of(*planned)) &&
               components_of(x.version) >= components_of(*planned);
    }
    if (!exact && !differs)
      f.problem(fmt::format("the plan promises {} {}, no dist-info in site-packages says so ({})", what, *planned, pip[0].path));
  }
}

// `pre`: fat binaries already scanned while the layers were read (or taken
// from the layer cache); empty, the files are scanned here.
void check_contents(const plan::Combo& c, const image::ImageFs& fs, const audit::Prescanned& pre,
                    const catalog::Catalog* cat, Findings& f) {
  check_device_code(c, fs, pre, cat, f);
  audit::Components comp = audit::detect_components(fs);
  expect("CUDA runtime", c.versions.cuda, comp.cuda_runtime, 2, f);
  if (!c.versions.pytorch.empty()) {
    check_torch(c, comp, f);
  } else {
    expect("NCCL", c.versions.nccl, comp.nccl, 3, f);
    expect("cuDNN", c.versions.cudnn, comp.cudnn, 3, f);
  }
  // The host's driver must be the one that runs: a libcuda.so inside the
  // image can shadow it and fail with driver/library mismatches.
  for (const auto& path : audit::driver_libraries(fs))
    f.problem(fmt::format("the image ships the driver library /{}: it would shadow the host's", path));
  // /usr/local/cuda is a symlink to cuda-X.Y in nvidia/cuda images and in
  // toolkit installs: follow links, or a devel image "has no nvcc".
  auto exists = [&](std::string_view p) -> bool {
    if (fs.find(p)) return true;
    try {
      return fs.resolve(p).has_value();
    } catch (const image::ImageError&) {  // a link out of the root or a loop: not there
      return false;
    }
  };
  bool has_nvcc = exists("usr/bin/nvcc") || exists("usr/local/cuda/bin/nvcc");
  bool has_cc = fs.find("usr/bin/gcc") || fs.find("usr/bin/g++") || fs.find("usr/bin/cc");
  if (c.versions.flavor == "runtime" && (has_nvcc || has_cc))
    f.problem(fmt::format("the runtime image holds a compiler ({})", has_nvcc ? "nvcc" : "gcc"));
  if (c.versions.flavor == "devel" && !has_nvcc) f.problem("the devel image has no nvcc");
}

}  // namespace

CheckResult static_check_files(const plan::Combo& c, const image::ImageFs& fs, const catalog::Catalog* cat) {
  Findings f;
  check_contents(c, fs, {}, cat, f);
  CheckResult r{"static", "", CheckStatus::failed, std::move(f.problems), std::move(f.detail), false};
  r.status = r.problems.empty() ? CheckStatus::passed : CheckStatus::failed;
  return r;
}

CheckResult static_check(const plan::Combo& c, const plan::Plan& p, const std::map<std::string, std::string>& labels,
                         const std::string& image, engine::Client& client, const Options& o) {
  CheckResult r{"static", "", CheckStatus::failed, {}, {}, false};
  Findings f;
  auto info = client.inspect_image(image);
  if (!info) {
    r.status = CheckStatus::error;
    r.problems.push_back("image " + image + " is not on the engine: run kiln build first");
    return r;
  }
  check_config(c, p, labels, *info, f);
  check_budget(c, p, *info, [&] { return client.image_history(info->id); }, f);
  engine::SavedArchive saved(client, image, o.state_dir + "/tmp");
  // One pass over the saved image, its layers shared with images verified
  // before taken from the audit layer cache (audit/layer_cache.h).
  audit::LayerCache cache(audit::LayerCache::default_dir(), audit::LayerCache::default_max_bytes());
  const audit::ScannedImage scanned = audit::read_scanned(image::archive_source(saved.path()), {}, &cache);
  check_contents(c, scanned.fs, scanned.pre, o.catalog, f);
  r.problems = std::move(f.problems);
  r.detail = std::move(f.detail);
  r.status = r.problems.empty() ? CheckStatus::passed : CheckStatus::failed;
  return r;
}

namespace {

// A registry image's config as the engine's inspect gives it (Env, Labels,
// User), its size the sum of its layers as stored (compressed: smaller
// than the engine's unpacked size), its history each non-empty layer's
// instruction with that layer's stored size.
struct RegistryImage {
  engine::ImageInfo info;
  std::vector<engine::HistoryEntry> history;
};

RegistryImage read_registry_config(registry::Client& reg, const registry::Reference& ref) {
  using nlohmann::json;
  registry::Manifest m = reg.get_manifest(ref.repo, ref.digest);
  json manifest = json::parse(m.bytes, nullptr, false);
  if (!manifest.is_object() || !manifest.contains("config") || !manifest["config"].is_object())
    throw std::runtime_error(ref.str() + " is not an image manifest (" + m.media_type + ")");
  RegistryImage out;
  out.info.id = manifest["config"].value("digest", "");
  std::vector<std::int64_t> sizes;
  for (const auto& l : manifest.value("layers", json::array())) {
    if (!l.is_object()) continue;
    sizes.push_back(l.value("size", std::int64_t(0)));
    out.info.size += sizes.back();
  }
  json config = json::parse(reg.get_blob(ref.repo, out.info.id), nullptr, false);
  if (!config.is_object()) throw std::runtime_error(ref.str() + ": its config " + out.info.id + " is not JSON");
  // Absent or null fields are empty, as the engine's inspect has them.
  auto field = [](const json& j, const char* key) { return j.is_object() && j.contains(key) ? j[key] : json(); };
  const json cfg = field(config, "config");
  for (const auto& e : field(cfg, "Env"))
    if (e.is_string()) out.info.env.push_back(e);
  const json labels = field(cfg, "Labels");
  if (labels.is_object())
    for (const auto& [k, v] : labels.items())
      if (v.is_string()) out.info.labels[k] = v;
  if (const json user = field(cfg, "User"); user.is_string()) out.info.user = user;
  size_t layer = 0;
  for (const auto& h : field(config, "history")) {
    if (!h.is_object()) continue;
    bool empty = h.value("empty_layer", false);
    std::int64_t size = !empty && layer < sizes.size() ? sizes[layer++] : 0;
    out.history.insert(out.history.begin(), engine::HistoryEntry{h.value("created_by", ""), size});  // newest first
  }
  return out;
}

}  // namespace

CheckResult static_check_pushed(const plan::Combo& c, const plan::Plan& p,
                                const std::map<std::string, std::string>& labels, const PushedImage& img,
                                const Options& o) {
  CheckResult r{"static", "", CheckStatus::failed, {}, {}, false};
  Findings f;
  const registry::Reference ref = registry::parse_reference(img.ref);
  const registry::Options ro = registry_options(p, ref.host);
  registry::Client reg(ro);
  RegistryImage ri = read_registry_config(reg, ref);
  if (ri.info.id != img.image_id) {  // the ledger and the registry disagree: check nothing on a guess
    r.status = CheckStatus::error;
    r.problems.push_back(fmt::format("{} has config {}, the ledger recorded image {}", img.ref, ri.info.id, img.image_id));
    return r;
  }
  f.detail["source"] = img.ref;
  check_config(c, p, labels, ri.info, f);
  check_budget(c, p, ri.info, [&] { return ri.history; }, f);
  audit::LayerCache cache(audit::LayerCache::default_dir(), audit::LayerCache::default_max_bytes());
  const audit::ScannedImage scanned = audit::read_scanned(image::registry_source(ref, ro), {}, &cache);
  check_contents(c, scanned.fs, scanned.pre, o.catalog, f);
  r.problems = std::move(f.problems);
  r.detail = std::move(f.detail);
  r.status = r.problems.empty() ? CheckStatus::passed : CheckStatus::failed;
  return r;
}

}  // namespace kiln::verify::detail
